"""HTTP client of webcare's Rasa channel (``bot.rasa_channel.WebcareInput``)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import aiohttp


class RasaUnavailable(Exception):
    """Rasa could not be reached or failed (network, timeout, 5xx): retry later."""


class RasaRejected(Exception):
    """Rasa refused the message (4xx): retrying the same message cannot help."""


@dataclass(frozen=True)
class RasaReply:
    """The bot's messages and the parse result of one customer message."""

    messages: List[Dict[str, Any]]
    parse: Dict[str, Any]
    alternatives: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def intent(self) -> Optional[str]:
        return (self.parse.get("intent") or {}).get("name")

    @property
    def confidence(self) -> float:
        return float((self.parse.get("intent") or {}).get("confidence") or 0.0)

    @property
    def language(self) -> Optional[str]:
        return (self.parse.get("language") or {}).get("name")


class RasaClient:
    """Posts customer messages to the Rasa server's webcare channel."""

    def __init__(self, base_url: str, timeout_seconds: float = 30.0) -> None:
        self.url = f"{base_url.rstrip('/')}/webhooks/webcare/webhook"
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: Optional[aiohttp.ClientSession] = None

    async def send(
        self, sender: str, text: str, message_id: str, metadata: Dict[str, Any]
    ) -> RasaReply:
        """One customer message in, the bot's reply and the parse out."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        body = {"sender": sender, "text": text, "message_id": message_id, "metadata": metadata}
        try:
            async with self._session.post(self.url, json=body) as response:
                if response.status >= 500:
                    raise RasaUnavailable(f"Rasa answered {response.status}")
                if response.status >= 400:
                    raise RasaRejected(f"Rasa refused the message: {response.status} {await response.text()}")
                data = await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RasaUnavailable(f"Rasa unreachable at {self.url}: {type(exc).__name__}") from exc
        return RasaReply(data.get("messages") or [], data.get("parse") or {}, data.get("alternatives") or [])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
