"""Train the Rasa model when it is missing or older than its inputs."""
from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

logger = logging.getLogger(__name__)

TRAINING_INPUTS = ("config.yml", "domain.yml", "data")
KEEP_MODELS = 3


def rasa_executable() -> str:
    """The ``rasa`` command of the interpreter running webcare."""
    candidate = Path(sys.executable).with_name("rasa")
    return str(candidate) if candidate.exists() else "rasa"


def latest_model(model_dir: Path) -> Optional[Path]:
    """The newest ``*.tar.gz`` in ``model_dir``, if any."""
    models = sorted(model_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    return models[-1] if models else None


def _input_files(project: Path) -> Iterable[Path]:
    for name in TRAINING_INPUTS:
        path = project / name
        if path.is_dir():
            yield from (p for p in path.rglob("*") if p.is_file())
        elif path.exists():
            yield path


def staleness(project: Path, model_dir: Path) -> Tuple[bool, str]:
    """``(needs_training, why)`` for the model in ``model_dir``."""
    model = latest_model(model_dir)
    if model is None:
        return True, f"no model in {model_dir}/"
    model_time = model.stat().st_mtime
    newer = [p for p in _input_files(project) if p.stat().st_mtime > model_time]
    if newer:
        names = ", ".join(str(p.relative_to(project)) for p in newer[:3])
        return True, f"{names}{' …' if len(newer) > 3 else ''} changed since {model.name}"
    return False, f"{model.name} is up to date"


def train(project: Path, model_dir: Path, force: bool = False) -> Optional[Path]:
    """Train if stale (or ``force``); returns the model path. Raises on a failed training."""
    needed, why = staleness(project, model_dir)
    if not needed and not force:
        print(f"model: {why}; skipping training")
        return latest_model(model_dir)
    print(f"model: training ({why}) …", flush=True)
    started = time.monotonic()
    command: List[str] = [
        rasa_executable(), "train",
        "--config", str(project / "config.yml"),
        "--domain", str(project / "domain.yml"),
        "--data", str(project / "data"),
        "--out", str(model_dir),
    ]
    if force:
        command.append("--force")
    result = subprocess.run(command, cwd=project)
    if result.returncode != 0:
        raise RuntimeError(f"rasa train failed with exit code {result.returncode}")
    model = latest_model(model_dir)
    if model is None:
        raise RuntimeError("rasa train finished without writing a model")
    model.touch()  # Rasa may reuse an old fingerprinted model: mark it as current
    for old in sorted(model_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)[:-KEEP_MODELS]:
        old.unlink()
    print(f"model: trained {model.name} in {time.monotonic() - started:.1f} s", flush=True)
    return model
