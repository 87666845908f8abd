"""The JSON API of the learning loop: corrections to review (``/api/learning/...``).

Same rules as :mod:`bot.web.api.drafts`: session cookie, ``X-CSRF-Token`` on writes, JSON errors.
Process owners and admins only (agents 403, anonymous 401). Documented in ``docs/learning.md``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from aiohttp import web

from bot.errors import InvalidInput
from bot.learning import corrections, registry
from bot.store.models import Role
from bot.web.api.drafts import _config, _store, read_json
from bot.web.auth import USER_KEY, require_role
from bot.web.request_fields import optional_text, whole_number

LEARNING_ROLES = (Role.process_owner, Role.admin)
DEFAULT_LIMIT = 100


def known_intents(request: web.Request) -> Tuple[str, ...]:
    """The configured domain's intents an example may be labelled with."""
    return corrections.known_intents(corrections.domain_file(_config(request)))


def listing(session: Any, status: Optional[str], limit: int, offset: int) -> Dict[str, Any]:
    """Collect the new corrections, then one page of examples with ``status``, the counts, and
    how many reviewed examples the model in use has not learnt yet."""
    collected = corrections.collect(session)
    current = registry.in_use(session)
    model = None
    if current is not None:
        model = {"id": current.id, "file": current.file_name, "trained_at": current.created_at.isoformat(),
                 "reviewed_since": corrections.reviewed_since(session, current.created_at)}
    return {"collected": collected, "counts": corrections.counts(session), "model_in_use": model,
            "examples": corrections.examples(session, status, limit, offset)}


def review_and_count(session: Any, reviewer: Any, ids: Sequence[int], action: str, intent: Optional[str],
                     intents: Sequence[str]) -> Dict[str, Any]:
    """One review and the counts after it, in one transaction."""
    result = corrections.review(session, reviewer, ids, action, intent, intents)
    return {"review": result, "counts": corrections.counts(session)}


def page_query(query: Any) -> Tuple[str, int, int]:
    """``status``, ``limit`` and ``offset`` of a listing's query string (400 when malformed)."""
    status = query.get("status") or "pending"
    if status not in corrections.FILTERS:
        raise InvalidInput(f"status must be one of {', '.join(corrections.FILTERS)}, not {status!r}", field="status")
    limit = whole_number(query.get("limit", str(DEFAULT_LIMIT)), "limit", "a whole number")
    offset = whole_number(query.get("offset", "0"), "offset", "a whole number")
    return status, limit, offset


def id_list(value: Any) -> List[int]:
    """``ids`` of a JSON body: a list of whole numbers."""
    if not isinstance(value, list):
        raise InvalidInput("'ids' must be a list of example ids", field="ids")
    return [whole_number(v, "ids", "a list of example ids (whole numbers)", texts=False) for v in value]


@require_role(*LEARNING_ROLES)
async def list_corrections(request: web.Request) -> web.Response:
    """``GET /api/learning/corrections?status=pending&limit=100&offset=0`` (collects the new ones first)."""
    status, limit, offset = page_query(request.query)
    data = await _store(request).run(listing, status, limit, offset)
    return web.json_response({"status": status, "limit": limit, "offset": offset, **data,
                              "intents": list(known_intents(request))})


@require_role(*LEARNING_ROLES)
async def review_corrections(request: web.Request) -> web.Response:
    """``POST /api/learning/corrections/review`` ``{"ids": [...], "action": "accept|relabel|drop", "intent"?}``."""
    body = await read_json(request)
    if "ids" not in body:
        raise InvalidInput("missing field 'ids' (a list of example ids)", field="ids")
    action = optional_text(body.get("action"), "action")
    if not action:
        raise InvalidInput(f"missing field 'action' ({', '.join(corrections.ACTIONS)})", field="action")
    result = await _store(request).run(review_and_count, request[USER_KEY], id_list(body["ids"]), action,
                                       optional_text(body.get("intent"), "intent"), known_intents(request))
    return web.json_response(result)


def setup_learning_api(app: web.Application) -> None:
    """Register the ``/api/learning`` routes (auth is set up by :func:`bot.web.api.setup_api`)."""
    router = app.router
    router.add_get("/api/learning/corrections", list_corrections, name="api_learning_corrections")
    router.add_post("/api/learning/corrections/review", review_corrections, name="api_learning_review")
