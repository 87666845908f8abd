"""HTTP client of webcare's Rasa channel (``bot.rasa_channel.WebcareInput``)."""
from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

import aiohttp

logger = logging.getLogger(__name__)


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


class RasaReplicas:
    """The Rasa servers of a deployment: one, or several replicas sharing one tracker store
    (PostgreSQL) and one lock store (Redis), so that any of them can answer any conversation.

    Each conversation goes to "its" replica (a stable hash of the sender id, so a replica's
    tracker cache stays warm) and to the next one only when its replica cannot be reached.
    """

    def __init__(self, urls: Union[str, Sequence[str]]) -> None:
        listed = [urls] if isinstance(urls, str) else list(urls)
        self.urls = [url.rstrip("/") for url in listed if url]
        if not self.urls:
            raise ValueError("no Rasa URL given")

    def for_sender(self, sender: str) -> List[str]:
        """The replicas to try for ``sender``, its own first."""
        first = zlib.crc32(sender.encode("utf-8")) % len(self.urls)
        return self.urls[first:] + self.urls[:first]


def unreachable(exc: BaseException) -> bool:
    """The request never reached the server (so trying another replica cannot do it twice)."""
    return isinstance(exc, aiohttp.ClientConnectorError)


class RasaClient:
    """Posts customer messages to the Rasa server's webcare channel (one URL or replicas)."""

    def __init__(self, base_url: Union[str, Sequence[str]], timeout_seconds: float = 30.0) -> None:
        self.replicas = RasaReplicas(base_url)
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: Optional[aiohttp.ClientSession] = None

    @property
    def url(self) -> str:
        """The channel URL of the first replica."""
        return channel_url(self.replicas.urls[0])

    async def send(
        self, sender: str, text: str, message_id: str, metadata: Dict[str, Any]
    ) -> RasaReply:
        """One customer message in, the bot's reply and the parse out.

        A replica that cannot be connected to is skipped for the next one; a replica that
        took the request and then failed or timed out is not (Rasa may have processed it).
        """
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        body = {"sender": sender, "text": text, "message_id": message_id, "metadata": metadata}
        replicas = self.replicas.for_sender(sender)
        for position, base in enumerate(replicas):
            url = channel_url(base)
            try:
                async with self._session.post(url, json=body) as response:
                    if response.status >= 500:
                        raise RasaUnavailable(f"Rasa answered {response.status} at {url}")
                    if response.status >= 400:
                        raise RasaRejected(f"Rasa refused the message: {response.status} {await response.text()}")
                    data = await response.json()
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                if unreachable(exc) and position + 1 < len(replicas):
                    logger.warning("Rasa replica %s unreachable; trying %s", base, replicas[position + 1])
                    continue
                raise RasaUnavailable(f"Rasa unreachable at {url}: {type(exc).__name__}") from exc
            return RasaReply(data.get("messages") or [], data.get("parse") or {}, data.get("alternatives") or [])
        raise AssertionError("unreachable: the loop returns or raises")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def channel_url(base: str) -> str:
    """The URL of webcare's channel on the Rasa server at ``base``."""
    return f"{base.rstrip('/')}/webhooks/webcare/webhook"
