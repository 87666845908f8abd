"""A fake Telegram Bot API server on loopback (aiohttp), for the Telegram connector's tests.

Answers ``/bot<token>/<method>`` like Telegram does (``{"ok": true, "result": ...}``), records
every call with its decoded parameters, and can be scripted to fail a method the way Telegram
fails it (429 with ``retry_after``, 403 blocked by the user, 400, 502, ...). ``getUpdates``
serves the queued updates from ``offset`` on and long-polls briefly when there are none.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from aiohttp import web
from aiohttp.test_utils import TestServer

TOKEN = "7012345678:FAKE-token-for-tests_0123456789abcd"
BOT_USER = {
    "id": 7012345678, "is_bot": True, "first_name": "Webcare", "username": "webcare_test_bot",
    "can_join_groups": False, "can_read_all_group_messages": False, "supports_inline_queries": False,
}
# Parameters python-telegram-bot sends as plain strings; every other one is JSON encoded.
STRING_PARAMETERS = {"text", "caption", "url", "secret_token", "callback_query_id", "photo", "parse_mode",
                     "ip_address"}


@dataclass
class Call:
    method: str
    params: Dict[str, Any]


class FakeTelegram:
    """``async with FakeTelegram() as fake:`` then point the connector at ``fake.url``."""

    def __init__(self, token: str = TOKEN, long_poll_cap: float = 0.2) -> None:
        self.token = token
        self.long_poll_cap = long_poll_cap
        self.calls: List[Call] = []
        self.updates: List[Dict[str, Any]] = []
        self._script: Dict[str, List[Optional[Tuple[int, Dict[str, Any]]]]] = {}
        self._next_message_id = 5000
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def __aenter__(self) -> "FakeTelegram":
        await self.server.start_server(access_log=None)  # it would log the token in each URL
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.server.close()

    @property
    def url(self) -> str:
        """The ``api_base_url`` of the connector (``<url>/bot<token>/<method>``)."""
        return str(self.server.make_url("")).rstrip("/")

    # ------------------------------------------------------------ scripting

    def fail(self, method: str, status: int, description: str, **parameters: Any) -> None:
        """The next ``method`` call answers ``status`` with Telegram's error body."""
        body: Dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        self._script.setdefault(method, []).append((status, body))

    def succeed(self, method: str) -> None:
        """The next scripted ``method`` call answers normally (to fail a later one)."""
        self._script.setdefault(method, []).append(None)

    def flood(self, method: str = "sendMessage", retry_after: int = 3) -> None:
        self.fail(method, 429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)

    def blocked(self, method: str = "sendMessage") -> None:
        self.fail(method, 403, "Forbidden: bot was blocked by the user")

    async def push_updates(self, *updates: Dict[str, Any]) -> None:
        """Queue updates for ``getUpdates`` (wakes a waiting long poll)."""
        async with self._changed:
            self.updates.extend(updates)
            self._changed.notify_all()

    # ------------------------------------------------------------ inspection

    def calls_to(self, method: str) -> List[Dict[str, Any]]:
        return [call.params for call in self.calls if call.method == method]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> List[Dict[str, Any]]:
        """Wait until ``method`` was called ``count`` times in total."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.calls_to(method)) >= count), timeout)
        return self.calls_to(method)

    # ------------------------------------------------------------ the API

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        params = await _params(request)
        async with self._changed:
            self.calls.append(Call(method, params))
            self._changed.notify_all()
        script = self._script.get(method)
        scripted = script.pop(0) if script else None
        if scripted is not None:
            status, body = scripted
            return web.json_response(body, status=status)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        return await handler(params)

    async def _api_getMe(self, params: Dict[str, Any]) -> web.Response:
        return _ok(BOT_USER)

    async def _api_sendMessage(self, params: Dict[str, Any]) -> web.Response:
        text = params.get("text")
        if not text:
            return _error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return _error(400, "Bad Request: message is too long")
        message = self._message(params["chat_id"], text=text)
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return _ok(message)

    async def _api_sendPhoto(self, params: Dict[str, Any]) -> web.Response:
        return _ok(self._message(params["chat_id"], photo=[
            {"file_id": "AgACAgQAAxkDAAIBsmZ", "file_unique_id": "AQADsmZ", "width": 800, "height": 600}]))

    async def _api_answerCallbackQuery(self, params: Dict[str, Any]) -> web.Response:
        return _ok(True)

    async def _api_setWebhook(self, params: Dict[str, Any]) -> web.Response:
        if not str(params.get("url", "")).startswith("https://"):
            return _error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        return _ok(True, "Webhook was set")

    async def _api_deleteWebhook(self, params: Dict[str, Any]) -> web.Response:
        return _ok(True, "Webhook was deleted")

    async def _api_getUpdates(self, params: Dict[str, Any]) -> web.Response:
        offset = int(params.get("offset") or 0)
        if offset:  # confirms (forgets) every earlier update, like Telegram
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        wait = min(float(params.get("timeout") or 0), self.long_poll_cap)
        async with self._changed:
            if not self.updates and wait > 0:
                try:
                    await asyncio.wait_for(self._changed.wait_for(lambda: bool(self.updates)), wait)
                except asyncio.TimeoutError:
                    pass
            limit = int(params.get("limit") or 100)
            return _ok(self.updates[:limit])

    def _message(self, chat_id: int, **content: Any) -> Dict[str, Any]:
        self._next_message_id += 1
        return {
            "message_id": self._next_message_id,
            "from": {k: BOT_USER[k] for k in ("id", "is_bot", "first_name", "username")},
            "chat": {"id": chat_id, "first_name": "Customer", "type": "private"},
            "date": int(time.time()),
            **content,
        }


async def _params(request: web.Request) -> Dict[str, Any]:
    if request.content_type == "application/json":
        data = await request.json()
        return dict(data) if isinstance(data, dict) else {}
    form = await request.post() if request.body_exists else {}
    params: Dict[str, Any] = {}
    for key, value in form.items():
        if not isinstance(value, str):
            params[key] = "<file>"
        elif key in STRING_PARAMETERS:
            params[key] = value
        else:
            try:
                params[key] = json.loads(value)
            except json.JSONDecodeError:
                params[key] = value
    return params


def _ok(result: Any, description: Optional[str] = None) -> web.Response:
    body: Dict[str, Any] = {"ok": True, "result": result}
    if description:
        body["description"] = description
    return web.json_response(body)


def _error(status: int, description: str) -> web.Response:
    return web.json_response({"ok": False, "error_code": status, "description": description}, status=status)
