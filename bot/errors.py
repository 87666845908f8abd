"""Typed errors of the service, mapped to HTTP status codes in one place (``error_middleware``)."""
from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Dict, Optional

from aiohttp import web
from sqlalchemy import exc as sa_exc

logger = logging.getLogger(__name__)

# Driver errors that mean "the database cannot be reached" (not "this request is wrong").
STORE_DOWN = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
STORE_RETRY_AFTER_SECONDS = 5


class WebcareError(Exception):
    """An error with a reason the caller can act on; ``status`` is its HTTP status."""

    status = 400
    code = "bad_request"

    def __init__(self, reason: str, **details: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class BadRequest(WebcareError):
    status, code = 400, "bad_request"


class Unauthorized(WebcareError):
    status, code = 401, "unauthorized"


class Forbidden(WebcareError):
    status, code = 403, "forbidden"


class NotFound(WebcareError):
    status, code = 404, "not_found"


class Conflict(WebcareError):
    """The thing changed meanwhile (e.g. a draft another agent already decided)."""

    status, code = 409, "conflict"


class PayloadTooLarge(WebcareError):
    status, code = 413, "payload_too_large"


class Unavailable(WebcareError):
    status, code = 503, "unavailable"


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
        return _render(request, error)
    except web.HTTPException:
        raise
    except json.JSONDecodeError as exc:
        return _render(request, BadRequest(f"malformed JSON: {exc.msg} at position {exc.pos}"))
    except STORE_DOWN as exc:
        # The database is unreachable (restarting, failing over): nothing was written; the
        # sender retries (channels retry a webhook that did not answer 2xx).
        logger.warning("store unavailable on %s %s: %s", request.method, request.path,
                       str(exc).splitlines()[0][:200])
        response = _render(request, Unavailable("the store is unavailable; retry in a few seconds"))
        response.headers["Retry-After"] = str(STORE_RETRY_AFTER_SECONDS)
        return response
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return _render(request, WebcareError("internal error; it has been logged"), status=500)


def _render(request: web.Request, error: WebcareError, status: Optional[int] = None) -> web.Response:
    status = status or error.status
    if _wants_html(request):
        from html import escape

        text = (f"<!doctype html><meta charset=utf-8><title>{status}</title>"
                f"<h1>{status}</h1><p>{escape(error.reason)}</p>")
        return web.Response(status=status, text=text, content_type="text/html")
    code = "internal" if status == 500 else error.code
    return web.json_response({**error_body(error), "error": code}, status=status)


def _wants_html(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "text/html" in accept and not request.path.startswith(("/api/", "/webhooks/"))
