"""The console's JSON API under ``/api`` (documented in ``docs/api.md``).

Same session cookie as the console; writes need the ``X-CSRF-Token`` header (see
:mod:`bot.web.auth`). Every response is JSON; errors are ``{"error": code, "reason": ...}``.
"""
from __future__ import annotations

from aiohttp import web

from bot.web.api.cases import setup_case_api
from bot.web.api.conversations import setup_conversation_api
from bot.web.api.drafts import setup_draft_api
from bot.web.api.known_issues import setup_known_issue_api
from bot.web.api.thresholds import setup_threshold_api
from bot.web.api.learning import setup_learning_api
from bot.web.api.models import setup_model_api
from bot.web.auth import setup_auth


def setup_api(app: web.Application) -> None:
    """Register the JSON API and the auth middleware."""
    setup_auth(app)
    setup_draft_api(app)
    setup_case_api(app)
    setup_conversation_api(app)
    setup_known_issue_api(app)
    setup_threshold_api(app)
    setup_learning_api(app)
    setup_model_api(app)
