"""Where the ``webcare`` command finds the project: its working directory (a checkout)."""
from __future__ import annotations

from pathlib import Path

PROJECT = Path.cwd()
