"""Label review: training examples whose label the model disputes, and intents it keeps confusing.

Webcare teams retrain often and agents' corrections feed the next model, so wrong labels creep
in ("my card was stolen" filed under *lost or stolen phone*). A wrong label costs twice: the
model learns it, and every cross-validation counts the right answer as an error. On BANKING77
most of the errors made with a confidence above 0.8 are such examples.

The review takes the out-of-fold ranking of every example (each predicted by a model trained
without it, :func:`nlu.evaluation.cross_validated_rankings`) and lists

* **disputed examples**: the model's top intent is not the label, with at least
  ``min_confidence``: a wrong label, an example that belongs to two intents, or one the model
  needs more examples like (in hand-written data mostly the last; in BANKING77, reading a
  sample of the 231 disputed at 0.8, mostly the first two);
* **confused pairs**: the intent pairs with the most out-of-fold errors either way: candidates
  for merging, for a sharper definition in the data, or for a clarifying question.

Nothing is changed in the data: a person decides (``--out`` writes a CSV to work through).
"""
from __future__ import annotations

import csv
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from nlu.evaluation import Example

DEFAULT_MIN_CONFIDENCE = 0.8
CSV_COLUMNS = ("text", "intent", "suggested", "confidence", "label_confidence", "lang", "source")


@dataclass(frozen=True)
class DisputedExample:
    """A training example whose label the model (trained without it) disagrees with."""

    text: str
    intent: str  # the label in the data
    suggested: str  # the model's top intent
    confidence: float  # the model's confidence in ``suggested``
    label_confidence: float  # ... and in the label (0 when not in the ranking)
    lang: Optional[str]
    source: Optional[str]  # file (and line) the example comes from


@dataclass(frozen=True)
class ConfusedPair:
    """Two intents and how often the model took one for the other (out-of-fold)."""

    intents: Tuple[str, str]
    errors: int  # either way
    examples: int  # of the two intents together

    @property
    def share(self) -> float:
        """Errors per example of the two intents."""
        return self.errors / self.examples if self.examples else 0.0


@dataclass(frozen=True)
class LabelReview:
    """What :func:`review_labels` found."""

    examples: int
    accuracy: float  # out-of-fold, against the labels as they are
    min_confidence: float
    disputed: List[DisputedExample]  # most confident dispute first
    confused_pairs: List[ConfusedPair]  # most errors first

    def to_json(self) -> Dict[str, Any]:
        """JSON-able form (the ``--json`` output)."""
        return {
            "examples": self.examples,
            "accuracy": round(self.accuracy, 4),
            "min_confidence": self.min_confidence,
            "disputed_count": len(self.disputed),
            "disputed": [
                {**asdict(d), "confidence": round(d.confidence, 4), "label_confidence": round(d.label_confidence, 4)}
                for d in self.disputed
            ],
            "confused_pairs": [
                {"intents": list(p.intents), "errors": p.errors, "examples": p.examples, "share": round(p.share, 4)}
                for p in self.confused_pairs
            ],
        }


def review_labels(
    examples: Sequence[Example],
    rankings: Sequence[Sequence[Dict[str, Any]]],
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    pairs: int = 10,
) -> LabelReview:
    """Disputed examples and confused intent pairs from out-of-fold ``rankings``.

    ``rankings[i]`` is the ranking (best first, ``name``/``confidence``) predicted for
    ``examples[i]`` by a model that was not trained on it.
    """
    if len(examples) != len(rankings):
        raise ValueError(f"{len(examples)} examples but {len(rankings)} rankings")
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be between 0 and 1, not {min_confidence}")
    per_intent = Counter(e.intent for e in examples)
    errors: Counter = Counter()
    disputed: List[DisputedExample] = []
    correct = 0
    for example, ranking in zip(examples, rankings):
        if not ranking:
            continue
        top = ranking[0]
        if top["name"] == example.intent:
            correct += 1
            continue
        errors[tuple(sorted((example.intent, top["name"])))] += 1
        if top["confidence"] >= min_confidence:
            label_confidence = next(
                (float(r["confidence"]) for r in ranking if r["name"] == example.intent), 0.0)
            disputed.append(DisputedExample(
                example.text, example.intent, top["name"], float(top["confidence"]), label_confidence,
                example.lang, example.source))
    disputed.sort(key=lambda d: (-d.confidence, d.intent, d.text))
    confused = [
        ConfusedPair((a, b), n, per_intent[a] + per_intent[b])
        for (a, b), n in sorted(errors.items(), key=lambda item: (-item[1], item[0]))[:pairs]
    ]
    return LabelReview(
        examples=len(examples),
        accuracy=correct / len(examples) if examples else 0.0,
        min_confidence=min_confidence,
        disputed=disputed,
        confused_pairs=confused,
    )


def write_review_csv(review: LabelReview, path: Path) -> None:
    """The disputed examples as a CSV to work through (one row each, most confident first)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for d in review.disputed:
            writer.writerow([d.text, d.intent, d.suggested, f"{d.confidence:.4f}",
                             f"{d.label_confidence:.4f}", d.lang or "", d.source or ""])
