"""``webcare learn`` (retrain on the reviewed corrections, evaluate, promote) and
``webcare models`` (list, promote, roll back): the console's learning buttons on the command line."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
from typing import Any, Dict, Optional

from bot.config import Config

# Imports inside the handlers are lazy on purpose: `webcare --help` and each command load only
# what they use (Rasa and TensorFlow take seconds to import).


def add_commands(sub: Any) -> None:
    """Add this group's commands to the ``webcare`` parser."""
    learn = sub.add_parser(
        "learn", help="retrain on the reviewed corrections, evaluate the candidate against the model in use, "
        "and promote it when its gate passes (learning.promotion, or --promote)")
    promote = learn.add_mutually_exclusive_group()
    promote.add_argument("--promote", action="store_true", help="promote a candidate that passes its gate")
    promote.add_argument("--no-promote", action="store_true", help="leave the candidate for a person to promote")
    learn.add_argument("--job", type=int, help=argparse.SUPPRESS)  # the service's background process
    learn.add_argument("--json", action="store_true", help="print the finished job and its model as JSON")
    learn.set_defaults(handler=_learn)

    models = sub.add_parser("models", help="the trained models: list them, promote one, roll back")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION")
    models_sub.add_parser("list", help="the model in use and the latest candidates (JSON)")
    promote_one = models_sub.add_parser("promote", help="load a candidate into every Rasa replica")
    promote_one.add_argument("model_id", type=int)
    models_sub.add_parser("rollback", help="load the previous model into every Rasa replica again")
    models.set_defaults(handler=_models)


def _store(config: Config) -> Any:
    from bot.store.database import Store

    return Store.from_url(config.database_url)


def _progress(store: Any, job_id: int, done: threading.Event) -> None:
    from bot.learning import registry

    last = None
    while not done.wait(3.0):
        job = store.transaction(registry.job, job_id)
        shown = (job["phase"], int(job["progress"] * 20))
        if shown != last:
            left = f", about {job['remaining_seconds']:.0f} s left" if job.get("remaining_seconds") else ""
            print(f"learn: [{'#' * shown[1]:<20}] {job['phase']}{left}", file=sys.stderr, flush=True)
            last = shown


def _learn(args: argparse.Namespace, parser: argparse.ArgumentParser, config: Config) -> int:
    from bot import processes
    from bot.errors import Conflict
    from bot.learning import registry
    from bot.retraining.job import run_job

    store = _store(config)
    try:
        job_id: Optional[int] = args.job
        if job_id is None:
            auto = args.promote or (config.learning.promotion == "auto" and not args.no_promote)
            try:
                job_id = store.transaction(lambda s: registry.start_job(s, None, auto).id)
            except Conflict as exc:
                print(f"webcare: {exc}", file=sys.stderr)
                return 1
        done = threading.Event()
        watcher = threading.Thread(target=_progress, args=(store, job_id, done), daemon=True)
        watcher.start()
        try:
            with processes.sigterm_exits("the retraining job"):  # SIGTERM: the job fails, and says so
                job = run_job(config, job_id, store)
        finally:
            done.set()
        model: Optional[Dict[str, Any]] = None
        if job.get("candidate_id"):
            model = store.transaction(registry.model, job["candidate_id"])
        if args.json:
            print(json.dumps({"job": job, "model": model}, indent=2))
        else:
            _summary(job, model)
        return 0 if job["status"] == "succeeded" else 1
    finally:
        store.close()


def _summary(job: Dict[str, Any], model: Optional[Dict[str, Any]]) -> None:
    if job["status"] != "succeeded":
        print(f"learn: job {job['id']} failed: {job['error']}")
        return
    print(f"learn: job {job['id']} trained in {job['training_seconds']} s, {job['elapsed_seconds']} s in all")
    if model is None:
        return
    evaluation = model.get("evaluation") or {}
    for side in ("in_use", "candidate"):
        scores = evaluation.get(side)
        if scores:
            print(f"  {side:9}: held-out accuracy {scores['accuracy']} coverage {scores['coverage']} (n={scores['n']}); "
                  f"stories failed {scores['stories_failed']}/{scores['stories']}")
    gate = evaluation.get("gate") or {}
    print(f"  gate: {'passed' if gate.get('passed') else 'FAILED'} — {'; '.join(gate.get('reasons', []))}")
    print(f"  model {model['id']} ({model['file']}) is {model['status']}")


def _models(args: argparse.Namespace, parser: argparse.ArgumentParser, config: Config) -> int:
    from bot.errors import WebcareError
    from bot.learning import registry
    from bot.retraining import promotion

    store = _store(config)
    try:
        if args.models_command in (None, "list"):
            print(json.dumps(store.transaction(registry.models), indent=2))
            return 0
        try:
            if args.models_command == "promote":
                result = asyncio.run(promotion.promote(store, config, args.model_id, None))
            else:
                result = asyncio.run(promotion.promote(store, config, None, None, rollback=True))
        except WebcareError as exc:
            print(f"webcare: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(result, indent=2))
        return 0
    finally:
        store.close()
