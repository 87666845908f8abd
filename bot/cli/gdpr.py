"""``webcare gdpr export|erase``: everything webcare holds about one customer."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


# Imports inside the handlers are lazy on purpose: `webcare --help` and each command load only
# what they use (Rasa and TensorFlow take seconds to import).


def add_commands(sub: Any) -> None:
    """Add this group's commands to the ``webcare`` parser."""
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
    gdpr.set_defaults(handler=_gdpr)


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
