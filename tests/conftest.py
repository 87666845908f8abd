"""Shared fixtures: the project root and Rasa's model storage for component tests."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent

logging.getLogger("rasa").setLevel(logging.WARNING)


@pytest.fixture
def project() -> Path:
    return PROJECT
