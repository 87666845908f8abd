"""``webcare reports digest``: send the weekly recurring-issue digest by hand."""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any


# Imports inside the handlers are lazy on purpose: `webcare --help` and each command load only
# what they use (Rasa and TensorFlow take seconds to import).


def add_commands(sub: Any) -> None:
    """Add this group's commands to the ``webcare`` parser."""
    reports_cmd = sub.add_parser("reports", help="recurring-issue reports")
    reports_sub = reports_cmd.add_subparsers(dest="reports_command", metavar="REPORTS_COMMAND")
    digest = reports_sub.add_parser(
        "digest", help="send the weekly digest per root-cause owner to the configured report sinks now")
    digest.add_argument("--date", help="the day after the week to report (YYYY-MM-DD; default: today)")
    digest.add_argument("--again", action="store_true",
                        help="send it even when this digest was already sent (by the service or an earlier run)")
    reports_cmd.set_defaults(handler=_reports)


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
