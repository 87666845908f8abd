"""The ``webcare`` command line."""
from __future__ import annotations

import argparse
import gc
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
    review = nlu_sub.add_parser(
        "review",
        help="training examples whose label the model disputes (wrong labels, examples fitting two intents) "
        "and the intent pairs it confuses most, from cross-validation; changes nothing")
    review_source = review.add_mutually_exclusive_group()
    review_source.add_argument("--data", default="data/nlu", help="NLU files or folder (default: data/nlu)")
    review_source.add_argument("--csv", help="a CSV of labelled examples (text,intent[,lang]) instead")
    review.add_argument("--folds", type=int, default=5)
    review.add_argument("--min-confidence", type=float, default=0.8,
                        help="list an example when the model's other intent has at least this confidence (default 0.8)")
    review.add_argument("--out", help="write every disputed example to this CSV file")
    review.add_argument("--json", action="store_true", help="print JSON only")

    bench = sub.add_parser("bench", help="benchmarks (print JSON)")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    pipeline = bench_sub.add_parser(
        "pipeline", help="service overhead vs. Rasa's REST channel on the same messages")
    pipeline.add_argument("--messages", type=int, default=200)
    pipeline.add_argument("--database-url", help="store for the service (default: a fresh SQLite file)")
    pipeline.add_argument("--rasa-url", help="use a running Rasa server (with the webcare channel) instead of starting one")
    pipeline.add_argument("--json", action="store_true", help="print JSON only (the default output is JSON too)")

    load = bench_sub.add_parser(
        "load", help="open-loop load on the signed webhook (R messages/s for S s), then drain: ack and e2e latency")
    load.add_argument("--rate", type=float, default=200, help="messages per second (default: 200)")
    load.add_argument("--seconds", type=float, default=60, help="how long to send (default: 60)")
    load.add_argument("--drain-seconds", type=float,
                      help="how long to wait afterwards for every answer (default: 120 + 0.25 s per message)")
    load.add_argument("--connections", type=int, default=100, help="client connection pool size (default: 100)")
    load.add_argument("--database-url", help="store for the service (default: a fresh SQLite file)")
    load.add_argument("--rasa-url", help="use a running Rasa server (with the webcare channel) instead of starting one")
    load.add_argument("--json", action="store_true", help="print JSON only (the default output is JSON too)")

    broadcast = bench_sub.add_parser(
        "broadcast", help="announce a fix to N subscribers through a rate-limited fake channel (kill and resume)")
    broadcast.add_argument("--recipients", type=int, default=600)
    broadcast.add_argument("--rate", type=int, default=30, help="the channel's limit, messages per second (default 30)")
    broadcast.add_argument("--kill-after", type=float, metavar="SECONDS",
                           help="kill -9 the service this long after the resolve, then start it again")
    broadcast.add_argument("--database-url", help="an empty store to use (default: a fresh SQLite file)")
    broadcast.add_argument("--json", action="store_true", help="print JSON only (the default output is JSON too)")

    bench_nlu = bench_sub.add_parser(
        "nlu", help="train the project's NLU pipeline through Rasa on a labelled CSV and measure it "
        "(accuracy, macro F1, top-3, auto-send coverage at 95 %%/98 %% precision, timings), "
        "with Rasa's LogisticRegressionClassifier and DIET as baselines",
        description="CSV files need a header with 'text' and 'intent' columns ('category' is accepted "
        "as an alias for 'intent', e.g. BANKING77's text,category); an optional 'lang' column is "
        "ignored here. Without --test the training file is cross-validated.")
    bench_nlu.add_argument("--train", required=True, metavar="CSV", help="training examples (text,intent or text,category)")
    bench_nlu.add_argument("--test", metavar="CSV", help="test examples; default: k-fold cross-validation on --train")
    bench_nlu.add_argument("--folds", type=int, default=5, help="folds of the cross-validation (default: 5)")
    bench_nlu.add_argument("--no-baselines", action="store_true",
                           help="skip Rasa's LogisticRegressionClassifier and DIET baselines")
    bench_nlu.add_argument("--diet-epochs", type=int, default=2,
                           help="epochs DIET trains for (time extrapolated to its default 300; default: 2)")
    bench_nlu.add_argument("--pipeline-config", default="config.yml",
                           help="Rasa config whose pipeline is measured (default: config.yml)")
    bench_nlu.add_argument("--json", action="store_true", help="print JSON only (the default output is JSON too)")
    bench_reports = bench_sub.add_parser(
        "reports", help="N synthetic contacts over 12 months in a fresh store, then every recurring-issue "
        "report query timed")
    bench_reports.add_argument("--contacts", type=int, default=100_000, help="contacts to generate (default: 100000)")
    bench_reports.add_argument("--database-url", help="a PostgreSQL server URL: a fresh database is created on it "
                               "and dropped afterwards (default: a temporary SQLite file)")
    bench_reports.add_argument("--repeats", type=int, default=3, help="runs per query; the median is reported")
    bench_reports.add_argument("--json", action="store_true", help="print JSON only (the default output is JSON too)")

    reports_cmd = sub.add_parser("reports", help="recurring-issue reports")
    reports_sub = reports_cmd.add_subparsers(dest="reports_command", metavar="REPORTS_COMMAND")
    digest = reports_sub.add_parser(
        "digest", help="send the weekly digest per root-cause owner to the configured report sinks now")
    digest.add_argument("--date", help="the day after the week to report (YYYY-MM-DD; default: today)")
    digest.add_argument("--again", action="store_true",
                        help="send it even when this digest was already sent (by the service or an earlier run)")

    import_intents = sub.add_parser(
        "import-intents",
        help="convert a CSV of labelled examples (text,intent[,lang]; 'category' is accepted for "
        "'intent') to Rasa NLU YAML, refusing empty texts, duplicates and conflicting labels",
        description="Reads a CSV with a header: 'text' and 'intent' ('category' is accepted as an alias, "
        "'intent' wins when both exist) and optionally 'lang'. Nothing is written when any row has an "
        "empty text, duplicates another (same text and intent, ignoring case and spacing), or appears "
        "under two intents; the report lists every such row by line number.")
    import_intents.add_argument("file", metavar="FILE.csv")
    import_intents.add_argument("--out", default="data/nlu/imported.yml",
                                help="Rasa NLU YAML to write (default: data/nlu/imported.yml)")
    import_intents.add_argument("--lang", help="language of rows without a 'lang' value (e.g. nl, en)")
    import_intents.add_argument("--drop-duplicates", action="store_true",
                                help="keep the first of same-intent duplicates instead of refusing")
    import_intents.add_argument("--force", action="store_true",
                                help="replace --out even if import-intents did not write it")

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

    crm = sub.add_parser("crm", help="the built-in SQL CRM")
    crm_sub = crm.add_subparsers(dest="crm_command", metavar="CRM_COMMAND")
    crm_import = crm_sub.add_parser(
        "import", help="upsert customers (and contracts) from CSV into the SQL CRM; nothing is written "
        "when any row is invalid",
        description="customers.csv columns: customer_number, name, postcode, house_number (required), "
        "email, phone, segment (optional). contracts.csv columns: contract_id, customer_number "
        "(required), product, status, start_date, end_date (YYYY-MM-DD), monthly_amount (optional).")
    crm_import.add_argument("customers", metavar="CUSTOMERS.csv")
    crm_import.add_argument("--contracts", metavar="CONTRACTS.csv", help="contracts to upsert too")

    gdpr = sub.add_parser("gdpr", help="export or erase everything webcare holds about one customer")
    gdpr_sub = gdpr.add_subparsers(dest="gdpr_command", metavar="GDPR_COMMAND")
    customer_help = ("a webcare customer id, a CRM customer number or channel:external_id "
                     "(e.g. telegram:123456789)")
    gdpr_export = gdpr_sub.add_parser(
        "export", help="one JSON document with the customer's data in the store and their Rasa trackers")
    gdpr_export.add_argument("customer", metavar="CUSTOMER", help=customer_help)
    gdpr_export.add_argument("--out", metavar="FILE", help="write the JSON here (default: standard output)")
    gdpr_export.add_argument("--by", choices=["id", "crm", "identity"], help="how to read CUSTOMER when ambiguous")
    gdpr_export.add_argument("--allow-without-rasa", action="store_true",
                             help="succeed even when the Rasa trackers cannot be fetched (noted in the export)")
    gdpr_erase = gdpr_sub.add_parser(
        "erase", help="erase the customer's personal data from the store and Rasa; aggregates stay",
        description="The store is erased in one transaction; then each Rasa tracker is emptied. When Rasa "
        "is down the command exits 1 and lists the trackers still to erase: run it again with the "
        "customer id it printed.")
    gdpr_erase.add_argument("customer", metavar="CUSTOMER", help=customer_help)
    gdpr_erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    gdpr_erase.add_argument("--by", choices=["id", "crm", "identity"], help="how to read CUSTOMER when ambiguous")
    gdpr_erase.add_argument("--actor", metavar="USERNAME", help="the console user requesting it (for the audit log)")
    gdpr_erase.add_argument("--include-crm", action="store_true",
                            help="also delete the customer's record and contracts in the built-in SQL CRM")

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
        from bot.rasa.training import train

        try:
            train(PROJECT, PROJECT / config.rasa.model_dir, force=args.force)
        except RuntimeError as exc:
            print(f"webcare: {exc}", file=sys.stderr)
            return 1
        return 0

    if args.command == "run":
        from bot.launcher import check_ports, run_all
        from bot.rasa.training import train

        held = check_ports(config, PROJECT)  # a webcare run left over: say so before training
        for problem in held:
            print(f"webcare: {problem}", file=sys.stderr)
        if held:
            return 1
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

    if args.command == "nlu":
        return _nlu(args, parser)
    if args.command == "users":
        return _users(args, parser, config)
    if args.command == "export-feedback":
        return _export_feedback(args, config)
    if args.command == "bench":
        return _bench(args, parser)
    if args.command == "import-intents":
        return _import_intents(args)
    if args.command == "reports":
        return _reports(args, parser, config)
    if args.command == "gdpr":
        return _gdpr(args, parser, config)
    if args.command == "crm":
        return _crm(args, parser, config)
    if args.command == "telegram":
        if args.telegram_command is None:
            parser.parse_args(["telegram", "--help"])
            return 2
        from connectors.telegram import run_cli

        return run_cli(args, config)
    parser.print_help()
    return 2


def _nlu(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.nlu_command == "crossval":
        return _nlu_crossval(args)
    if args.nlu_command == "review":
        return _nlu_review(args)
    parser.parse_args(["nlu", "--help"])
    return 2


def _nlu_examples(data_arg: str, csv_arg: Optional[str] = None) -> Optional[list]:
    """The examples of ``--csv`` or ``--data``; None (after saying why) when there are none."""
    from nlu.evaluation import load_rasa_examples

    if csv_arg:
        from nlu.importing import CsvFormatError, read_training_examples

        try:
            return read_training_examples(Path(csv_arg))
        except CsvFormatError as exc:
            print(f"webcare: {exc}", file=sys.stderr)
            return None
    data_path = Path(data_arg)
    files = sorted(data_path.rglob("*.yml")) if data_path.is_dir() else [data_path]
    if not files or not all(f.is_file() for f in files):
        print(f"webcare: no NLU files in {data_path}", file=sys.stderr)
        return None
    from rasa.shared.exceptions import RasaException

    try:
        return load_rasa_examples(files)
    except RasaException as exc:  # e.g. a YAML error, with its file and line
        print(f"webcare: {exc}", file=sys.stderr)
        return None


def _nlu_crossval(args: argparse.Namespace) -> int:
    from nlu.evaluation import cross_validate

    _quiet_rasa()
    examples = _nlu_examples(args.data)
    if examples is None:
        return 2
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


def _nlu_review(args: argparse.Namespace) -> int:
    from collections import Counter

    from nlu.evaluation import cross_validated_rankings
    from nlu.label_review import review_labels, write_review_csv

    if not 0.0 <= args.min_confidence <= 1.0:
        print("webcare: --min-confidence must be between 0 and 1", file=sys.stderr)
        return 2
    if args.folds < 2:
        print("webcare: --folds must be at least 2", file=sys.stderr)
        return 2
    if args.out and not Path(args.out).resolve().parent.is_dir():  # known before the training, not after
        print(f"webcare: --out {args.out}: no such directory", file=sys.stderr)
        return 2
    _quiet_rasa()
    examples = _nlu_examples(args.data, args.csv)
    if examples is None:
        return 2
    counts = Counter(e.intent for e in examples)
    if len(counts) < 2 or min(counts.values()) < args.folds:
        rare = sorted(i for i, n in counts.items() if n < args.folds)
        print(f"webcare: {args.folds}-fold cross-validation needs at least {args.folds} examples per intent "
              f"and two intents; too few for: {', '.join(rare[:10]) or '(only one intent)'}", file=sys.stderr)
        return 2
    cv = cross_validated_rankings(examples, PROJECT / "config.yml", folds=args.folds)
    review = review_labels(examples, cv.rankings, min_confidence=args.min_confidence)
    if args.out:
        write_review_csv(review, Path(args.out))
    if args.json:
        print(json.dumps({**review.to_json(), "folds": args.folds}, indent=2, ensure_ascii=False))
        return 0
    print(f"{review.examples} examples, {args.folds}-fold cross-validation: accuracy {review.accuracy:.3f} "
          "against the labels as they are")
    print(f"{len(review.disputed)} example(s) the model disputes with confidence ≥ {review.min_confidence:.2f} "
          "(a wrong label, an example that fits two intents, or one the model needs more examples like):")
    shown = 20
    for d in review.disputed[:shown]:
        where = f"  [{d.source}]" if d.source else ""
        print(f"  {d.confidence:.2f}  {d.text!r}: labelled {d.intent}, looks like {d.suggested}{where}")
    if len(review.disputed) > shown:
        more = f"--out FILE.csv lists all {len(review.disputed)}" if not args.out else f"all in {args.out}"
        print(f"  … and {len(review.disputed) - shown} more ({more})")
    elif args.out:
        print(f"  written to {args.out}")
    if review.confused_pairs:
        print("intent pairs most often confused (out-of-fold errors either way):")
        for pair in review.confused_pairs:
            a, b = pair.intents
            print(f"  {a} ↔ {b}: {pair.errors} of {pair.examples} examples ({pair.share:.1%})")
    return 0


def _bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.bench_command == "pipeline":
        from bot.bench.pipeline import run_pipeline_bench

        _quiet_rasa()
        try:
            report = run_pipeline_bench(args.messages, args.database_url, args.rasa_url)
        except RuntimeError as exc:  # no trained model, a server that would not start
            print(f"webcare: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(report, indent=2))
        return 0
    if args.bench_command == "load":
        from bot.bench.load import run_load_bench

        _quiet_rasa()
        try:
            report = run_load_bench(args.rate, args.seconds, args.drain_seconds, args.database_url,
                                    args.rasa_url, args.connections)
        except (ValueError, RuntimeError) as exc:
            print(f"webcare: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(report, indent=2))
        return 0
    if args.bench_command == "broadcast":
        from bot.bench.broadcast import run_broadcast_bench

        try:
            report = run_broadcast_bench(args.recipients, args.rate, args.kill_after, args.database_url)
        except (ValueError, RuntimeError) as exc:
            print(f"webcare: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(report, indent=2))
        return 0
    if args.bench_command == "nlu":
        return _bench_nlu(args)
    if args.bench_command == "reports":
        from bot.bench.reports import run_reports_bench

        report = run_reports_bench(args.contacts, args.database_url, repeats=args.repeats)
        print(json.dumps(report, indent=2))
        return 0
    parser.parse_args(["bench", "--help"])
    return 2


def _bench_nlu(args: argparse.Namespace) -> int:
    from nlu.benchmark import BenchInputError, run_nlu_bench

    _quiet_rasa()
    try:
        report = run_nlu_bench(
            Path(args.train), PROJECT / args.pipeline_config, Path(args.test) if args.test else None,
            folds=args.folds, baselines=not args.no_baselines, diet_epochs=args.diet_epochs)
    except BenchInputError as exc:
        print(f"webcare: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


def _import_intents(args: argparse.Namespace) -> int:
    from nlu.importing import import_intents, intents_missing_from_domain

    result = import_intents(Path(args.file), Path(args.out), lang=args.lang,
                            drop_duplicates=args.drop_duplicates, force=args.force)
    if not result.ok:
        print(f"webcare: {result.report}", file=sys.stderr)
        return 1
    print(result.report)
    missing = intents_missing_from_domain(result.intent_names, PROJECT / "domain.yml")
    if missing:
        print(f"note: {len(missing)} intent(s) are not declared in domain.yml yet: "
              f"{', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}")
    return 0


def _quiet_rasa() -> None:
    for name in ("rasa", "aiohttp.access", "bot.pipeline.worker", "bot.pipeline.dispatcher"):
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
    from bot.web.auth import create_user
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


def _crm(args: argparse.Namespace, parser: argparse.ArgumentParser, config) -> int:  # type: ignore[no-untyped-def]
    if args.crm_command != "import":
        parser.parse_args(["crm", "--help"])
        return 2
    from bot.customers.crm.importing import import_crm
    from bot.store.database import Store

    store = Store.from_url(config.database_url)
    try:
        report = import_crm(store, Path(args.customers), Path(args.contracts) if args.contracts else None)
    finally:
        store.close()
    if not report.ok:
        for error in report.errors:
            print(error, file=sys.stderr)
        print(f"webcare: nothing imported: {len(report.errors)} problem(s)", file=sys.stderr)
        return 1
    print(f"imported {report.summary()}")
    return 0


def _gdpr(args: argparse.Namespace, parser: argparse.ArgumentParser, config) -> int:  # type: ignore[no-untyped-def]
    if args.gdpr_command not in ("export", "erase"):
        parser.parse_args(["gdpr", "--help"])
        return 2
    import asyncio

    from bot.privacy import gdpr
    from bot.errors import NotFound, WebcareError
    from bot.store.database import Store

    store = Store.from_url(config.database_url)
    try:
        if args.gdpr_command == "export":
            try:
                document = asyncio.run(gdpr.export_customer(store, args.customer, config.rasa.url, by=args.by))
            except WebcareError as exc:
                print(f"webcare: {exc.reason}", file=sys.stderr)
                return 1 if isinstance(exc, NotFound) else 2
            text = json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"
            if args.out:
                try:
                    Path(args.out).write_text(text, encoding="utf-8")
                except OSError as exc:
                    print(f"webcare: cannot write {args.out}: {exc}", file=sys.stderr)
                    return 1
                print(f"exported customer {document['customer_id']} to {args.out}", file=sys.stderr)
            else:
                sys.stdout.write(text)
            if not document["rasa"]["reachable"]:
                print(f"webcare: the Rasa trackers are missing from the export: {document['rasa']['error']}",
                      file=sys.stderr)
                return 0 if args.allow_without_rasa else 1
            return 0

        def find(session):  # type: ignore[no-untyped-def]
            from sqlalchemy import select

            from bot.store.models import User

            customer_id = gdpr.resolve_customer(session, args.customer, args.by)
            actor = None
            if args.actor:
                actor = session.execute(select(User.id).where(User.username == args.actor)).scalar_one_or_none()
                if actor is None:
                    raise NotFound(f"no console user {args.actor!r}")
            return customer_id, actor

        try:
            customer_id, actor_id = store.transaction(find)
        except WebcareError as exc:
            print(f"webcare: {exc.reason}", file=sys.stderr)
            return 1 if isinstance(exc, NotFound) else 2
        if not args.yes:
            if not sys.stdin.isatty():
                print("webcare: erasing cannot be undone; add --yes to confirm", file=sys.stderr)
                return 2
            answer = input(f"Erase all personal data of customer {customer_id}? This cannot be undone. "
                           f"Type the customer id to confirm: ").strip()
            if answer != str(customer_id):
                print("webcare: not erased", file=sys.stderr)
                return 1
        sinks, unbuilt = gdpr.digest_sinks(config.reports.sinks)
        report = asyncio.run(gdpr.erase_customer(store, str(customer_id), config.rasa.url, by="id",
                                                 actor_id=actor_id, include_crm=args.include_crm, sinks=sinks))
    finally:
        store.close()
    report.digest_sinks_not_recalled.extend(unbuilt)
    print(json.dumps(report.as_dict(), indent=2))
    if report.digest_sinks_not_recalled:
        print("webcare: weekly digests delivered to these report sinks cannot be recalled from here "
              "(they may quote the customer's CSAT comments):", file=sys.stderr)
        for sink in report.digest_sinks_not_recalled:
            print(f"  {sink}", file=sys.stderr)
    if not report.complete:
        if report.trackers_pending:
            print(f"webcare: the store is erased, but {len(report.trackers_pending)} Rasa tracker(s) are not:",
                  file=sys.stderr)
            for sender, reason in report.trackers_pending.items():
                print(f"  {sender}: {reason}", file=sys.stderr)
        if report.digests_pending:
            print(f"webcare: the store is erased, but the digests of {len(report.digests_pending)} report "
                  "sink(s) are not:", file=sys.stderr)
            for sink, reason in report.digests_pending.items():
                print(f"  {sink}: {reason}", file=sys.stderr)
        print(f"run `webcare gdpr erase {report.customer_id} --by id --yes` again when "
              f"{'Rasa is back' if report.trackers_pending else 'that is fixed'}", file=sys.stderr)
        return 1
    print(f"erased customer {report.customer_id}", file=sys.stderr)
    return 0


def _export_feedback(args: argparse.Namespace, config) -> int:  # type: ignore[no-untyped-def]
    from bot.review.feedback_export import export, parse_since
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


def _reports(args: argparse.Namespace, parser: argparse.ArgumentParser, config) -> int:  # type: ignore[no-untyped-def]
    if args.reports_command != "digest":
        parser.parse_args(["reports", "--help"])
        return 2
    import asyncio
    import datetime as dt

    from bot.reporting.digest import build_digests, deliver, erased_comments_check, send_week
    from bot.reporting.sinks import ReportSinkError, build_sinks
    from bot.cases.escalation import CaseSettings
    from bot.cases.root_causes import RootCauseError
    from bot.store.database import Store

    zone = config.opening_hours.timezone
    try:
        day = dt.date.fromisoformat(args.date) if args.date else dt.datetime.now(zone).date()
    except ValueError:
        print(f"webcare: --date must be YYYY-MM-DD, not {args.date!r}", file=sys.stderr)
        return 2
    try:
        taxonomy = CaseSettings.from_config(config).taxonomy
        sinks = build_sinks(config.reports.sinks)
    except (RootCauseError, ReportSinkError, OSError) as exc:
        print(f"webcare: {exc}", file=sys.stderr)
        return 2
    store = Store.from_url(config.database_url)
    try:
        try:
            if args.again:  # a comment erased meanwhile is left out
                digests = store.transaction(build_digests, taxonomy, day, zone)
                done = asyncio.run(deliver(digests, sinks, before_send=erased_comments_check(store)))
            else:  # once, as the service's scheduler does: marked sent, so the service does not repeat it
                sent = asyncio.run(send_week(store, taxonomy, sinks, zone, day))
                digests, done = sent.digests, sent.deliveries
        except ReportSinkError as exc:
            print(f"webcare: {exc}", file=sys.stderr)
            return 1
    finally:
        store.close()
    if not args.again and sent.status == "already_sent":
        print(f"webcare: the digest dated {day.isoformat()} was already sent at {sent.sent_at:%Y-%m-%d %H:%M} UTC "
              "(by the service or an earlier run); --again sends it again", file=sys.stderr)
        return 1
    if not args.again and sent.status == "in_progress":
        print(f"webcare: the digest dated {day.isoformat()} is being sent right now by the service; see its log, "
              "or try again in 15 minutes", file=sys.stderr)
        return 1
    start = (day - dt.timedelta(days=7)).isoformat()
    print(f"weekly digest {start} – {(day - dt.timedelta(days=1)).isoformat()}: {len(digests)} owner(s), "
          f"{len(sinks)} sink(s)")
    for digest in digests:
        totals = digest["totals"]
        where = ", ".join(d["sink"] for d in done if d["owner"] == digest["owner"]) or "no sink configured"
        print(f"  {digest['owner']}: {totals['contacts']} contacts (before: {totals['previous_contacts']}) -> {where}")
    return 0
