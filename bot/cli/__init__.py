"""The ``webcare`` command line: one module per command group, each adding its commands.

``main`` parses the arguments, loads the one configuration file (``--config``,
``$WEBCARE_CONFIG`` or ``./webcare.yml``) and runs the chosen command's handler.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from bot import __version__
from bot.cli import bench, crm, gdpr, learn, nlu, reports, review, serve, telegram, users
from bot.config import ConfigError, load_config

logger = logging.getLogger(__name__)

GROUPS = (serve, nlu, bench, reports, users, review, learn, crm, gdpr, telegram)


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
    for group in GROUPS:
        group.add_commands(sub)
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
    return int(args.handler(args, parser, config))
