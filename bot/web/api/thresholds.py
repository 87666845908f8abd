"""The JSON API for per-intent auto-send thresholds from agents' verdicts (``/api/thresholds``).

Same rules as :mod:`bot.web.api.drafts`: session cookie, ``X-CSRF-Token`` on writes, JSON
errors. Process owners and admins read; only admins approve or remove a threshold. The
domain is :mod:`bot.learning.thresholds`.
"""
from __future__ import annotations

from aiohttp import web

from bot.errors import InvalidInput
from bot.learning import thresholds
from bot.store.models import Role
from bot.web import auth
from bot.web.api.drafts import _config, _store, read_json
from bot.web.auth import require_role

READ_ROLES = (Role.process_owner, Role.admin)
APPROVE_ROLES = (Role.admin,)


def settings_of(request: web.Request) -> thresholds.ThresholdSettings:
    """The target, minimum verdicts and configured thresholds the suggestions are measured against."""
    return thresholds.ThresholdSettings.from_config(_config(request))


@require_role(*READ_ROLES)
async def list_thresholds(request: web.Request) -> web.Response:
    """Per intent: bands, suggestion with its evidence, approved and current threshold."""
    return web.json_response(await _store(request).run(thresholds.overview, settings_of(request)))


@require_role(*APPROVE_ROLES)
async def approve(request: web.Request) -> web.Response:
    """``{"threshold": 0.93}`` → the approved threshold and its evidence."""
    body = await read_json(request)
    if "threshold" not in body:
        raise InvalidInput("missing field 'threshold' (a number between 0.5 and 1)", field="threshold")
    result = await _store(request).run(thresholds.approve, request[auth.USER_KEY], request.match_info["intent"],
                                       body["threshold"], settings_of(request))
    return web.json_response(result)


@require_role(*APPROVE_ROLES)
async def remove(request: web.Request) -> web.Response:
    """Drop the approved threshold: the configured (or global) one applies again."""
    result = await _store(request).run(thresholds.remove, request[auth.USER_KEY], request.match_info["intent"])
    return web.json_response(result)


def setup_threshold_api(app: web.Application) -> None:
    """Register the ``/api/thresholds`` routes (auth is set up by :func:`bot.web.api.setup_api`)."""
    router = app.router
    router.add_get("/api/thresholds", list_thresholds, name="api_thresholds")
    router.add_post("/api/thresholds/{intent}", approve, name="api_threshold_approve")
    router.add_delete("/api/thresholds/{intent}", remove, name="api_threshold_remove")
