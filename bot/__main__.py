"""``python -m bot`` is the ``webcare`` command."""
from bot.cli import main

raise SystemExit(main())
