"""``webcare export-feedback``: agents' corrections as Rasa NLU training data."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


# Imports inside the handlers are lazy on purpose: `webcare --help` and each command load only
# what they use (Rasa and TensorFlow take seconds to import).


def add_commands(sub: Any) -> None:
    """Add this group's commands to the ``webcare`` parser."""
    feedback = sub.add_parser(
        "export-feedback",
        help="write agents' intent corrections (picked alternatives, edits with an intent) as Rasa NLU YAML")
    feedback.add_argument("--out", help="output file (default: standard output)")
    feedback.add_argument("--since", help="only decisions from this day on (YYYY-MM-DD, UTC)")
    feedback.set_defaults(handler=lambda args, parser, config: _export_feedback(args, config))


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
