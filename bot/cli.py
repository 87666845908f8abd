"""The ``webcare`` command line."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

from bot import __version__
from bot.config import ConfigError, load_config

logger = logging.getLogger(__name__)

PROJECT = Path.cwd()


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand and its options."""
    parser = argparse.ArgumentParser(
        prog="webcare",
        description="webcare: a Rasa assistant drafts answers, agents approve them, "
        "every contact gets a root cause.",
    )
    parser.add_argument("--version", action="version", version=f"webcare {__version__}")
    parser.add_argument("--config", help="configuration file (default: $WEBCARE_CONFIG or ./webcare.yml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="train if needed, then start the Rasa server, the action server and the service")
    run.add_argument("--no-train", action="store_true", help="start with the existing model even if stale")

    service = sub.add_parser("service", help="start only the webcare service (aiohttp)")
    service.add_argument("--host", help="listen address (default from the configuration)")
    service.add_argument("--port", type=int, help="port (default from the configuration)")

    train = sub.add_parser("train", help="train the Rasa model when it is missing or stale")
    train.add_argument("--force", action="store_true", help="train even when the model is up to date")

    nlu = sub.add_parser("nlu", help="NLU tools")
    nlu_sub = nlu.add_subparsers(dest="nlu_command", metavar="NLU_COMMAND")
    crossval = nlu_sub.add_parser(
        "crossval", help="cross-validated intent accuracy of the project's NLU data (both languages)"
    )
    crossval.add_argument("--folds", type=int, default=5)
    crossval.add_argument("--data", default="data/nlu", help="NLU files or folder (default: data/nlu)")
    crossval.add_argument("--json", action="store_true", help="print JSON only")

    bench = sub.add_parser("bench", help="benchmarks (print JSON)")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    pipeline = bench_sub.add_parser(
        "pipeline", help="service overhead vs. Rasa's REST channel on the same messages")
    pipeline.add_argument("--messages", type=int, default=200)
    pipeline.add_argument("--database-url", help="store for the service (default: a fresh SQLite file)")
    pipeline.add_argument("--rasa-url", help="use a running Rasa server (with the webcare channel) instead of starting one")
    pipeline.add_argument("--json", action="store_true", help="print JSON only (the default output is JSON too)")

    users = sub.add_parser("users", help="console users")
    users_sub = users.add_subparsers(dest="users_command", metavar="USERS_COMMAND")
    users_add = users_sub.add_parser("add", help="add a console user (asks for the password twice)")
    users_add.add_argument("username")
    users_add.add_argument("--role", required=True, choices=["agent", "process_owner", "admin"])
    users_add.add_argument("--name", help="display name (default: the username)")
    users_add.add_argument("--password-stdin", action="store_true",
                           help="read the password from standard input instead of prompting")

    feedback = sub.add_parser(
        "export-feedback",
        help="write agents' intent corrections (picked alternatives, edits with an intent) as Rasa NLU YAML")
    feedback.add_argument("--out", help="output file (default: standard output)")
    feedback.add_argument("--since", help="only decisions from this day on (YYYY-MM-DD, UTC)")

    telegram = sub.add_parser("telegram", help="Telegram channel: register or remove its webhook")
    telegram_sub = telegram.add_subparsers(dest="telegram_command", metavar="TELEGRAM_COMMAND")
    set_webhook = telegram_sub.add_parser(
        "set-webhook", help="point Telegram at this service (secret token and allowed updates included)")
    set_webhook.add_argument("--channel", required=True, help="the channel's name under 'channels' in webcare.yml")
    set_webhook.add_argument("--url", required=True,
                             help="the service's public https:// URL (/webhooks/CHANNEL is appended)")
    set_webhook.add_argument("--drop-pending-updates", action="store_true")
    delete_webhook = telegram_sub.add_parser("delete-webhook", help="stop Telegram's webhook calls (e.g. to poll)")
    delete_webhook.add_argument("--channel", required=True, help="the channel's name under 'channels' in webcare.yml")
    delete_webhook.add_argument("--drop-pending-updates", action="store_true")

    sub.add_parser("version", help="print the version")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``webcare`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "version":
        print(f"webcare {__version__}")
        return 0
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"webcare: configuration error: {exc}", file=sys.stderr)
        return 2

    if args.command == "train":
        from bot.model_training import train

        try:
            train(PROJECT, PROJECT / config.rasa.model_dir, force=args.force)
        except RuntimeError as exc:
            print(f"webcare: {exc}", file=sys.stderr)
            return 1
        return 0

    if args.command == "run":
        from bot.launcher import run_all
        from bot.model_training import train

        (PROJECT / "var").mkdir(exist_ok=True)
        if not args.no_train:
            try:
                train(PROJECT, PROJECT / config.rasa.model_dir)
            except RuntimeError as exc:
                print(f"webcare: {exc}", file=sys.stderr)
                return 1
        return run_all(config, PROJECT)

    if args.command == "service":
        from aiohttp import web

        from bot.app import create_app

        host = args.host or config.service.host
        port = args.port or config.service.port
        try:
            app = create_app(config)
        except Exception as exc:  # a broken store or plugin must stop start-up, loudly
            print(f"webcare: cannot start the service: {exc}", file=sys.stderr)
            return 1
        web.run_app(app, host=host, port=port, print=lambda *_: print(
            f"webcare service {__version__} listening on http://{host}:{port}/", flush=True))
        return 0

    if args.command == "nlu":
        return _nlu(args, parser)
    if args.command == "users":
        return _users(args, parser, config)
    if args.command == "export-feedback":
        return _export_feedback(args, config)
    if args.command == "bench":
        return _bench(args, parser)
    if args.command == "telegram":
        if args.telegram_command is None:
            parser.parse_args(["telegram", "--help"])
            return 2
        from connectors.telegram import run_cli

        return run_cli(args, config)
    parser.print_help()
    return 2


def _nlu(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.nlu_command != "crossval":
        parser.parse_args(["nlu", "--help"])
        return 2
    from nlu.evaluation import cross_validate, load_rasa_examples

    _quiet_rasa()

    data = Path(args.data)
    files = sorted(data.rglob("*.yml")) if data.is_dir() else [data]
    if not files:
        print(f"webcare: no NLU files in {data}", file=sys.stderr)
        return 2
    examples = load_rasa_examples(files)
    report = cross_validate(examples, PROJECT / "config.yml", folds=args.folds)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['examples']} examples, {report['folds']}-fold cross-validation")
    print(f"intent accuracy {report['accuracy']:.3f}  macro F1 {report['macro_f1']:.3f}  top-3 {report['top3']:.3f}")
    for lang, accuracy in report["accuracy_by_language"].items():
        print(f"  {lang}: accuracy {accuracy:.3f}")
    print(f"training {report['train_seconds_per_fold']:.1f} s per fold, {report['predict_ms']:.1f} ms per message")
    if report["top_confusions"]:
        print("most frequent confusions:")
        for row in report["top_confusions"]:
            print(f"  {row['intent']} → {row['predicted']}: {row['count']}")
    return 0


def _bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.bench_command == "pipeline":
        from bot.benchmarks.pipeline import run_pipeline_bench

        _quiet_rasa()
        report = run_pipeline_bench(args.messages, args.database_url, args.rasa_url)
        print(json.dumps(report, indent=2))
        return 0
    parser.parse_args(["bench", "--help"])
    return 2


def _quiet_rasa() -> None:
    for name in ("rasa", "aiohttp.access", "bot.worker", "bot.dispatcher"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _read_password(from_stdin: bool) -> str:
    """The new user's password: one line of standard input, or typed twice."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("Password (at least 10 characters): ")
    second = getpass.getpass("Password again: ")
    if first != second:
        raise ValueError("the passwords do not match")
    return first


def _users(args: argparse.Namespace, parser: argparse.ArgumentParser, config) -> int:  # type: ignore[no-untyped-def]
    if args.users_command != "add":
        parser.parse_args(["users", "--help"])
        return 2
    from bot.auth import create_user
    from bot.errors import WebcareError
    from bot.store.database import Store

    try:
        password = _read_password(args.password_stdin)
    except (ValueError, EOFError, KeyboardInterrupt) as exc:
        print(f"webcare: {exc or 'cancelled'}", file=sys.stderr)
        return 1
    store = Store.from_url(config.database_url)
    try:
        user = store.transaction(create_user, args.username, password, args.role, args.name)
    except WebcareError as exc:
        print(f"webcare: cannot add the user: {exc.reason}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"added {user.role.value} {user.username!r} ({user.display_name})")
    return 0


def _export_feedback(args: argparse.Namespace, config) -> int:  # type: ignore[no-untyped-def]
    from bot.feedback import export, parse_since
    from bot.store.database import Store

    try:
        since = parse_since(args.since)
    except ValueError as exc:
        print(f"webcare: {exc}", file=sys.stderr)
        return 2
    store = Store.from_url(config.database_url)
    try:
        text, count = store.transaction(export, since)
    finally:
        store.close()
    if args.out:
        out = Path(args.out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"webcare: cannot write {out}: {exc}", file=sys.stderr)
            return 1
        print(f"exported {count} corrected example(s) to {out}")
    else:
        sys.stdout.write(text)
        print(f"exported {count} corrected example(s)", file=sys.stderr)
    return 0
