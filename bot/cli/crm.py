"""``webcare crm import``: customers and contracts into the built-in SQL CRM."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


# Imports inside the handlers are lazy on purpose: `webcare --help` and each command load only
# what they use (Rasa and TensorFlow take seconds to import).


def add_commands(sub: Any) -> None:
    """Add this group's commands to the ``webcare`` parser."""
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
    crm.set_defaults(handler=_crm)


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
