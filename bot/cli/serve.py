"""``webcare run``, ``webcare service``, ``webcare train``: start the parts, train the model."""
from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path
from typing import Any

from bot import __version__
from bot.cli.project import PROJECT
from bot.config import Config
from bot.rasa import training  # light: no Rasa import

# Imports inside the handlers are lazy on purpose: `webcare --help` and each command load only
# what they use (Rasa and TensorFlow take seconds to import).


def add_commands(sub: Any) -> None:
    """Add this group's commands to the ``webcare`` parser."""
    run = sub.add_parser("run", help="train if needed, then start the Rasa server, the action server and the service")
    run.add_argument("--no-train", action="store_true", help="start with the existing model even if stale")
    service = sub.add_parser("service", help="start only the webcare service (aiohttp)")
    service.add_argument("--host", help="listen address (default from the configuration)")
    service.add_argument("--port", type=int, help="port (default from the configuration)")
    train = sub.add_parser("train", help="train the Rasa model when it is missing or stale")
    train.add_argument("--force", action="store_true", help="train even when the model is up to date")
    run.set_defaults(handler=run_command)
    service.set_defaults(handler=service_command)
    train.set_defaults(handler=train_command)


LEARNED_DATA = PROJECT / training.LEARNED_DATA  # the reviewed corrections (bot/learning)


def learned_data(config: Config) -> Path:
    """Write the reviewed corrections from the store to :data:`LEARNED_DATA` (every replica
    writes the same file from the same store; the held-out share stays out); the path to train on."""
    from bot.learning.corrections import write_training_data
    from bot.store.database import Store

    store = Store.from_url(config.database_url)
    try:
        count = store.transaction(write_training_data, LEARNED_DATA, config.learning.holdout_share)
    finally:
        store.close()
    print(f"model: {count} reviewed correction(s) from the store in {LEARNED_DATA.relative_to(PROJECT)}")
    return LEARNED_DATA


def train_command(args: argparse.Namespace, parser: argparse.ArgumentParser, config: Config) -> int:
    """Train the Rasa model when it is missing or stale (with the reviewed corrections)."""
    from bot.rasa.training import train

    try:
        train(PROJECT, PROJECT / config.rasa.model_dir, force=args.force, extra_data=[learned_data(config)])
    except RuntimeError as exc:
        print(f"webcare: {exc}", file=sys.stderr)
        return 1
    return 0


def run_command(args: argparse.Namespace, parser: argparse.ArgumentParser, config: Config) -> int:
    """Train if needed, then start and supervise the three parts."""
    from bot.launcher import check_ports, run_all
    from bot.rasa.training import train

    held = check_ports(config, PROJECT)  # a webcare run left over: say so before training
    for problem in held:
        print(f"webcare: {problem}", file=sys.stderr)
    if held:
        return 1
    (PROJECT / "var").mkdir(exist_ok=True)
    if not args.no_train:
        try:  # corrections reach a running assistant through the learning loop's gate, not a restart
            train(PROJECT, PROJECT / config.rasa.model_dir, extra_data=[learned_data(config)], watch_extra=False)
        except RuntimeError as exc:
            print(f"webcare: {exc}", file=sys.stderr)
            return 1
    return run_all(config, PROJECT)


def service_command(args: argparse.Namespace, parser: argparse.ArgumentParser, config: Config) -> int:
    """Start only the webcare service (aiohttp)."""
    from aiohttp import web

    from bot.web.app import create_app

    host = args.host or config.service.host
    port = args.port or config.service.port
    import dataclasses

    # the port names this replica (e.g. its dispatcher's leases), so use the real one
    config = dataclasses.replace(config, service=dataclasses.replace(config.service, host=host, port=port))
    try:
        app = create_app(config)
    except Exception as exc:  # a broken store or plugin must stop start-up, loudly
        print(f"webcare: cannot start the service: {exc}", file=sys.stderr)
        return 1
    # Everything loaded at start-up lives as long as the process: keep it out of the
    # garbage collector's full collections, whose pauses would otherwise stall webhooks.
    gc.collect()
    gc.freeze()
    web.run_app(app, host=host, port=port, print=lambda *_: print(
        f"webcare service {__version__} listening on http://{host}:{port}/", flush=True))
    return 0
