"""The error middleware: domain errors (:mod:`bot.errors`) to HTTP status codes, in one place.

A :class:`~bot.errors.WebcareError` becomes a 4xx/5xx with its reason (JSON, or a small HTML
page for a browser); malformed JSON is a 400; a store that cannot be reached is a 503 with
``Retry-After``; anything else is a logged 500 that never leaks a traceback.
"""
from __future__ import annotations

import json
import logging
from html import escape
from typing import Any, Awaitable, Callable, Dict, Optional, Type

from aiohttp import web
from sqlalchemy import exc as sa_exc

from bot.errors import (
    Conflict,
    InvalidInput,
    NotAllowed,
    NotAuthenticated,
    NotFound,
    RateLimited,
    TooLarge,
    Unavailable,
    UnsupportedMedia,
    WebcareError,
)

logger = logging.getLogger(__name__)

# Driver errors that mean "the database cannot be reached" (not "this request is wrong").
STORE_DOWN = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
STORE_RETRY_AFTER_SECONDS = 5

STATUS: Dict[Type[WebcareError], int] = {
    InvalidInput: 400,
    NotAuthenticated: 401,
    NotAllowed: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    UnsupportedMedia: 415,
    RateLimited: 429,
    Unavailable: 503,
}


class HttpError(WebcareError):
    """An error of the HTTP layer itself (aiohttp's 404/405/413 under ``/api``)."""

    def __init__(self, status: int, code: str, reason: str, **details: Any) -> None:
        super().__init__(reason, **details)
        self.status, self.code = status, code


def status_of(error: WebcareError) -> int:
    """The HTTP status of ``error``: its kind's, or 400 for a plain :class:`WebcareError`."""
    if isinstance(error, HttpError):
        return error.status
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 400


def error_body(error: WebcareError) -> Dict[str, Any]:
    """The JSON body of an error response."""
    body: Dict[str, Any] = {"error": error.code, "reason": error.reason}
    if error.details:
        body["details"] = error.details
    return body


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn :class:`WebcareError` into a 4xx/5xx with a reason; never leak a traceback."""
    try:
        return await handler(request)
    except WebcareError as error:
        return render_error(request, error)
    except web.HTTPException:
        raise
    except json.JSONDecodeError as exc:
        return render_error(request, InvalidInput(f"malformed JSON: {exc.msg} at position {exc.pos}"))
    except STORE_DOWN as exc:
        # The database is unreachable (restarting, failing over): nothing was written; the
        # sender retries (channels retry a webhook that did not answer 2xx).
        logger.warning("store unavailable on %s %s: %s", request.method, request.path,
                       str(exc).splitlines()[0][:200])
        response = render_error(request, Unavailable("the store is unavailable; retry in a few seconds"))
        response.headers["Retry-After"] = str(STORE_RETRY_AFTER_SECONDS)
        return response
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return render_error(request, WebcareError("internal error; it has been logged"), status=500)


def render_error(request: web.Request, error: WebcareError, status: Optional[int] = None) -> web.Response:
    """``error`` as a response: JSON for APIs and webhooks, a small page for a browser."""
    status = status or status_of(error)
    if _wants_html(request):
        text = (f"<!doctype html><meta charset=utf-8><title>{status}</title>"
                f"<h1>{status}</h1><p>{escape(error.reason)}</p>")
        return web.Response(status=status, text=text, content_type="text/html")
    code = "internal" if status == 500 else error.code
    return web.json_response({**error_body(error), "error": code}, status=status)


def _wants_html(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "text/html" in accept and not request.path.startswith(("/api/", "/webhooks/"))
