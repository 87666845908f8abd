"""A fake Meta Graph API on loopback (aiohttp), for the WhatsApp, Messenger and Instagram connectors.

Answers the calls those connectors make the way the Graph API documents them
(tests/connectors/meta/payloads/*/outbound): ``POST /<version>/<phone-number-id>/messages``
(WhatsApp: ``{"messaging_product", "contacts", "messages": [{"id": "wamid..."}]}``),
``POST /<version>/<page-or-ig-id>/messages`` (Messenger and Instagram:
``{"recipient_id", "message_id"}``; a private reply to a comment answers with the commenter's
PSID, once per comment), ``POST /<version>/<comment-id>/comments`` and ``.../replies`` (a public
reply: ``{"id"}``), ``POST /<version>/<comment-id>`` (hide: ``{"success": true}``). Every call
is recorded with its JSON body and token; a path can be scripted to fail with a Graph error
body. Also signs webhook bodies as Meta does (:func:`signed_headers`).
"""
from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from aiohttp import web
from aiohttp.test_utils import TestServer

from connectors.meta.webhook import SIGNATURE_HEADER, sign

TOKEN = "EAAGfakeTOKENforTESTS0123456789"
APP_SECRET = "0123456789abcdef0123456789abcdef"
VERIFY_TOKEN = "webcare-verify-0123"
# What Meta documents for a comment that cannot take a private reply (Instagram's private replies
# page; a second private reply to the same comment is refused, its exact code is not documented).
ALREADY_REPLIED = {"error": {"message": "The comment is invalid for a private reply", "type": "OAuthException",
                             "code": 100, "error_subcode": 2534025, "fbtrace_id": "L8vB3xKc0ImEyW2"}}


@dataclass
class Call:
    path: str  # without the version: "1234567890/messages"
    body: Dict[str, Any]
    token: Optional[str]


def signed_headers(body: bytes, app_secret: str = APP_SECRET) -> Dict[str, str]:
    """The headers of Meta's webhook POST of ``body``."""
    return {SIGNATURE_HEADER: sign(app_secret, body), "Content-Type": "application/json"}


class FakeGraph:
    """``async with FakeGraph() as graph:`` then set the channel's ``graph_base_url`` to ``graph.url``."""

    def __init__(self, version: str = "v23.0") -> None:
        self.version = version
        self.calls: List[Call] = []
        self.private_replies: Dict[str, str] = {}  # comment id -> the commenter's PSID
        self.psid_of_comment: Dict[str, str] = {}  # what a private reply answers (default: a new PSID)
        self._script: Dict[str, List[Tuple[int, Dict[str, Any]]]] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_post("/{version}/{path:.+}", self._handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def __aenter__(self) -> "FakeGraph":
        await self.server.start_server(access_log=None)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.server.close()

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def fail(self, path: str, status: int, error: Dict[str, Any], times: int = 1) -> None:
        """The next ``times`` calls to ``path`` answer ``status`` with the Graph error body ``error``."""
        self._script.setdefault(path, []).extend([(status, error)] * times)

    def calls_to(self, path: str) -> List[Call]:
        return [call for call in self.calls if call.path == path]

    async def wait_for(self, path: str, count: int = 1, timeout: float = 10.0) -> List[Call]:
        """The calls to ``path`` once there are ``count`` of them (TimeoutError otherwise)."""
        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.calls_to(path)) >= count)
        await asyncio.wait_for(enough(), timeout)
        return self.calls_to(path)

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        if request.match_info["version"] != self.version:
            return _error(400, 2635, f"Unknown API version {request.match_info['version']}")
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, 100, "(#100) The request body is not JSON")
        auth = request.headers.get("Authorization", "")
        call = Call(path, body if isinstance(body, dict) else {}, auth.removeprefix("Bearer ") or None)
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        if call.token is None:
            return _error(400, 2500, "An active access token must be used to query information about the current user.",
                          kind="OAuthException")
        scripted = self._script.get(path)
        if scripted:
            status, error = scripted.pop(0)
            return web.json_response(error, status=status)
        return self._answer(path, call.body)

    def _answer(self, path: str, body: Dict[str, Any]) -> web.Response:
        number = next(self._ids)
        parts = path.split("/")
        if parts[-1] == "messages" and body.get("messaging_product") == "whatsapp":
            to = str(body.get("to", ""))
            return web.json_response({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                                      "messages": [{"id": f"wamid.FAKE{number:010d}"}]})
        if parts[-1] == "messages":
            recipient = body.get("recipient") or {}
            if "comment_id" in recipient:
                comment = str(recipient["comment_id"])
                if comment in self.private_replies:
                    return web.json_response(ALREADY_REPLIED, status=400)
                psid = self.psid_of_comment.get(comment, f"7{number:015d}")
                self.private_replies[comment] = psid
                return web.json_response({"recipient_id": psid, "message_id": f"m_FAKE{number:010d}"})
            return web.json_response({"recipient_id": str(recipient.get("id", "")),
                                      "message_id": f"m_FAKE{number:010d}"})
        if parts[-1] in ("comments", "replies", "mentions"):
            return web.json_response({"id": f"{parts[0]}_{number:010d}"})
        if len(parts) == 1 and ("is_hidden" in body or "hide" in body):
            return web.json_response({"success": True})
        return _error(400, 100, f"(#100) Unsupported post request to {path} in this fake")


def _error(status: int, code: int, message: str, kind: str = "OAuthException") -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "code": code,
                                        "fbtrace_id": "AbCdEfGhIjK"}}, status=status)
