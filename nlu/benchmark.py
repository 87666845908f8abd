"""``webcare bench nlu``: the project's NLU pipeline vs. Rasa's baselines on a labelled CSV.

Everything is trained through Rasa (``rasa.model_training.train_nlu``) and queried through
``Agent.parse_message``, so the figures include Rasa's own overhead, as in production.

Evaluation
    * ``--test CSV``: train on the training CSV, evaluate on the test CSV.
    * otherwise: stratified k-fold cross-validation on the training CSV (``--folds``).

Coverage at a precision target X (``coverage_at_95``, ``coverage_at_98``)
    The share of messages that would be auto-sent when only messages whose top confidence is at
    or above a threshold are sent, the threshold being the *lowest* confidence at which the
    precision (accuracy among messages at or above it) of held-out predictions on the
    *training* data is still >= X (:func:`choose_threshold`). The threshold is then applied to
    the evaluation messages, and the precision achieved there is reported beside it.

    * ``--test``: the held-out predictions come from a k-fold cross-validation on the training
      CSV (k more trainings of the project pipeline).
    * cross-validation: for each fold, the threshold is chosen on the out-of-fold predictions of
      the *other* folds (no extra training), then applied to this fold; coverage and precision
      are pooled over the folds. Those other folds' models saw this fold's examples in training,
      but this fold's labels never enter its own threshold.
    * baselines (trained once): the threshold is cross-fitted on their evaluation predictions —
      chosen on one half, applied to the other and vice versa — because a k-fold run of the
      baselines would multiply an already long run. The project pipeline's figures on the same
      fold, computed the same way, are reported beside them (``project_same_fold``).

Baselines (skipped with ``--no-baselines``); in cross-validation only on the first fold
(``baseline_folds: 1``):
    * ``logistic_regression``: WhitespaceTokenizer + CountVectorsFeaturizer (words) +
      CountVectorsFeaturizer (char_wb 1-4) + LogisticRegressionClassifier.
    * ``diet``: WhitespaceTokenizer + CountVectorsFeaturizer + DIETClassifier trained for a few
      epochs; ``train_seconds_extrapolated`` adds the time of the remaining epochs up to DIET's
      default 300, at the last measured epoch's duration (the first epoch also builds the
      TensorFlow graph).

``train_seconds`` is the time of one ``train_nlu`` call: on the whole training CSV with
``--test``, the mean over folds in cross-validation (each fold trains on (k-1)/k of the data).
``predict_ms`` is the mean time of one ``parse_message`` call. Rasa's training cache is off
for all trainings so that no run is shortened by an earlier one.
"""
from __future__ import annotations

import contextlib
import logging
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import yaml
from sklearn.model_selection import StratifiedKFold

from nlu.evaluation import Example, score, train_and_predict
from nlu.importing import CsvFormatError, read_training_examples

logger = logging.getLogger(__name__)

PRECISION_TARGETS = (0.95, 0.98)
DIET_DEFAULT_EPOCHS = 300


class BenchInputError(ValueError):
    """The benchmark cannot run on the given files; ``str()`` is the report for the user."""


# ---------------------------------------------------------------- thresholds and coverage
def choose_threshold(
    confidences: Sequence[float], correct: Sequence[bool], precision: float
) -> Optional[float]:
    """The lowest confidence threshold whose precision is at least ``precision``.

    The precision of a threshold t is the accuracy among the messages with confidence >= t.
    Candidate thresholds are the observed confidences (ties are taken together). Returns
    ``None`` when no threshold reaches ``precision`` (nothing would be auto-sent).
    """
    conf = np.asarray(confidences, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if conf.size == 0:
        return None
    order = np.argsort(-conf, kind="stable")
    conf, ok = conf[order], ok[order]
    cumulative = np.cumsum(ok) / np.arange(1, conf.size + 1)
    # a threshold covers a whole group of equal confidences: look at group ends only
    group_end = np.append(conf[1:] < conf[:-1], True)
    valid = np.flatnonzero(group_end & (cumulative >= precision - 1e-12))
    if valid.size == 0:
        return None
    return float(conf[valid.max()])


def coverage_at(
    confidences: Sequence[float], correct: Sequence[bool], threshold: Optional[float]
) -> Tuple[float, Optional[float], int]:
    """(share of messages at or above ``threshold``, their accuracy, their number)."""
    conf = np.asarray(confidences, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if threshold is None or conf.size == 0:
        return 0.0, None, 0
    sent = conf >= threshold
    count = int(sent.sum())
    return count / conf.size, (float(ok[sent].mean()) if count else None), count


def _coverage_report(
    eval_conf: np.ndarray,
    eval_ok: np.ndarray,
    thresholds: Sequence[Optional[float]],
    groups: np.ndarray,
) -> Dict[str, Any]:
    """Pooled coverage/precision when group g's messages use ``thresholds[g]``."""
    report: Dict[str, Any] = {}
    for target in PRECISION_TARGETS:
        pct = int(round(target * 100))
        sent = np.zeros(eval_conf.size, dtype=bool)
        for g, threshold in enumerate(thresholds[target]):  # type: ignore[index]
            if threshold is not None:
                members = groups == g
                sent |= members & (eval_conf >= threshold)
        count = int(sent.sum())
        chosen = [t for t in thresholds[target] if t is not None]  # type: ignore[index]
        report[f"coverage_at_{pct}"] = round(count / max(1, eval_conf.size), 4)
        report[f"precision_at_{pct}"] = round(float(eval_ok[sent].mean()), 4) if count else None
        report[f"threshold_{pct}"] = (
            round(float(np.mean(chosen)), 4) if chosen else None
        )
    return report


def _cross_fitted_thresholds(
    conf: np.ndarray, ok: np.ndarray, seed: int
) -> Tuple[Dict[float, List[Optional[float]]], np.ndarray]:
    """Two random halves; each half's threshold is chosen on the other half."""
    rng = np.random.default_rng(seed)
    groups = np.zeros(conf.size, dtype=int)
    groups[rng.permutation(conf.size)[: conf.size // 2]] = 1
    thresholds = {
        target: [
            choose_threshold(conf[groups != g], ok[groups != g], target) for g in (0, 1)
        ]
        for target in PRECISION_TARGETS
    }
    return thresholds, groups


# ---------------------------------------------------------------------------- helpers
@dataclass
class _Run:
    """Predictions of one pipeline on some evaluation messages."""

    gold: List[str]
    rankings: List[List[Dict[str, Any]]]
    train_seconds: List[float]
    predict_ms: List[float]

    @property
    def confidences(self) -> np.ndarray:
        return np.array([r[0]["confidence"] if r else 0.0 for r in self.rankings])

    @property
    def correct(self) -> np.ndarray:
        return np.array([bool(r) and r[0]["name"] == g for g, r in zip(self.gold, self.rankings)])

    def figures(self) -> Dict[str, Any]:
        return {
            **{k: round(v, 4) for k, v in score(self.gold, self.rankings).items()},
            "train_seconds": round(float(np.mean(self.train_seconds)), 2),
            "predict_ms": round(float(np.mean(self.predict_ms)), 3),
        }


def _load(path: Path, role: str) -> List[Example]:
    try:
        return read_training_examples(path)
    except CsvFormatError as exc:
        raise BenchInputError(f"{role} data: {exc}") from exc


def _project_language(config: Path) -> str:
    try:
        return str(yaml.safe_load(config.read_text(encoding="utf-8")).get("language") or "en")
    except (OSError, AttributeError, yaml.YAMLError):
        return "en"


def baseline_configs(language: str, diet_epochs: int, random_seed: int = 42) -> Dict[str, Dict[str, Any]]:
    """Rasa pipelines the project is compared with (written to temporary config files)."""
    return {
        "logistic_regression": {
            "recipe": "default.v1",
            "language": language,
            "pipeline": [
                {"name": "WhitespaceTokenizer"},
                {"name": "CountVectorsFeaturizer"},
                {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "min_ngram": 1, "max_ngram": 4},
                {"name": "LogisticRegressionClassifier"},
            ],
            "policies": [],
        },
        "diet": {
            "recipe": "default.v1",
            "language": language,
            "pipeline": [
                {"name": "WhitespaceTokenizer"},
                {"name": "CountVectorsFeaturizer"},
                {"name": "DIETClassifier", "epochs": diet_epochs, "random_seed": random_seed},
            ],
            "policies": [],
        },
    }


def _train_eval(
    train: Sequence[Example], test: Sequence[Example], config: Path, run: _Run
) -> None:
    with tempfile.TemporaryDirectory(prefix="webcare-bench-") as workdir:
        result = train_and_predict(train, [e.text for e in test], config, Path(workdir))
    run.gold.extend(e.intent for e in test)
    run.rankings.extend(result.rankings)
    run.train_seconds.append(result.train_seconds)
    run.predict_ms.append(result.predict_ms)


def _folds(examples: Sequence[Example], folds: int, seed: int) -> List[Tuple[np.ndarray, np.ndarray]]:
    y = np.array([e.intent for e in examples])
    counts = np.unique(y, return_counts=True)[1]
    if counts.min() < 2:
        rare = sorted(set(y[np.isin(y, np.unique(y)[counts < 2])]))
        raise BenchInputError(
            "cross-validation needs at least 2 examples per intent; "
            f"too few for: {', '.join(rare[:10])}{' …' if len(rare) > 10 else ''}")
    k = int(min(folds, counts.min()))
    if k < folds:
        logger.warning("only %d folds: the smallest intent has %d examples", k, counts.min())
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


# ------------------------------------------------------------------------------ bench
def run_nlu_bench(
    train_csv: Path,
    config: Path,
    test_csv: Optional[Path] = None,
    folds: int = 5,
    baselines: bool = True,
    diet_epochs: int = 2,
    seed: int = 42,
) -> Dict[str, Any]:
    """Run the benchmark and return the JSON-able report (see the module docstring)."""
    train = _load(Path(train_csv), "training")
    test = _load(Path(test_csv), "test") if test_csv else None
    if folds < 2:
        raise BenchInputError("--folds must be at least 2")
    report: Dict[str, Any] = {
        "train_file": str(train_csv),
        "test_file": str(test_csv) if test_csv else None,
        "train_examples": len(train),
        "intents": len({e.intent for e in train}),
        "pipeline": str(config),
    }
    started = time.perf_counter()
    splits = _folds(train, folds, seed)

    # -------------------------------------------------------- the project's pipeline
    oof = _Run([], [], [], [])
    if test is None:
        report["evaluation"] = f"{len(splits)}-fold stratified cross-validation"
        report["test_examples"] = len(train)
    else:
        report["evaluation"] = "train/test"
        report["test_examples"] = len(test)
        unknown = sorted({e.intent for e in test} - {e.intent for e in train})
        if unknown:
            report["test_intents_not_in_training"] = unknown
    report["folds"] = len(splits)

    fold_of: List[int] = []
    for fold, (train_idx, test_idx) in enumerate(splits):
        logger.info("project pipeline: fold %d/%d", fold + 1, len(splits))
        _train_eval([train[i] for i in train_idx], [train[i] for i in test_idx], config, oof)
        fold_of.extend([fold] * len(test_idx))
    oof_fold = np.array(fold_of)
    oof_conf, oof_ok = oof.confidences, oof.correct

    if test is None:
        main = oof
        thresholds = {
            target: [
                choose_threshold(oof_conf[oof_fold != f], oof_ok[oof_fold != f], target)
                for f in range(len(splits))
            ]
            for target in PRECISION_TARGETS
        }
        report.update(main.figures())
        report.update(_coverage_report(main.confidences, main.correct, thresholds, oof_fold))
        report["coverage_method"] = (
            "per fold: threshold = lowest confidence reaching the precision on the other "
            "folds' out-of-fold predictions; coverage and precision pooled over folds, "
            "threshold_* is the mean of the folds' thresholds")
        report["train_seconds_basis"] = (
            f"mean per fold (each trains on {len(splits) - 1}/{len(splits)} of the data)")
    else:
        main = _Run([], [], [], [])
        logger.info("project pipeline: training on all %d examples", len(train))
        _train_eval(train, test, config, main)
        thresholds = {t: [choose_threshold(oof_conf, oof_ok, t)] for t in PRECISION_TARGETS}
        report.update(main.figures())
        report.update(
            _coverage_report(main.confidences, main.correct, thresholds, np.zeros(len(test), dtype=int)))
        report["coverage_method"] = (
            f"threshold = lowest confidence reaching the precision on {len(splits)}-fold "
            "out-of-fold predictions on the training data; applied to the test data")
        report["train_seconds_basis"] = "one training on the whole training file"
        report["training_cross_validation"] = {
            k: v for k, v in oof.figures().items() if k in ("accuracy", "macro_f1", "top3")}

    # -------------------------------------------------------------------- baselines
    if baselines:
        report["baselines"] = _run_baselines(
            train, test, splits, config, diet_epochs, seed,
            project=oof if test is None else main,
            project_mask=(oof_fold == 0) if test is None else None,
        )
        report["baseline_folds"] = 1 if test is None else None
    report["environment"] = {
        "python": platform.python_version(),
        "cpus": _cpus(),
    }
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    return report


def _run_baselines(
    train: Sequence[Example],
    test: Optional[Sequence[Example]],
    splits: List[Tuple[np.ndarray, np.ndarray]],
    config: Path,
    diet_epochs: int,
    seed: int,
    project: _Run,
    project_mask: Optional[np.ndarray],
) -> Dict[str, Any]:
    if test is None:
        train_idx, test_idx = splits[0]
        fit_on = [train[i] for i in train_idx]
        evaluate_on = [train[i] for i in test_idx]
        where = "fold 1 of the cross-validation"
    else:
        fit_on, evaluate_on = list(train), list(test)
        where = "train/test"
    results: Dict[str, Any] = {}
    language = _project_language(config)
    with tempfile.TemporaryDirectory(prefix="webcare-bench-configs-") as folder:
        for name, pipeline in baseline_configs(language, diet_epochs, seed).items():
            path = Path(folder) / f"{name}.yml"
            path.write_text(yaml.safe_dump(pipeline, sort_keys=False), encoding="utf-8")
            logger.info("baseline %s: training on %d examples", name, len(fit_on))
            run = _Run([], [], [], [])
            epoch_seconds: List[float] = []
            try:
                with _keras_epoch_timer(epoch_seconds) if name == "diet" else contextlib.nullcontext():
                    _train_eval(fit_on, evaluate_on, path, run)
            except Exception as exc:  # a failing baseline must not lose the main figures
                logger.exception("baseline %s failed", name)
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            figures = {"pipeline": [c["name"] for c in pipeline["pipeline"]], **run.figures()}
            figures.update(_cross_fitted(run.confidences, run.correct, seed))
            if name == "diet":
                figures.update(_extrapolate_diet(float(np.mean(run.train_seconds)), epoch_seconds, diet_epochs))
            results[name] = figures
    same = project if project_mask is None else _Run(
        [g for g, m in zip(project.gold, project_mask) if m],
        [r for r, m in zip(project.rankings, project_mask) if m],
        project.train_seconds[:1], project.predict_ms[:1],
    )
    results["project_same_fold"] = {**same.figures(), **_cross_fitted(same.confidences, same.correct, seed)}
    results["evaluated_on"] = where
    results["coverage_method"] = (
        "threshold cross-fitted on the evaluation predictions (chosen on one random half, "
        "applied to the other, and vice versa)")
    return results


def _extrapolate_diet(train_seconds: float, epoch_seconds: List[float], epochs: int) -> Dict[str, Any]:
    """DIET's training time at its default epochs from a short run.

    measured time + (300 - epochs) x the last epoch's time (the first epoch also traces the
    TensorFlow graph); without epoch timings, measured x 300 / epochs.
    """
    figures: Dict[str, Any] = {"epochs": epochs, "extrapolated_to_epochs": DIET_DEFAULT_EPOCHS}
    if epoch_seconds:
        steady = epoch_seconds[-1]
        figures["epoch_seconds"] = [round(t, 2) for t in epoch_seconds]
        figures["train_seconds_extrapolated"] = round(
            train_seconds + (DIET_DEFAULT_EPOCHS - len(epoch_seconds)) * steady, 1)
        figures["extrapolation"] = "measured + (300 - epochs) x last epoch"
    else:
        figures["train_seconds_extrapolated"] = round(train_seconds * DIET_DEFAULT_EPOCHS / epochs, 1)
        figures["extrapolation"] = "measured x 300 / epochs"
    return figures


@contextlib.contextmanager
def _keras_epoch_timer(times: List[float]) -> Iterator[None]:
    """Record the duration of each training epoch of Keras models fitted meanwhile (DIET)."""
    try:
        import keras
    except ImportError:  # pragma: no cover - Rasa always brings TensorFlow/Keras
        yield
        return

    class _EpochTimer(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            times.append(time.perf_counter() - self._started)

    original = keras.Model.fit

    def fit(model: Any, *args: Any, **kwargs: Any) -> Any:
        if "epochs" in kwargs:  # the training call (not Rasa's one-step warm-up on load)
            kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + [_EpochTimer()]
        return original(model, *args, **kwargs)

    keras.Model.fit = fit
    try:
        yield
    finally:
        keras.Model.fit = original


def _cross_fitted(conf: np.ndarray, ok: np.ndarray, seed: int) -> Dict[str, Any]:
    thresholds, groups = _cross_fitted_thresholds(conf, ok, seed)
    return _coverage_report(conf, ok, thresholds, groups)


def _cpus() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
