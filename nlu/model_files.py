"""Store trained scikit-learn models safely (skops, no pickle) in Rasa's model storage."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import skops.io as sio

# Types we write ourselves; anything else found in a model file is refused on load.
TRUSTED_TYPES = {
    "builtins.float",
    "builtins.type",
    "numpy.float32",
    "numpy.float64",
    "numpy.int64",
    "numpy.dtype",
    "numpy.ndarray",
    "scipy.sparse._csr.csr_matrix",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.svm._classes.LinearSVC",
    "sklearn.linear_model._logistic.LogisticRegression",
}


def save_model_file(model: Any, path: Path) -> None:
    """Write ``model`` (dicts, lists, numpy and scikit-learn objects) to ``path``."""
    sio.dump(model, path)


def load_model_file(path: Path) -> Any:
    """Read a model written by :func:`save_model_file`, refusing unexpected types."""
    if not path.exists():
        raise ValueError(f"model file {path} does not exist")
    unexpected = set(sio.get_untrusted_types(file=path)) - TRUSTED_TYPES
    if unexpected:
        raise ValueError(f"model file {path} holds untrusted types: {sorted(unexpected)}")
    return sio.load(path, trusted=list(sio.get_untrusted_types(file=path)))
