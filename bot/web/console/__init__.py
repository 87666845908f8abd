"""The agent console: server-rendered pages at ``/console`` (Jinja2, a little vanilla JS).

``setup_console(app)`` registers the pages, the static files and the auth middleware.
"""
from __future__ import annotations

from aiohttp import web

from bot.web.auth import setup_auth
from bot.web.console.case_views import setup_case_pages
from bot.web.console.conversation_views import setup_conversation_pages
from bot.web.console.known_issue_views import setup_known_issue_pages
from bot.web.console.learning_views import setup_learning_console
from bot.web.console.model_views import setup_model_pages
from bot.web.console.report_views import setup_report_pages
from bot.web.console.threshold_views import setup_threshold_pages
from bot.web.console.views import setup_draft_pages


def setup_console(app: web.Application) -> None:
    """Register the console's pages and static files (and the auth middleware)."""
    setup_auth(app)
    setup_draft_pages(app)
    setup_case_pages(app)
    setup_conversation_pages(app)
    setup_report_pages(app)
    setup_known_issue_pages(app)
    setup_threshold_pages(app)
    setup_learning_console(app)
    setup_model_pages(app)
