"""The Graph API client shared by the Meta connectors (WhatsApp, Messenger, Instagram, comments).

One ``aiohttp`` session per connector, opened in ``start()``; the base URL and the API version
are options (a fake Graph API on loopback in tests), the access token comes from the
environment and goes in the ``Authorization`` header, never in a URL or a log line.

Graph errors become :class:`DeliveryError` (:func:`delivery_error`):

- rate limits (4, 17, 32, 613, 80007, 130429, 131048; HTTP 429) → retry later, the channel
  paused for ``retry_after`` seconds; WhatsApp's pair rate limit (131056: too many messages
  to one customer) backs off that item only;
- the access token rejected (190, 102, 463, 467; OAuthException on 401) → the channel pauses
  for :data:`TOKEN_PAUSE_SECONDS` and says so in one ERROR line naming the environment
  variable; queued messages wait for the fix instead of failing or looping;
- the window closed (131047; 10 with subcode 2018278, 2534022) → ``needs_template``;
- the person cannot be reached (551, 131026; subcodes 2018108, 2534041, 2534014) → unreachable;
- anything else the platform refuses (4xx: 100 invalid parameter, 10900 already replied to
  this comment, 132001 no such template, ...) → permanent; 5xx and network errors → retried.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional
from urllib.parse import urlsplit

import aiohttp

from connectors.base import ConnectorError, DeliveryError

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_VERSION = "v23.0"
TOKEN_PAUSE_SECONDS = 300.0
RATE_LIMIT_SECONDS = 60.0

RATE_LIMITS = frozenset({4, 17, 32, 613, 80007, 130429, 131048})
PAIR_RATE_LIMIT = 131056  # too many messages to this one customer: back off this item only
TOKEN_ERRORS = frozenset({190, 102})
TOKEN_SUBCODES = frozenset({463, 467})
WINDOW_CLOSED = frozenset({131047})
WINDOW_CLOSED_SUBCODES = frozenset({2018278, 2534022})
UNREACHABLE = frozenset({551, 131026})
# 2018108 can't receive your messages; 2534041 DMs disabled by the account owner; 2534014 no such user
UNREACHABLE_SUBCODES = frozenset({2018108, 2534041, 2534014})
RETRYABLE = frozenset({1, 2, 131000, 131016, 133004})


@dataclass(frozen=True)
class GraphError:
    """The ``error`` object of a Graph API answer."""

    status: int
    code: Optional[int]
    subcode: Optional[int]
    message: str
    kind: Optional[str] = None  # OAuthException, ...
    details: Optional[str] = None  # WhatsApp's error_data.details

    @classmethod
    def parse(cls, status: int, body: bytes) -> "GraphError":
        """From an HTTP status and body (which may not be JSON at all: a proxy's error page)."""
        try:
            error = json.loads(body).get("error") or {}
        except (ValueError, AttributeError, UnicodeDecodeError):
            error = {}
        if not isinstance(error, dict):
            error = {}
        data = error.get("error_data")
        details = data.get("details") if isinstance(data, dict) else None
        return cls(status, _int(error.get("code")), _int(error.get("error_subcode")),
                   str(error.get("message") or error.get("error_user_msg") or f"HTTP {status}")[:500],
                   str(error["type"]) if error.get("type") else None,
                   str(details)[:500] if details else None)

    def describe(self) -> str:
        code = f" {self.code}" if self.code is not None else ""
        sub = f"/{self.subcode}" if self.subcode is not None else ""
        more = f" ({self.details})" if self.details else ""
        return f"Graph API error{code}{sub} (HTTP {self.status}): {self.message}{more}"


def delivery_error(error: GraphError, token_env: str) -> DeliveryError:
    """What the dispatcher does about ``error`` (see the module's list)."""
    reason = error.describe()
    code, subcode = error.code, error.subcode
    if code in TOKEN_ERRORS or subcode in TOKEN_SUBCODES or (error.status == 401 and error.kind == "OAuthException"):
        logger.error("Meta rejected the access token in $%s (%s): fix the token; queued messages wait",
                     token_env, reason)
        return DeliveryError(f"{reason}: fix the access token in ${token_env}", retry_after=TOKEN_PAUSE_SECONDS)
    if code == PAIR_RATE_LIMIT:
        return DeliveryError(reason)  # retried with the item's backoff; the channel goes on
    if code in RATE_LIMITS or error.status == 429:
        return DeliveryError(reason, retry_after=RATE_LIMIT_SECONDS)
    if code in WINDOW_CLOSED or (code == 10 and subcode in WINDOW_CLOSED_SUBCODES):
        return DeliveryError(reason, needs_template=True)
    if code in UNREACHABLE or subcode in UNREACHABLE_SUBCODES:
        return DeliveryError(reason, unreachable=True)
    if code in RETRYABLE or error.status >= 500:
        return DeliveryError(reason)
    return DeliveryError(reason, permanent=True)


class GraphClient:
    """POSTs to ``{base_url}/{version}/{path}`` with the connector's access token."""

    def __init__(self, name: str, options: Mapping[str, Any], token: str, token_env: str) -> None:
        self.base_url = str(options.get("graph_base_url", DEFAULT_BASE_URL)).rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConnectorError(f"channels.{name}.graph_base_url must be an http(s) URL, not {self.base_url!r}")
        self.version = str(options.get("graph_version", DEFAULT_VERSION)).strip("/")
        if not self.version.startswith("v"):
            raise ConnectorError(f"channels.{name}.graph_version looks like v23.0, not {self.version!r}")
        try:
            self.timeout = aiohttp.ClientTimeout(total=float(options.get("timeout_seconds", 10)))
        except (TypeError, ValueError):
            raise ConnectorError(f"channels.{name}.timeout_seconds must be a number") from None
        self.token = token
        self.token_env = token_env
        self._session: Optional[aiohttp.ClientSession] = None

    def url(self, path: str) -> str:
        return f"{self.base_url}/{self.version}/{path.lstrip('/')}"

    async def open(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, headers={"Authorization": f"Bearer {self.token}"})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, path: str, body: Dict[str, Any]) -> Dict[str, Any]:
        """POST ``body`` as JSON; the answer's JSON, or :class:`DeliveryError`."""
        await self.open()
        assert self._session is not None
        try:
            async with self._session.post(self.url(path), json=body) as response:
                raw = await response.read()
                if response.status >= 400:
                    raise delivery_error(GraphError.parse(response.status, raw), self.token_env)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise DeliveryError(f"Graph API unreachable: {type(exc).__name__}: {exc}") from None
        try:
            answer = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise DeliveryError("Graph API answered with a body that is not JSON") from None
        if not isinstance(answer, dict):
            raise DeliveryError("Graph API answered with JSON that is not an object")
        if isinstance(answer.get("error"), dict):  # an error with a 200 (it happens)
            raise delivery_error(GraphError.parse(200, raw), self.token_env)
        return answer


def _int(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
