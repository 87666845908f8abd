"""Train the Rasa model when it is missing or older than its inputs."""
from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

TRAINING_INPUTS = ("config.yml", "domain.yml", "data")
# The reviewed corrections written from the store (bot/learning/corrections.py), below the project.
LEARNED_DATA = Path("var") / "training" / "learned_nlu.yml"
KEEP_MODELS = 3


def rasa_executable() -> str:
    """The ``rasa`` command of the interpreter running webcare."""
    candidate = Path(sys.executable).with_name("rasa")
    return str(candidate) if candidate.exists() else "rasa"


def latest_model(model_dir: Path) -> Optional[Path]:
    """The newest ``*.tar.gz`` in ``model_dir``, if any."""
    models = sorted(model_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    return models[-1] if models else None


def _input_files(project: Path, extra_data: Sequence[Path] = ()) -> Iterable[Path]:
    for path in [project / name for name in TRAINING_INPUTS] + list(extra_data):
        if path.is_dir():
            yield from (p for p in path.rglob("*") if p.is_file())
        elif path.exists():
            yield path


def _shown(path: Path, project: Path) -> str:
    try:
        return str(path.relative_to(project))
    except ValueError:
        return str(path)


def staleness(project: Path, model_dir: Path, extra_data: Sequence[Path] = ()) -> Tuple[bool, str]:
    """``(needs_training, why)`` for the model in ``model_dir`` (``extra_data``: generated
    training files beside ``data/``, such as the reviewed corrections)."""
    model = latest_model(model_dir)
    if model is None:
        return True, f"no model in {model_dir}/"
    model_time = model.stat().st_mtime
    newer = [p for p in _input_files(project, extra_data) if p.stat().st_mtime > model_time]
    if newer:
        names = ", ".join(_shown(p, project) for p in newer[:3])
        return True, f"{names}{' …' if len(newer) > 3 else ''} changed since {model.name}"
    return False, f"{model.name} is up to date"


def train(project: Path, model_dir: Path, force: bool = False, extra_data: Sequence[Path] = (),
          watch_extra: bool = True, name: Optional[str] = None) -> Optional[Path]:
    """Train if stale (or ``force``); returns the model path. Raises on a failed training.

    ``extra_data``: more NLU files to train on (the reviewed corrections the learning loop
    writes from the store: the same file on every replica); with ``watch_extra`` false, a newer
    one alone does not make the model stale (``webcare run``: corrections reach the replicas
    as a candidate that passed its gate, never by a restart). ``name``: the model file's name
    (without ``.tar.gz``; default Rasa's timestamped one)."""
    needed, why = staleness(project, model_dir, extra_data if watch_extra else ())
    if not needed and not force:
        print(f"model: {why}; skipping training")
        return latest_model(model_dir)
    print(f"model: training ({why}) …", flush=True)
    started = time.monotonic()
    command: List[str] = [
        rasa_executable(), "train",
        "--config", str(project / "config.yml"),
        "--domain", str(project / "domain.yml"),
        "--data", str(project / "data"), *(str(p) for p in extra_data if p.exists()),
        "--out", str(model_dir),
    ]
    if force:
        command.append("--force")
    if name:
        command += ["--fixed-model-name", name]
    result = subprocess.run(command, cwd=project)
    if result.returncode != 0:
        raise RuntimeError(f"rasa train failed with exit code {result.returncode}")
    model = model_dir / f"{name}.tar.gz" if name else latest_model(model_dir)
    if model is not None and not model.exists():
        model = None
    if model is None:
        raise RuntimeError("rasa train finished without writing a model")
    model.touch()  # Rasa may reuse an old fingerprinted model: mark it as current
    if name is None:  # a named model (a candidate of the learning loop) is the registry's to delete
        for old in sorted(model_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)[:-KEEP_MODELS]:
            old.unlink()
    print(f"model: trained {model.name} in {time.monotonic() - started:.1f} s", flush=True)
    return model
