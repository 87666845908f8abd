from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from nlu import sentence_embeddings
from nlu.sentence_embeddings import EmbeddingsUnavailable, check_files, default_path, load_encoder


def test_the_pinned_files_are_installed_and_verify() -> None:
    folder = default_path()
    assert folder is not None and check_files(folder) == folder
    assert sentence_embeddings.main(["verify"]) == 0


def test_missing_or_altered_files_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingsUnavailable, match="missing"):
        check_files(tmp_path)
    source = default_path()
    shutil.copy(source / "sp.model", tmp_path / "sp.model")
    (tmp_path / "weights.npz").write_bytes(b"not the weights")
    with pytest.raises(EmbeddingsUnavailable, match="SHA-256"):
        check_files(tmp_path)
    assert sentence_embeddings.main(["verify", str(tmp_path)]) == 1


@pytest.mark.slow
def test_the_encoder_puts_translations_close_together() -> None:
    encoder = load_encoder()
    vectors = encoder.encode(["my bill is too high", "mijn factuur is te hoog", "good morning", ""])
    assert vectors.shape == (4, 512) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, atol=1e-4)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.2  # the Dutch translation, not the greeting
    assert load_encoder() is encoder  # loaded once per process
