"""Console page of retraining and the models (``/console/models``).

Process owners and admins start a retraining and follow its progress bar (the page reloads
itself while a job runs); they compare each candidate with the model in use side by side
(held-out accuracy, auto-send coverage, test stories, per-intent changes, the messages whose
intent changed). Only admins promote a candidate that passed its gate, or roll back. The
domain is :mod:`bot.learning.registry`; the Rasa side :mod:`bot.retraining`.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from aiohttp import web

from bot.errors import WebcareError
from bot.learning import registry
from bot.retraining import promotion
from bot.web.api.models import PROMOTE_ROLES, READ_ROLES, start_retraining
from bot.web.auth import USER_KEY, require_role
from bot.web.console.views import _config, _see_other, _store, render
from bot.web.middleware import status_of
from bot.web.request_fields import optional_whole_number, whole_number

DONE = {"started": "Retraining started: the bot keeps answering with the model in use meanwhile.",
        "promoted": "Promoted: every Rasa replica serves the new model.",
        "rolled_back": "Rolled back: every Rasa replica serves the previous model again."}
REFRESH_SECONDS = 3  # while a job runs


def overview(session: Any) -> Dict[str, Any]:
    """The page's data in one transaction."""
    data = registry.models(session)
    data["jobs"] = registry.jobs(session, limit=10)
    data["running"] = next((j for j in data["jobs"] if j["status"] == "running"), None)
    target = registry.rollback_target(session)
    data["rollback"] = registry.model_view(target, {}) if target else None
    return data


async def _render(request: web.Request, *, error: Optional[str] = None, status: int = 200) -> web.Response:
    data = await _store(request).run(overview)
    config = _config(request)
    for model in data["models"]:  # a file pruned or never kept (a rejected one) cannot be promoted
        model["file_present"] = promotion.model_path(config, model["file"]).is_file()
    done = request.query.get("done", "")
    return render(request, "models.html", {
        **data, "flash": DONE.get(done), "error": error,
        "may_promote": request[USER_KEY].may(PROMOTE_ROLES), "refresh_seconds": REFRESH_SECONDS,
    }, status=status)


@require_role(*READ_ROLES)
async def models_page(request: web.Request) -> web.Response:
    return await _render(request)


@require_role(*READ_ROLES)
async def retrain(request: web.Request) -> web.StreamResponse:
    try:
        await start_retraining(request)
    except WebcareError as error:
        return await _render(request, error=error.reason, status=status_of(error))
    return _see_other("/console/models?done=started")


async def _swap(request: web.Request, rollback: bool) -> web.StreamResponse:
    """Promote the model of the path (or roll back), then show the page with what happened."""
    form = await request.post()
    try:
        model_id = None if rollback else whole_number(request.match_info["id"], "id", "a model id")
        await promotion.promote(_store(request), _config(request), model_id, request[USER_KEY], rollback=rollback,
                                expected_in_use=optional_whole_number(form.get("in_use"), "in_use"))
    except WebcareError as error:
        return await _render(request, error=error.reason, status=status_of(error))
    return _see_other("/console/models?done=" + ("rolled_back" if rollback else "promoted"))


@require_role(*PROMOTE_ROLES)
async def promote(request: web.Request) -> web.StreamResponse:
    return await _swap(request, rollback=False)


@require_role(*PROMOTE_ROLES)
async def rollback(request: web.Request) -> web.StreamResponse:
    return await _swap(request, rollback=True)


def setup_model_pages(app: web.Application) -> None:
    """Register the models page and its forms (auth and templates: :func:`setup_console`)."""
    router = app.router
    router.add_get("/console/models", models_page, name="console_models")
    router.add_post("/console/models/retrain", retrain, name="console_models_retrain")
    router.add_post("/console/models/rollback", rollback, name="console_models_rollback")
    router.add_post("/console/models/{id}/promote", promote, name="console_model_promote")
