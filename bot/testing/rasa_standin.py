"""Stand-in Rasa replicas on loopback (webcare's channel URL) for fail-over tests: one can hang,
fail with 503 or answer, and change its behaviour mid-test."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict, List, Tuple

from aiohttp import web


class FakeRasa:
    """One stand-in Rasa replica; ``behaviour`` ("hang", "fail" or "answer") can change mid-test."""

    def __init__(self, name: str, behaviour: str) -> None:
        self.name = name
        self.behaviour = behaviour
        self.received: List[Dict[str, Any]] = []  # every request body it took
        self.url = ""
        self.release = asyncio.Event()  # ends the hanging requests at teardown

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        if self.behaviour == "hang":
            await self.release.wait()
        if self.behaviour == "fail":
            return web.Response(status=503, text="no worker free")
        return web.json_response({
            "messages": [{"text": f"answered by {self.name}"}],
            "parse": {"text": body["text"], "intent": {"name": "tariffs", "confidence": 0.95},
                      "intent_ranking": [{"name": "tariffs", "confidence": 0.95}], "entities": [],
                      "language": {"name": "en"}},
        })

    def message_ids(self) -> List[str]:
        return [body["message_id"] for body in self.received]


@asynccontextmanager
async def fake_rasa_replicas(*specs: Tuple[str, str]) -> AsyncIterator[Dict[str, FakeRasa]]:
    """Serve one :class:`FakeRasa` per ``(name, behaviour)``; yields them by name, URLs set."""
    servers = {name: FakeRasa(name, behaviour) for name, behaviour in specs}
    runners = []
    try:
        for fake in servers.values():
            app = web.Application()
            app.router.add_post("/webhooks/webcare/webhook", fake.handle)
            runner = web.AppRunner(app, shutdown_timeout=1.0)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            host, port = runner.addresses[0][:2]
            fake.url = f"http://{host}:{port}"
        yield servers
    finally:
        for fake in servers.values():
            fake.release.set()
        for runner in runners:
            await runner.cleanup()
