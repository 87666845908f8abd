"""A fake messaging platform on loopback: receives the signed webhook connector's callbacks (benchmarks, tests)."""
from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List, Optional

from aiohttp import web
from aiohttp.test_utils import TestServer

from connectors.signing import SIGNATURE_HEADER, sign, verify


class SignedCallbackServer:
    """A platform on loopback that receives the signed webhook connector's callbacks.

    Checks the signature (401 and counted in ``bad_signatures`` when wrong) and hands the
    parsed body to :meth:`accept`, which subclasses implement.
    """

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.bad_signatures = 0
        app = web.Application()
        app.router.add_post("/callback", self._callback)
        self.server = TestServer(app, host="127.0.0.1")

    async def __aenter__(self) -> "SignedCallbackServer":
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.server.close()

    @property
    def url(self) -> str:
        return str(self.server.make_url("/callback"))

    async def _callback(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(self.secret, body, request.headers.get(SIGNATURE_HEADER)):
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        return await self.accept(json.loads(body))

    async def accept(self, data: Dict[str, Any]) -> web.Response:
        raise NotImplementedError


class FakePlatform(SignedCallbackServer):
    """Records every signed callback in ``received`` (answers with a platform message id)."""

    def __init__(self, secret: str) -> None:
        super().__init__(secret)
        self.received: List[Dict[str, Any]] = []
        self._arrived = asyncio.Condition()

    async def accept(self, data: Dict[str, Any]) -> web.Response:
        async with self._arrived:
            self.received.append(data)
            self._arrived.notify_all()
        return web.json_response({"message_id": f"p{len(self.received)}"})

    async def wait_for(self, count: int, timeout: float = 30.0) -> List[Dict[str, Any]]:
        """Wait until ``count`` callbacks arrived in total."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.received) >= count), timeout)
        return list(self.received)


def signed(secret: str, payload: Dict[str, Any]) -> Dict[str, Any]:
    """Body and headers of a signed inbound webhook call (``session.post(url, **signed(...))``)."""
    body = json.dumps(payload).encode()
    return {"data": body, "headers": {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body)}}


def inbound(message_id: str, sender: str, text: str, language: Optional[str] = None) -> Dict[str, Any]:
    """A signed-webhook message body."""
    sender_obj: Dict[str, Any] = {"id": sender, "name": f"Customer {sender}"}
    if language:
        sender_obj["language"] = language
    return {"message_id": message_id, "sender": sender_obj, "text": text}
