"""Domain errors: what went wrong, in words the caller can act on; no transport in sight.

Domain code raises these; the web layer maps each kind to an HTTP status in one place
(:mod:`bot.web.middleware`), the CLI prints the reason. ``code`` is the stable, machine-readable
name clients see in ``{"error": code, "reason": ...}``.
"""
from __future__ import annotations

from typing import Any


class WebcareError(Exception):
    """An error with a reason the caller can act on (``details``: structured extras)."""

    code = "bad_request"

    def __init__(self, reason: str, **details: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class InvalidInput(WebcareError):
    """The input is malformed, missing or out of range."""

    code = "bad_request"


class NotAuthenticated(WebcareError):
    """Nobody is logged in, or the credentials are wrong."""

    code = "unauthorized"


class NotAllowed(WebcareError):
    """The caller may not do this (role, CSRF, signature)."""

    code = "forbidden"


class NotFound(WebcareError):
    code = "not_found"


class Conflict(WebcareError):
    """The thing changed meanwhile (e.g. a draft another agent already decided)."""

    code = "conflict"


class TooLarge(WebcareError):
    """The input is larger than allowed."""

    code = "payload_too_large"


class UnsupportedMedia(WebcareError):
    """The input comes in a form that is not accepted (content type)."""

    code = "unsupported_media_type"


class RateLimited(WebcareError):
    """Too many attempts in a short time (failed logins, chat messages); try again later."""

    code = "too_many_requests"


class Unavailable(WebcareError):
    """Something this depends on (the store, the CRM) cannot be reached right now."""

    code = "unavailable"
