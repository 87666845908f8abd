"""``webcare nlu …`` and ``webcare import-intents``: the NLU data and its quality."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional

from bot.cli.project import PROJECT

# Imports inside the handlers are lazy on purpose: `webcare --help` and each command load only
# what they use (Rasa and TensorFlow take seconds to import).


def add_commands(sub: Any) -> None:
    """Add this group's commands to the ``webcare`` parser."""
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
    nlu.set_defaults(handler=lambda args, parser, config: _nlu(args, parser))
    import_intents.set_defaults(handler=lambda args, parser, config: _import_intents(args))


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

    quiet_rasa()
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
    quiet_rasa()
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


def quiet_rasa() -> None:
    """Rasa's and the service's INFO lines would drown the command's own output."""
    for name in ("rasa", "aiohttp.access", "bot.pipeline.worker", "bot.pipeline.dispatcher"):
        logging.getLogger(name).setLevel(logging.WARNING)
