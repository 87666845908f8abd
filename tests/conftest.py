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


@pytest.fixture(scope="session")
def rasa(tmp_path_factory: pytest.TempPathFactory):
    """A real Rasa server (trained model, webcare channel) and action server for the session."""
    from bot.rasa_stack import rasa_stack

    with rasa_stack(tmp_path_factory.mktemp("rasa")) as stack:
        yield stack
