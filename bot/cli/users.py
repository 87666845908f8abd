"""``webcare users add``: console users."""
from __future__ import annotations

import argparse
import sys
from typing import Any


# Imports inside the handlers are lazy on purpose: `webcare --help` and each command load only
# what they use (Rasa and TensorFlow take seconds to import).


def add_commands(sub: Any) -> None:
    """Add this group's commands to the ``webcare`` parser."""
    users = sub.add_parser("users", help="console users")
    users_sub = users.add_subparsers(dest="users_command", metavar="USERS_COMMAND")
    users_add = users_sub.add_parser("add", help="add a console user (asks for the password twice)")
    users_add.add_argument("username")
    users_add.add_argument("--role", required=True, choices=["agent", "process_owner", "admin"])
    users_add.add_argument("--name", help="display name (default: the username)")
    users_add.add_argument("--password-stdin", action="store_true",
                           help="read the password from standard input instead of prompting")
    users.set_defaults(handler=_users)


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
    from bot.accounts import create_user
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
