"""Turn linear-model scores into calibrated probabilities (temperature scaling)."""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax


def fit_temperature(scores: np.ndarray, labels: np.ndarray) -> float:
    """Return the temperature T minimising the log loss of ``softmax(scores / T)``.

    ``scores`` are out-of-fold decision scores (n_samples x n_classes) and
    ``labels`` the column index of each sample's true class.
    """
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        logp = log_softmax(scores / np.exp(log_t), axis=1)
        return float(-logp[rows, labels].mean())

    result = minimize_scalar(nll, bounds=(-6.0, 3.0), method="bounded")
    return float(np.exp(result.x))


def probabilities(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of ``scores`` at ``temperature``."""
    return softmax(scores / temperature, axis=1)
