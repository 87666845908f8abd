"""Console page for per-intent auto-send thresholds from agents' verdicts (``/console/thresholds``).

Process owners and admins see, per intent, how often agents approved drafts in each confidence
band, the suggested threshold with its evidence and the current one; only admins apply or
remove a threshold. The domain is :mod:`bot.learning.thresholds`.
"""
from __future__ import annotations

import math
from typing import Any, Optional
from urllib.parse import quote, urlencode

from aiohttp import web

from bot.errors import InvalidInput, NotFound
from bot.learning import thresholds
from bot.pipeline.drafting_policy import REFRESH_SECONDS
from bot.web.api.thresholds import APPROVE_ROLES, READ_ROLES, settings_of
from bot.web.auth import USER_KEY, require_role
from bot.web.console.views import _see_other, _store, _text_field, render
from bot.web.middleware import status_of

DONE = {"approved": "Threshold approved for {intent}: the bot uses it within seconds.",
        "removed": "Approved threshold removed for {intent}: the configured one applies again."}


def _flash(request: web.Request) -> Optional[str]:
    done, intent = request.query.get("done", ""), request.query.get("intent", "")
    return DONE[done].format(intent=intent[:120]) if done in DONE and intent else None


async def _render(request: web.Request, *, error: Optional[str] = None, error_intent: Optional[str] = None,
                  entered: Optional[str] = None, status: int = 200) -> web.Response:
    data = await _store(request).run(thresholds.overview, settings_of(request))
    for row in data["intents"]:
        row["path"] = "/console/thresholds/" + quote(row["intent"], safe="")  # any name is one path segment
    user = request[USER_KEY]
    return render(request, "thresholds.html", {
        **data, "flash": _flash(request), "error": error, "error_intent": error_intent, "entered": entered,
        "may_approve": user.may(APPROVE_ROLES), "refresh_seconds": int(REFRESH_SECONDS),
    }, status=status)


def _threshold(form: Any) -> float:
    """The form's threshold as a number (the domain checks its range)."""
    raw = (_text_field(form, "threshold") or "").strip().replace(",", ".")
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"the threshold must be a number between {thresholds.MIN_THRESHOLD} and 1, "
                           f"not {raw[:20]!r}") from None
    if not math.isfinite(value):
        raise InvalidInput(f"the threshold must be a number between {thresholds.MIN_THRESHOLD} and 1")
    return value


@require_role(*READ_ROLES)
async def thresholds_page(request: web.Request) -> web.Response:
    return await _render(request)


@require_role(*APPROVE_ROLES)
async def apply(request: web.Request) -> web.StreamResponse:
    intent = request.match_info["intent"]
    form = await request.post()
    try:
        await _store(request).run(thresholds.approve, request[USER_KEY], intent, _threshold(form),
                                  settings_of(request))
    except InvalidInput as error:
        return await _render(request, error=f"{intent}: {error.reason}", error_intent=intent,
                             entered=_text_field(form, "threshold"), status=status_of(error))
    return _see_other("/console/thresholds?" + urlencode({"done": "approved", "intent": intent}))


@require_role(*APPROVE_ROLES)
async def remove(request: web.Request) -> web.StreamResponse:
    intent = request.match_info["intent"]
    try:
        await _store(request).run(thresholds.remove, request[USER_KEY], intent)
    except (InvalidInput, NotFound) as error:
        return await _render(request, error=f"{intent}: {error.reason}", error_intent=intent, status=status_of(error))
    return _see_other("/console/thresholds?" + urlencode({"done": "removed", "intent": intent}))


def setup_threshold_pages(app: web.Application) -> None:
    """Register the thresholds page and its forms (auth and templates: :func:`setup_console`)."""
    router = app.router
    router.add_get("/console/thresholds", thresholds_page, name="console_thresholds")
    router.add_post("/console/thresholds/{intent}", apply, name="console_threshold_apply")
    router.add_post("/console/thresholds/{intent}/remove", remove, name="console_threshold_remove")
