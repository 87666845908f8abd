"""``webcare telegram set-webhook|delete-webhook``: the Telegram channel's webhook."""
from __future__ import annotations

import argparse
from typing import Any

from bot.config import Config

# Imports inside the handlers are lazy on purpose: `webcare --help` and each command load only
# what they use (Rasa and TensorFlow take seconds to import).


def add_commands(sub: Any) -> None:
    """Add this group's commands to the ``webcare`` parser."""
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
    telegram.set_defaults(handler=telegram_command)


def telegram_command(args: argparse.Namespace, parser: argparse.ArgumentParser, config: Config) -> int:
    """Register or remove the Telegram webhook."""
    if args.telegram_command is None:
        parser.parse_args(["telegram", "--help"])
        return 2
    from connectors.telegram import run_cli

    return run_cli(args, config)
