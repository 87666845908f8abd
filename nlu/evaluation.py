"""Train the project's NLU pipeline through Rasa and measure it (hold-out or k-fold)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence

import numpy as np
import yaml
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

logger = logging.getLogger(__name__)

FALLBACK_INTENT = "nlu_fallback"


@dataclass(frozen=True)
class Example:
    """One labelled NLU example."""

    text: str
    intent: str
    lang: Optional[str] = None
    source: Optional[str] = None  # where it comes from ("data/nlu/billing.yml", "train.csv:12")


@dataclass
class Predictions:
    """Rankings predicted for a list of texts, with timings."""

    rankings: List[List[Dict[str, Any]]]
    train_seconds: float
    predict_ms: float


def load_rasa_examples(paths: Iterable[Path]) -> List[Example]:
    """Intent examples of Rasa NLU files, with their ``lang`` metadata."""
    # lazy: importing Rasa's training-data loaders (and TensorFlow behind them) takes seconds
    from rasa.shared.nlu.training_data.loading import load_data

    from nlu.language_detector import training_language

    examples: List[Example] = []
    for path in paths:
        data = load_data(str(path))
        for message in data.intent_examples:
            examples.append(
                Example(message.get("text"), message.get("intent"), training_language(message), str(path)))
    return examples


def write_nlu_yaml(examples: Sequence[Example], path: Path, header: Optional[str] = None) -> None:
    """Write examples as Rasa NLU YAML, one block per (intent, lang).

    ``examples`` blocks are written in YAML's literal style (``|``), as Rasa's own files
    are; ``header`` (without the leading ``#``) becomes a comment on the first line.
    """
    blocks: Dict[tuple, List[str]] = defaultdict(list)
    for example in examples:
        blocks[(example.intent, example.lang)].append(example.text)
    nlu = []
    for (intent, lang), texts in blocks.items():
        block: Dict[str, Any] = {"intent": intent}
        if lang:
            block["metadata"] = {"lang": lang}
        block["examples"] = _Literal("".join(f"- {_one_line(t)}\n" for t in texts))
        nlu.append(block)
    text = yaml.dump(
        {"version": "3.1", "nlu": nlu},
        Dumper=_NluDumper, allow_unicode=True, sort_keys=False, width=10**6,
    )
    if header:
        text = "".join(f"{line if line.startswith('#') else '# ' + line}\n" for line in header.splitlines()) + text
    path.write_text(text, encoding="utf-8")


class _Literal(str):
    """A string PyYAML writes as a literal block (when its content allows)."""


class _NluDumper(yaml.SafeDumper):
    pass


_NluDumper.add_representer(
    _Literal, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")
)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def train_and_predict(
    train: Sequence[Example], texts: Sequence[str], config: Path, workdir: Path
) -> Predictions:
    """Train ``config``'s NLU pipeline through Rasa on ``train``; rank ``texts``."""
    from rasa.core.agent import Agent
    from rasa.model_training import train_nlu

    data_file = workdir / "train_nlu.yml"
    write_nlu_yaml(train, data_file)
    _quiet_structlog()
    # Rasa's messages go to stderr (stdout may carry JSON); its training cache is off, so a
    # training is never shortened (nor the cache filled) by an earlier run on the same data.
    with contextlib.redirect_stdout(sys.stderr), _env(RASA_MAX_CACHE_SIZE="0"):
        started = time.perf_counter()
        model = train_nlu(str(config), str(data_file), str(workdir / "models"), fixed_model_name="fold")
        train_seconds = time.perf_counter() - started
        if model is None:
            raise RuntimeError("Rasa did not train an NLU model")
        agent = Agent.load(model)
        started = time.perf_counter()
        rankings = asyncio.run(_parse_all(agent, texts))
        predict_ms = (time.perf_counter() - started) * 1000 / max(1, len(texts))
    return Predictions(rankings, train_seconds, predict_ms)


def _quiet_structlog() -> None:
    """Drop Rasa's per-message debug events (printed, and timed with every parse otherwise)
    unless the process configured structlog itself."""
    import structlog

    if not structlog.is_configured():
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def _parse_all(agent: Any, texts: Sequence[str]) -> List[List[Dict[str, Any]]]:
    rankings = []
    for text in texts:
        parsed = await agent.parse_message(text)
        ranking = [r for r in parsed.get("intent_ranking") or [] if r["name"] != FALLBACK_INTENT]
        if not ranking and parsed.get("intent", {}).get("name"):
            ranking = [parsed["intent"]]
        rankings.append(ranking)
    return rankings


def score(gold: Sequence[str], rankings: Sequence[List[Dict[str, Any]]]) -> Dict[str, float]:
    """accuracy, macro_f1 and top3 of rankings against gold intents."""
    predicted = [r[0]["name"] if r else "" for r in rankings]
    top3 = [g in [x["name"] for x in r[:3]] for g, r in zip(gold, rankings)]
    return {
        "accuracy": float(np.mean([p == g for p, g in zip(predicted, gold)])),
        "macro_f1": float(f1_score(gold, predicted, average="macro", labels=sorted(set(gold)))),
        "top3": float(np.mean(top3)),
    }


@dataclass
class CrossValidation:
    """Out-of-fold rankings: ``rankings[i]`` ranks ``examples[i]`` by a model trained without it."""

    rankings: List[List[Dict[str, Any]]]
    folds: int
    train_seconds: List[float]  # per fold
    predict_ms: List[float]  # per fold, per message


def cross_validated_rankings(
    examples: Sequence[Example], config: Path, folds: int = 5, random_state: int = 42
) -> CrossValidation:
    """Train ``config``'s pipeline through Rasa ``folds`` times (stratified) and rank every
    example with the model that did not see it."""
    y = np.array([e.intent for e in examples])
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    rankings: List[List[Dict[str, Any]]] = [[] for _ in examples]
    result = CrossValidation(rankings, folds, [], [])
    for fold, (train_idx, test_idx) in enumerate(splitter.split(np.zeros(len(y)), y), start=1):
        with tempfile.TemporaryDirectory(prefix="webcare-cv-") as workdir:
            train = [examples[i] for i in train_idx]
            predicted = train_and_predict(train, [examples[i].text for i in test_idx], config, Path(workdir))
        logger.info("fold %d/%d trained in %.1f s", fold, folds, predicted.train_seconds)
        result.train_seconds.append(predicted.train_seconds)
        result.predict_ms.append(predicted.predict_ms)
        for i, ranking in zip(test_idx, predicted.rankings):
            rankings[i] = ranking
    return result


def cross_validate(
    examples: Sequence[Example], config: Path, folds: int = 5, random_state: int = 42
) -> Dict[str, Any]:
    """k-fold cross-validation of ``config``'s pipeline; per-language accuracy too."""
    cv = cross_validated_rankings(examples, config, folds, random_state)
    gold = [e.intent for e in examples]
    confusions: Counter = Counter()
    for example, ranking in zip(examples, cv.rankings):
        top = ranking[0]["name"] if ranking else ""
        if top != example.intent:
            confusions[(example.intent, top)] += 1
    report: Dict[str, Any] = {"examples": len(examples), "folds": folds, **score(gold, cv.rankings)}
    by_lang: Dict[str, float] = {}
    for lang in sorted({e.lang for e in examples if e.lang}):
        idx = [i for i, e in enumerate(examples) if e.lang == lang]
        by_lang[lang] = score([gold[i] for i in idx], [cv.rankings[i] for i in idx])["accuracy"]
    report["accuracy_by_language"] = by_lang
    report["train_seconds_per_fold"] = float(np.mean(cv.train_seconds))
    report["predict_ms"] = float(np.mean(cv.predict_ms))
    report["top_confusions"] = [
        {"intent": a, "predicted": b, "count": n} for (a, b), n in confusions.most_common(10)
    ]
    return report
