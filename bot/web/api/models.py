"""The JSON API of retraining and the models (``/api/learning/retrain``, ``/api/learning/jobs``,
``/api/models``): start a retraining, follow its progress, compare, promote, roll back.

Same rules as :mod:`bot.web.api.drafts`: session cookie, ``X-CSRF-Token`` on writes, JSON
errors. Process owners and admins read and start a retraining; only admins promote and roll
back (it changes what every customer gets). The domain is :mod:`bot.learning.registry`; the
Rasa side :mod:`bot.retraining.job` and :mod:`bot.retraining.promotion`. Documented in ``docs/learning.md``.
"""
from __future__ import annotations

import asyncio
from typing import Optional

from aiohttp import web

from bot.errors import Unavailable
from bot.learning import registry
from bot.retraining import job as retraining, promotion
from bot.store.models import Role
from bot.web import auth
from bot.web.api.drafts import _config, _store, read_json
from bot.web.auth import require_role
from bot.web.request_fields import optional_whole_number, whole_number

READ_ROLES = (Role.process_owner, Role.admin)
PROMOTE_ROLES = (Role.admin,)


def _id(request: web.Request, name: str = "id") -> int:
    return whole_number(request.match_info[name], name, "a whole number")


async def start_retraining(request: web.Request) -> dict:
    """Start a job in the store and its process; the job as the API shows it (409 while one runs)."""
    config = _config(request)
    store = _store(request)
    job_id = await store.run(lambda s: registry.start_job(s, request[auth.USER_KEY],
                                                          config.learning.promotion == "auto").id)
    try:
        await asyncio.to_thread(retraining.spawn, config, job_id)  # a fork: not on the event loop
    except Exception as exc:
        await store.run(registry.finish_job, job_id, f"the job's process could not start: {exc}")
        raise Unavailable(f"the retraining could not start: {exc}") from exc
    return await store.run(registry.job, job_id)


def expected_in_use(body: dict) -> Optional[int]:
    """``in_use``: the model in use the caller saw (a promotion is refused if it changed)."""
    return optional_whole_number(body.get("in_use"), "in_use", "the id of the model in use you saw")


@require_role(*READ_ROLES)
async def retrain(request: web.Request) -> web.Response:
    """``POST /api/learning/retrain`` → 202 ``{"job": ...}``; follow it at ``/api/learning/jobs/{id}``."""
    await read_json(request, required=False)
    return web.json_response({"job": await start_retraining(request)}, status=202)


@require_role(*READ_ROLES)
async def list_jobs(request: web.Request) -> web.Response:
    """``GET /api/learning/jobs`` → the latest jobs, newest first."""
    return web.json_response({"jobs": await _store(request).run(registry.jobs)})


@require_role(*READ_ROLES)
async def show_job(request: web.Request) -> web.Response:
    """``GET /api/learning/jobs/{id}`` → phase, progress, estimate, candidate, error."""
    return web.json_response({"job": await _store(request).run(registry.job, _id(request))})


@require_role(*READ_ROLES)
async def list_models(request: web.Request) -> web.Response:
    """``GET /api/models`` → the model in use and the latest models with their evaluations."""
    return web.json_response(await _store(request).run(registry.models))


@require_role(*READ_ROLES)
async def show_model(request: web.Request) -> web.Response:
    """``GET /api/models/{id}`` → one model, its evaluation side by side with the model in use."""
    return web.json_response({"model": await _store(request).run(registry.model, _id(request))})


@require_role(*PROMOTE_ROLES)
async def promote(request: web.Request) -> web.Response:
    """``POST /api/models/{id}/promote`` ``{"in_use"?: id}`` → every replica serves it (409 if its
    gate failed, its comparison is stale, another swap runs or the model in use is not ``in_use``)."""
    body = await read_json(request, required=False)
    result = await promotion.promote(_store(request), _config(request), _id(request), request[auth.USER_KEY],
                                     expected_in_use=expected_in_use(body))
    return web.json_response(result)


@require_role(*PROMOTE_ROLES)
async def rollback(request: web.Request) -> web.Response:
    """``POST /api/models/rollback`` ``{"in_use"?: id}`` → every replica serves the previous model again."""
    body = await read_json(request, required=False)
    result = await promotion.promote(_store(request), _config(request), None, request[auth.USER_KEY], rollback=True,
                                     expected_in_use=expected_in_use(body))
    return web.json_response(result)


def setup_model_api(app: web.Application) -> None:
    """Register the retraining and model routes (auth is set up by :func:`bot.web.api.setup_api`)."""
    router = app.router
    router.add_post("/api/learning/retrain", retrain, name="api_learning_retrain")
    router.add_get("/api/learning/jobs", list_jobs, name="api_learning_jobs")
    router.add_get("/api/learning/jobs/{id}", show_job, name="api_learning_job")
    router.add_get("/api/models", list_models, name="api_models")
    router.add_post("/api/models/rollback", rollback, name="api_models_rollback")
    router.add_get("/api/models/{id}", show_model, name="api_model")
    router.add_post("/api/models/{id}/promote", promote, name="api_model_promote")
