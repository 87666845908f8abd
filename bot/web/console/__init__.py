"""The agent console: server-rendered pages at ``/console`` (Jinja2, a little vanilla JS).

``setup_console(app)`` registers the pages, the static files and the auth middleware.
"""
from __future__ import annotations

from bot.web.console.views import setup_console

__all__ = ["setup_console"]
