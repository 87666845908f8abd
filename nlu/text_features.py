"""Sparse n-gram features shared by webcare's NLU components."""
from __future__ import annotations

from typing import Iterable, List, Sequence, Tuple

from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer


class NgramFeaturizer:
    """TF-IDF over word n-grams and character n-grams (within word boundaries).

    Character n-grams make the features robust to the typos, abbreviations and
    compound words of customer messages ("faktuur", "mn", "stroomstoring"); word
    n-grams keep the phrase-level signal. No downloaded weights are needed.
    """

    def __init__(
        self,
        word_ngrams: Tuple[int, int] = (1, 2),
        char_ngrams: Tuple[int, int] = (2, 5),
        char_min_df: int = 1,
        use_words: bool = True,
    ) -> None:
        self.vectorizers: List[TfidfVectorizer] = []
        if use_words:
            self.vectorizers.append(
                TfidfVectorizer(
                    analyzer="word",
                    ngram_range=tuple(word_ngrams),
                    token_pattern=r"(?u)\b\w+\b",
                    lowercase=True,
                    strip_accents="unicode",
                    sublinear_tf=True,
                    dtype=_float32(),
                )
            )
        self.vectorizers.append(
            TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=tuple(char_ngrams),
                min_df=char_min_df,
                lowercase=True,
                strip_accents="unicode",
                sublinear_tf=True,
                dtype=_float32(),
            )
        )

    @classmethod
    def from_vectorizers(cls, vectorizers: List[TfidfVectorizer]) -> "NgramFeaturizer":
        """Rebuild a fitted featurizer from its stored vectorizers."""
        featurizer = cls.__new__(cls)
        featurizer.vectorizers = list(vectorizers)
        return featurizer

    def fit_transform(self, texts: Sequence[str]) -> csr_matrix:
        """Learn the vocabularies from ``texts`` and return their features."""
        return hstack([v.fit_transform(texts) for v in self.vectorizers]).tocsr()

    def transform(self, texts: Iterable[str]) -> csr_matrix:
        """Return the features of ``texts`` (vocabularies must be fitted)."""
        texts = list(texts)
        return hstack([v.transform(texts) for v in self.vectorizers]).tocsr()


def _float32() -> type:
    import numpy as np

    return np.float32
