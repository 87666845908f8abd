"""Console page of the learning loop: corrections to review (``/console/learning``).

Process owners and admins only (agents 403). One form around the table: a checkbox per example
and the buttons Accept / Relabel (with the intent) / Drop; ``learning.js`` adds the keyboard.
"""
from __future__ import annotations

from typing import List, Optional
from urllib.parse import urlencode

from aiohttp import web

from bot.errors import InvalidInput, NotFound
from bot.web.api.learning import LEARNING_ROLES, known_intents, listing, page_query, review_and_count
from bot.web.auth import USER_KEY, require_role
from bot.web.console.views import _see_other, _store, _text_field, render
from bot.web.middleware import status_of

PAGE_SIZE = 100
FILTER_LABELS = {"pending": "To review", "accepted": "Accepted", "relabelled": "Relabelled",
                 "dropped": "Dropped", "reviewed": "All reviewed", "all": "All"}
SOURCE_LABELS = {"confirmed": "approved as drafted", "picked": "picked an alternative",
                 "corrected": "edited, with an intent", "rejected": "rejected the draft"}
DONE_LABELS = {"accept": "accepted", "relabel": "relabelled", "drop": "dropped"}


def _flash(request: web.Request) -> Optional[str]:
    """"12 examples accepted." after a review (from the redirect's query string)."""
    done, count, intent = request.query.get("done"), request.query.get("n", ""), request.query.get("intent")
    if done not in DONE_LABELS or not count.isdigit():
        return None
    n = int(count)
    text = f"{n} example{'' if n == 1 else 's'} {DONE_LABELS[done]}"
    if done == "relabel" and intent in known_intents(request):
        text += f" as {intent}"
    return text + "."


async def _render(request: web.Request, status: str, page: int, *, error: Optional[str] = None,
                  checked: Optional[List[int]] = None, intent: str = "", code: int = 200) -> web.Response:
    data = await _store(request).run(listing, status, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    return render(request, "learning.html", {
        **data, "status": status, "page_number": page, "page_size": PAGE_SIZE,
        "filters": FILTER_LABELS, "source_labels": SOURCE_LABELS, "intents": known_intents(request),
        "flash": None if error else _flash(request), "error": error, "checked": set(checked or []),
        "chosen_intent": intent, "page_link": lambda n: "?" + urlencode({"status": status, "page": n}),
    }, status=code)


def _page(value: Optional[str]) -> int:
    if value is None or value == "":
        return 1
    if not value.isdigit() or int(value) < 1:
        raise InvalidInput(f"page must be a whole number from 1, not {value!r}", field="page")
    return int(value)


def _status(value: Optional[str]) -> str:
    status, _, _ = page_query({"status": value or "pending"})
    return status


@require_role(*LEARNING_ROLES)
async def learning_page(request: web.Request) -> web.Response:
    return await _render(request, _status(request.query.get("status")), _page(request.query.get("page")))


@require_role(*LEARNING_ROLES)
async def review(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    status = _status(_text_field(form, "status"))
    page = _page(_text_field(form, "page"))
    action = _text_field(form, "action") or ""
    intent = _text_field(form, "intent") or ""
    raw_ids = [v for v in form.getall("ids", []) if isinstance(v, str)]
    ids = [int(v) for v in raw_ids if v.strip().isdigit()]
    try:
        if len(ids) != len(raw_ids):
            raise InvalidInput("the chosen examples are not example ids; reload the page")
        if not ids:
            raise InvalidInput("tick at least one example first (x ticks a row, Shift+A all)")
        await _store(request).run(review_and_count, request[USER_KEY], ids, action,
                                  intent if action == "relabel" else None, known_intents(request))
    except (InvalidInput, NotFound) as error:
        return await _render(request, status, page, error=error.reason, checked=ids, intent=intent,
                             code=status_of(error))
    query = {"status": status, "done": action, "n": len(set(ids))}
    if action == "relabel":
        query["intent"] = intent.strip()
    if page > 1 and status != "pending":
        query["page"] = page
    return _see_other("/console/learning?" + urlencode(query))


def setup_learning_console(app: web.Application) -> None:
    """Register the learning pages (auth and templates are set up by :func:`bot.web.console.setup_console`)."""
    router = app.router
    router.add_get("/console/learning", learning_page, name="console_learning")
    router.add_post("/console/learning/review", review, name="console_learning_review")
