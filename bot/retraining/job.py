"""A retraining job: the reviewed corrections → a candidate model, evaluated against the model
in use before it serves anyone.

Runs in a process of its own (``webcare learn``, or started by the service for the console's
"Retrain": :func:`spawn`), so the service keeps answering; its progress is a row in the store
(:mod:`bot.learning.registry`) that every replica's console reads. Phases:

1. ``collecting`` — decided drafts become examples; the accepted and relabelled ones, less the
   held-out share (``learning.holdout_share``), are written as the job's own training file;
2. ``training`` — ``rasa train`` into ``{rasa.model_dir}/candidates/`` (the progress bar follows
   the estimate from earlier jobs);
3. ``evaluating`` — the candidate and the model in use, each loaded here, parse the held-out
   verified messages (accuracy, auto-send coverage at ``learning.target_precision``, per intent,
   the messages whose intent changed) and run the test stories end to end (each turn's text
   through the NLU, then the next actions);
4. the gate (:func:`bot.learning.registry.gate`) makes it a candidate or rejects it; with
   ``learning.promotion: auto`` a candidate that passed is promoted (``swapping``).
"""
from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import aiohttp

from bot import processes
from bot.config import Config
from bot.learning import corrections, registry
from bot.retraining import promotion
from bot.retraining.promotion import CANDIDATES, model_path
from bot.retraining.replicas import serving
from bot.rasa.stack import PROJECT
from bot.rasa.training import latest_model, train
from bot.store.database import Store

logger = logging.getLogger(__name__)

TEST_STORIES = PROJECT / "tests" / "test_stories.yml"
CHANGED_SHOWN = 50  # messages whose intent changed, listed in the evaluation
MAX_FAILED_NAMES = 200  # failed test stories named in the evaluation (the gate compares the names)
# Where each phase starts on the progress bar (training takes most of the time).
PHASES = {"collecting": 0.0, "training": 0.05, "evaluating": 0.6, "swapping": 0.95}
FALLBACK = "nlu_fallback"


@dataclass(frozen=True)
class Prediction:
    """One held-out message as a model parsed it."""

    text: str
    truth: str
    language: Optional[str]
    intent: Optional[str]
    confidence: float

    @property
    def right(self) -> bool:
        return self.intent == self.truth


# --------------------------------------------------------------------------- scoring


def auto_send_threshold(predictions: Sequence[Prediction], target: float) -> Optional[float]:
    """The lowest confidence threshold at which the messages at or above it are right at least
    ``target`` of the time (None when no threshold gets there)."""
    ranked = sorted(predictions, key=lambda p: -p.confidence)
    best: Optional[float] = None
    right = 0
    for index, prediction in enumerate(ranked, start=1):
        right += prediction.right
        last_of_group = index == len(ranked) or ranked[index].confidence < prediction.confidence
        if last_of_group and right / index >= target - 1e-12:
            best = prediction.confidence
    return best


def scores(predictions: Sequence[Prediction], target: float) -> Dict[str, Any]:
    """Accuracy and auto-send coverage at ``target`` precision on the held-out messages."""
    n = len(predictions)
    threshold = auto_send_threshold(predictions, target)
    covered = [p for p in predictions if threshold is not None and p.confidence >= threshold]
    return {
        "n": n,
        "accuracy": round(sum(p.right for p in predictions) / n, 4) if n else None,
        "coverage": round(len(covered) / n, 4) if n else None,
        "threshold": None if threshold is None else round(threshold, 4),
        "precision": round(sum(p.right for p in covered) / len(covered), 4) if covered else None,
    }


def per_intent(candidate: Sequence[Prediction], current: Sequence[Prediction]) -> List[Dict[str, Any]]:
    """Per true intent: messages, right with the model in use, right with the candidate."""
    total: Counter = Counter(p.truth for p in candidate)
    now: Counter = Counter(p.truth for p in candidate if p.right)
    before: Counter = Counter(p.truth for p in current if p.right)
    return [{"intent": intent, "n": total[intent], "in_use": before[intent], "candidate": now[intent],
             "change": now[intent] - before[intent]}
            for intent in sorted(total, key=lambda i: (-(abs(now[i] - before[i])), i))]


def changed(candidate: Sequence[Prediction], current: Sequence[Prediction]) -> List[Dict[str, Any]]:
    """The held-out messages whose top intent differs between the two models (fixed ones first)."""
    rows = [{"text": new.text, "truth": new.truth, "language": new.language,
             "in_use": old.intent, "in_use_confidence": round(old.confidence, 3),
             "candidate": new.intent, "candidate_confidence": round(new.confidence, 3),
             "fixed": new.right and not old.right, "broken": old.right and not new.right}
            for new, old in zip(candidate, current) if new.intent != old.intent]
    rows.sort(key=lambda r: (not r["fixed"], not r["broken"]))
    return rows


def evaluation(candidate: Dict[str, Any], current: Optional[Dict[str, Any]],
               candidate_predictions: Sequence[Prediction], current_predictions: Sequence[Prediction],
               settings: registry.GateSettings) -> Dict[str, Any]:
    """The side-by-side the console shows, with the gate's verdict."""
    passed, reasons = registry.gate(candidate, current, settings)
    moved = changed(candidate_predictions, current_predictions) if current else []
    return {"candidate": candidate, "in_use": current,
            "per_intent": per_intent(candidate_predictions, current_predictions) if current else [],
            "changed": moved[:CHANGED_SHOWN], "changed_count": len(moved),
            "gate": {"passed": passed, "reasons": reasons}}


# --------------------------------------------------------------------------- models, loaded here


async def _model_scores(model: Path, examples: Sequence[Tuple[str, str, Optional[str]]],
                        stories: Optional[Path], target: float) -> Tuple[Dict[str, Any], List[Prediction]]:
    """Load ``model`` with Rasa, parse the held-out messages and run the test stories."""
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))
    predictions: List[Prediction] = []
    for text, truth, language in examples:
        parsed = await agent.parse_message(text)
        intent = (parsed.get("intent") or {}).get("name")
        confidence = float((parsed.get("intent") or {}).get("confidence") or 0.0)
        if intent == FALLBACK:  # never auto-sent: count it as a miss at confidence 0
            confidence = 0.0
        predictions.append(Prediction(text, truth, language, intent, confidence))
    result = scores(predictions, target)
    result.update(await _stories(agent, stories))
    return result, predictions


async def _stories(agent: Any, stories: Optional[Path]) -> Dict[str, Any]:
    """``stories``, ``stories_failed`` (and their names) and the accuracy of the intents and
    actions of the test stories, run end to end."""
    if stories is None or not stories.exists():
        return {"stories": None, "stories_failed": None, "failed_stories": [], "turn_accuracy": None}
    from rasa.core.test import _collect_story_predictions, _create_data_generator

    # end to end: each user turn's text goes through the model's NLU too, so a story fails when
    # the intent of its text is wrong as well as when the next action is
    generator = _create_data_generator(str(stories), agent, None, True)
    trackers = generator.generate_story_trackers()
    evaluated, _, _ = await _collect_story_predictions(trackers, agent, use_e2e=True)
    targets, predicted = evaluated.evaluation_store.serialise()
    right = sum(1 for t, p in zip(targets, predicted) if t == p)
    failed = sorted({tracker.sender_id for tracker in evaluated.failed_stories})  # the stories' names
    return {"stories": len(trackers), "stories_failed": len(evaluated.failed_stories),
            "failed_stories": failed[:MAX_FAILED_NAMES],
            "turn_accuracy": round(right / len(targets), 4) if targets else None}


async def served_model(config: Config) -> Optional[str]:
    """The file name the first Rasa replica answering ``/status`` serves (None: none answers)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for url in config.rasa.urls:
            try:
                return await serving(http, url)
            except Exception as exc:  # noqa: BLE001 - any replica that answers will do
                logger.warning("learning: %s/status: %s", url, exc)
    return None


def current_model(store: Store, config: Config) -> Optional[Tuple[int, str]]:
    """``(id, file name)`` of the model in use: what the replicas serve (adopted into the store
    when it says otherwise), else the store's, else the newest file in ``rasa.model_dir``."""
    served = asyncio.run(served_model(config))
    if served is None:
        found = store.transaction(registry.in_use_file)
        if found is not None:
            return found
        newest = latest_model(PROJECT / config.rasa.model_dir)
        served = newest.name if newest else None
    if served is None:
        return None
    return store.transaction(registry.adopt, served)


# --------------------------------------------------------------------------- the job


class JobEnded(RuntimeError):
    """The job's row no longer says it runs: its process stops without touching anything."""


class Heartbeat:
    """Moves the job's progress bar while a phase runs (a thread: training blocks)."""

    def __init__(self, store: Store, job_id: int, estimate: float) -> None:
        self.store, self.job_id, self.estimate = store, job_id, max(1.0, estimate)
        self.started = time.monotonic()
        self.phase = "collecting"
        self.ended = False  # set when a beat finds the job no longer running
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"learning-job-{job_id}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self.enter("collecting")
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def progress(self) -> float:
        """The phase's start, moving towards the next phase's with the estimated time."""
        start = PHASES[self.phase]
        following = [v for v in PHASES.values() if v > start]
        end = min(following) if following else 0.99
        elapsed = (time.monotonic() - self.started) / self.estimate
        return max(start, min(end - 0.01, elapsed))

    def enter(self, phase: str, **fields: Any) -> None:
        """Start ``phase`` (and store any job ``fields``); raises :class:`JobEnded` when the job
        no longer runs (failed as stale meanwhile: another job may be running by now)."""
        self.phase = phase
        if self.ended or not self.store.transaction(registry.beat, self.job_id, phase, self.progress(), **fields):
            raise JobEnded(f"job {self.job_id} was ended by someone else (its heartbeat had stopped)")
        logger.info("learning: job %d: %s", self.job_id, phase)

    def _run(self) -> None:
        while not self._stop.wait(2.0):
            try:
                if not self.store.transaction(registry.beat, self.job_id, self.phase, self.progress()):
                    self.ended = True
            except Exception:  # noqa: BLE001 - a missed beat is not the job's end
                logger.exception("learning: job %d: heartbeat failed", self.job_id)


def run_job(config: Config, job_id: int, store: Store) -> Dict[str, Any]:
    """Run job ``job_id`` (already started: :func:`bot.learning.registry.start_job`) to its end;
    returns the job as the API shows it. Never raises for a failed training: the job fails
    (interrupted, it fails too, then the interruption goes on)."""
    settings = config.learning
    estimate, auto, starter = store.transaction(registry.job_settings, job_id)
    try:
        # the job's own copy of the training data: jobs of other stores (a bench, a test) on this
        # machine never train on each other's corrections
        with Heartbeat(store, job_id, estimate) as heartbeat, \
                tempfile.TemporaryDirectory(prefix=f"webcare-job-{job_id}-") as scratch:
            learned = Path(scratch) / "learned_nlu.yml"
            store.transaction(corrections.collect)
            examples = store.transaction(corrections.write_training_data, learned, settings.holdout_share)
            held_out = store.transaction(corrections.held_out_examples, settings.holdout_share)
            current = current_model(store, config)
            if current is not None and not model_path(config, current[1]).is_file():
                raise RuntimeError(f"the model in use, {current[1]}, is not in {config.rasa.model_dir}/: "
                                   "nothing to compare a candidate with (rasa.model_dir must be the replicas' folder)")

            heartbeat.enter("training")
            started = time.monotonic()
            candidates = PROJECT / config.rasa.model_dir / CANDIDATES
            candidate_file = train(PROJECT, candidates, force=True, extra_data=[learned],
                                   name=f"candidate-{job_id}-{time.strftime('%Y%m%d-%H%M%S')}")
            if candidate_file is None:
                raise RuntimeError("rasa train wrote no model")
            training_seconds = round(time.monotonic() - started, 1)

            heartbeat.enter("evaluating", training_seconds=training_seconds)
            target = settings.target_precision
            stories = TEST_STORIES if TEST_STORIES.exists() else None
            new_scores, new_predictions = asyncio.run(_model_scores(candidate_file, held_out, stories, target))
            old_scores: Optional[Dict[str, Any]] = None
            old_predictions: List[Prediction] = []
            if current is not None:
                old_scores, old_predictions = asyncio.run(
                    _model_scores(model_path(config, current[1]), held_out, stories, target))
                old_scores["model_id"], old_scores["file"] = current
            result = evaluation(new_scores, old_scores, new_predictions, old_predictions,
                                registry.GateSettings.from_config(settings))
            heartbeat.enter("evaluating")  # still ours: register the candidate
            candidate_id = store.transaction(registry.add_candidate, job_id, candidate_file.name, examples,
                                             training_seconds, result, result["gate"]["passed"])
            if not result["gate"]["passed"]:
                candidate_file.unlink(missing_ok=True)  # never served: its evaluation stays, its file goes
            elif auto:
                heartbeat.enter("swapping")
                asyncio.run(promotion.promote(store, config, candidate_id, starter))
        store.transaction(registry.finish_job, job_id)
    except JobEnded as exc:
        logger.error("learning: %s", exc)
    except BaseException as exc:  # whatever went wrong, the job says so and ends
        logger.exception("learning: job %d failed", job_id)
        store.transaction(registry.finish_job, job_id, f"{type(exc).__name__}: {exc}" if str(exc)
                          else type(exc).__name__)
        if not isinstance(exc, Exception):
            raise
    return store.transaction(registry.job, job_id)


def spawn(config: Config, job_id: int) -> None:
    """Run the job in a process of its own (``webcare learn --job``; it ends with the service).
    Blocking (a fork): async callers run it in a thread. A process that ends without finishing
    its job (it could not start, or crashed) fails the job at once, with its exit code."""
    command = [sys.executable, "-m", "bot"]
    if config.source:
        command += ["--config", str(Path(config.source).resolve())]
    logs = PROJECT / "var" / "learning"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"job-{job_id}-{time.strftime('%Y%m%d-%H%M%S')}.log"  # ids restart in every new store
    with open(log, "ab") as out:
        process = processes.spawn(command + ["learn", "--job", str(job_id)], cwd=str(PROJECT), stdout=out,
                                  stderr=subprocess.STDOUT)

    def reap() -> None:
        processes.reap(process, timeout=24 * 3600)
        if process.returncode:
            store = Store.from_url(config.database_url, migrate=False)
            try:
                store.transaction(registry.finish_job, job_id,
                                  f"the job's process ended with exit code {process.returncode}; see {log}")
            finally:
                store.close()

    threading.Thread(target=reap, name=f"learning-job-{job_id}-reaper", daemon=True).start()
