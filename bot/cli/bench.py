"""``webcare bench …``: the benchmarks (each prints JSON; their flags and keys are contracts)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bot.cli.nlu import quiet_rasa
from bot.cli.project import PROJECT

# Imports inside the handlers are lazy on purpose: `webcare --help` and each command load only
# what they use (Rasa and TensorFlow take seconds to import).


def add_commands(sub: Any) -> None:
    """Add this group's commands to the ``webcare`` parser."""
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
    days = bench_sub.add_parser(
        "days", help="simulated days of the learning loop: customers write, simulated agents decide every "
        "draft (the CSV's label is the truth), then corrections accepted, retrain, evaluate, swap")
    days.add_argument("--days", type=int, default=3, help="days to simulate (default: 3)")
    days.add_argument("--per-day", type=int, default=340, help="customers' messages a day (default: 340)")
    days.add_argument("--messages", metavar="CSV", help="labelled messages text,intent[,lang] "
                      "(default: tests/data/learning_days.csv)")
    days.add_argument("--seed", type=int, default=1, help="seed of the daily draws (default: 1)")
    days.add_argument("--rate", type=float, default=4.0, help="messages per second during a day (default: 4)")
    days.add_argument("--threshold", type=float, help="the drafting section's auto-send threshold "
                      "(default: bot.bench.days.DEFAULT_THRESHOLD)")
    days.add_argument("--database-url", help="an empty store to use (default: a fresh SQLite file)")
    days.add_argument("--json", action="store_true", help="print JSON only (the default output is JSON too)")
    bench.set_defaults(handler=lambda args, parser, config: _bench(args, parser))


def _bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.bench_command == "pipeline":
        from bot.bench.pipeline import run_pipeline_bench

        quiet_rasa()
        try:
            report = run_pipeline_bench(args.messages, args.database_url, args.rasa_url)
        except RuntimeError as exc:  # no trained model, a server that would not start
            print(f"webcare: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(report, indent=2))
        return 0
    if args.bench_command == "load":
        from bot.bench.load import run_load_bench

        quiet_rasa()
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
    if args.bench_command == "days":
        from bot.bench.days import DEFAULT_THRESHOLD, run_days_bench

        quiet_rasa()
        try:
            report = run_days_bench(args.days, args.per_day, Path(args.messages) if args.messages else None,
                                    args.seed, args.rate,
                                    DEFAULT_THRESHOLD if args.threshold is None else args.threshold,
                                    args.database_url)
        except (ValueError, RuntimeError) as exc:  # a bad CSV or flag; a server or API that failed
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

    quiet_rasa()
    try:
        report = run_nlu_bench(
            Path(args.train), PROJECT / args.pipeline_config, Path(args.test) if args.test else None,
            folds=args.folds, baselines=not args.no_baselines, diet_epochs=args.diet_epochs)
    except BenchInputError as exc:
        print(f"webcare: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0
