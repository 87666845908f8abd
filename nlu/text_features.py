"""Sparse n-gram features shared by webcare's NLU components."""
from __future__ import annotations

import re
from typing import Iterable, List, Sequence, Tuple

from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_CONTRACTIONS = [
    (re.compile(r"\bcan't\b"), "can not"),
    (re.compile(r"\bwon't\b"), "will not"),
    (re.compile(r"n't\b"), " not"),
    (re.compile(r"'m\b"), " am"),
    (re.compile(r"'ve\b"), " have"),
    (re.compile(r"'re\b"), " are"),
    (re.compile(r"'ll\b"), " will"),
]
# English negations typed without the apostrophe ("didnt", "cant")
_BARE_NEGATIONS = re.compile(
    r"\b(ca|do|does|did|is|are|was|were|has|have|had|could|should|would|wo)nt\b"
)
_CANNOT = re.compile(r"\bcannot\b")


def normalize_text(text: str) -> str:
    """Lower-case, unify apostrophes and spell out English contractions.

    "I can't", "i cant" and "I cannot" all become "i can not", so the word n-grams of a
    negation do not depend on how it was typed. Dutch text passes through unchanged apart
    from the lower-casing and apostrophes ("m'n" stays "m'n").
    """
    text = text.translate(_APOSTROPHES).lower()
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    text = _BARE_NEGATIONS.sub(lambda m: {"ca": "can", "wo": "will"}.get(m.group(1), m.group(1)) + " not", text)
    return _CANNOT.sub("can not", text)


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
        normalize: bool = False,
    ) -> None:
        self.normalize = normalize
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
    def from_vectorizers(
        cls, vectorizers: List[TfidfVectorizer], normalize: bool = False
    ) -> "NgramFeaturizer":
        """Rebuild a fitted featurizer from its stored vectorizers."""
        featurizer = cls.__new__(cls)
        featurizer.vectorizers = list(vectorizers)
        featurizer.normalize = normalize
        return featurizer

    def _prepare(self, texts: Iterable[str]) -> List[str]:
        texts = list(texts)
        if getattr(self, "normalize", False):
            return [normalize_text(t) for t in texts]
        return texts

    def fit_transform(self, texts: Sequence[str]) -> csr_matrix:
        """Learn the vocabularies from ``texts`` and return their features."""
        texts = self._prepare(texts)
        return hstack([v.fit_transform(texts) for v in self.vectorizers]).tocsr()

    def transform(self, texts: Iterable[str]) -> csr_matrix:
        """Return the features of ``texts`` (vocabularies must be fitted)."""
        texts = self._prepare(texts)
        return hstack([v.transform(texts) for v in self.vectorizers]).tocsr()


def _float32() -> type:
    import numpy as np

    return np.float32
