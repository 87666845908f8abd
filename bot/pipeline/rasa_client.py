"""HTTP client of webcare's Rasa channel (``bot.rasa.channel.WebcareInput``)."""
from __future__ import annotations

import asyncio
import logging
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

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
    tracker cache stays warm). A small circuit breaker per replica moves conversations away
    from a replica that is failing: a replica that timed out, answered 5xx or could not be
    connected to is *suspect* for ``suspect_seconds`` (measured on ``clock``, a monotonic
    clock), and ``to_try`` puts suspect replicas after the healthy ones. A success clears it
    at once; after the cool-down a suspect replica is back in its place and is simply tried
    again (another failure makes it suspect for another cool-down).
    """

    def __init__(
        self,
        urls: Union[str, Sequence[str]],
        suspect_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        listed = [urls] if isinstance(urls, str) else list(urls)
        self.urls = [url.rstrip("/") for url in listed if url]
        if not self.urls:
            raise ValueError("no Rasa URL given")
        self.suspect_seconds = suspect_seconds
        self.clock = clock
        # replica -> end of its cool-down; kept after the cool-down until it answers again,
        # so that becoming suspect and recovering are each logged once
        self._suspect_until: Dict[str, float] = {}

    def for_sender(self, sender: str) -> List[str]:
        """All replicas in ``sender``'s stable order, its own first (whatever their health)."""
        first = zlib.crc32(sender.encode("utf-8")) % len(self.urls)
        return self.urls[first:] + self.urls[:first]

    def to_try(self, sender: str) -> List[str]:
        """The replicas to try for ``sender`` now: its stable order with the suspect replicas
        moved after the healthy ones (all suspect, or none: the stable order)."""
        order = self.for_sender(sender)
        healthy = [url for url in order if not self.suspect(url)]
        return healthy + [url for url in order if url not in healthy]

    def suspect(self, url: str) -> bool:
        """Whether ``url`` failed less than ``suspect_seconds`` ago (and has not answered since)."""
        until = self._suspect_until.get(url)
        return until is not None and self.clock() < until

    def failed(self, url: str, reason: str) -> None:
        """``url`` timed out, answered 5xx or could not be connected to: suspect it."""
        again = url in self._suspect_until
        self._suspect_until[url] = self.clock() + self.suspect_seconds
        if not again:
            logger.warning("Rasa replica %s is suspect (%s): tried after the healthy replicas for %.0f s",
                           url, reason, self.suspect_seconds)

    def answered(self, url: str) -> None:
        """``url`` answered: it is healthy again at once."""
        if self._suspect_until.pop(url, None) is not None:
            logger.info("Rasa replica %s answers again: no longer suspect", url)


def unreachable(exc: BaseException) -> bool:
    """The request never reached the server: the connection was refused, failed or timed out
    (so trying another replica cannot do it twice)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return True
    connection_timeout = getattr(aiohttp, "ConnectionTimeoutError", None)  # aiohttp >= 3.10
    if connection_timeout is not None and isinstance(exc, connection_timeout):
        return True
    # aiohttp < 3.10: ServerTimeoutError("Connection timeout to host ...") is raised only
    # around establishing the connection, before anything is sent
    return isinstance(exc, aiohttp.ServerTimeoutError) and str(exc).startswith("Connection timeout")


class RasaClient:
    """Posts customer messages to the Rasa server's webcare channel (one URL or replicas).

    ``timeout_seconds`` bounds a whole request; connecting gets at most
    ``connect_timeout_seconds`` of it, so an unroutable replica fails fast. A replica that
    failed is suspect for ``suspect_seconds`` (see ``RasaReplicas``); ``clock`` is injectable
    for tests.
    """

    def __init__(
        self,
        base_url: Union[str, Sequence[str]],
        timeout_seconds: float = 30.0,
        suspect_seconds: float = 30.0,
        connect_timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.replicas = RasaReplicas(base_url, suspect_seconds=suspect_seconds, clock=clock)
        self.timeout = aiohttp.ClientTimeout(
            total=timeout_seconds, sock_connect=min(connect_timeout_seconds, timeout_seconds))
        self._session: Optional[aiohttp.ClientSession] = None

    @property
    def url(self) -> str:
        """The channel URL of the first replica."""
        return channel_url(self.replicas.urls[0])

    async def send(
        self, sender: str, text: str, message_id: str, metadata: Dict[str, Any]
    ) -> RasaReply:
        """One customer message in, the bot's reply and the parse out.

        The replicas are tried in ``RasaReplicas.to_try`` order: the sender's own first unless
        it is suspect. A replica that cannot be connected to is skipped for the next one. A
        replica that took the request and then failed (5xx) or timed out is not: Rasa may have
        processed it, so this raises ``RasaUnavailable`` and the worker's retry, a moment later,
        goes to a healthy replica first (which replays the answer if the failing one had
        processed the message: the channel is idempotent per message id).
        """
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        body = {"sender": sender, "text": text, "message_id": message_id, "metadata": metadata}
        replicas = self.replicas.to_try(sender)
        for position, base in enumerate(replicas):
            url = channel_url(base)
            try:
                async with self._session.post(url, json=body) as response:
                    if response.status >= 500:
                        self.replicas.failed(base, f"answered {response.status}")
                        raise RasaUnavailable(f"Rasa answered {response.status} at {url}")
                    if response.status >= 400:
                        self.replicas.answered(base)  # up, it refused this message
                        raise RasaRejected(f"Rasa refused the message: {response.status} {await response.text()}")
                    data = await response.json()
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                self.replicas.failed(base, type(exc).__name__)
                if unreachable(exc) and position + 1 < len(replicas):
                    logger.warning("Rasa replica %s unreachable; trying %s", base, replicas[position + 1])
                    continue
                raise RasaUnavailable(f"Rasa unreachable at {url}: {type(exc).__name__}") from exc
            self.replicas.answered(base)
            return RasaReply(data.get("messages") or [], data.get("parse") or {}, data.get("alternatives") or [])
        raise AssertionError("unreachable: the loop returns or raises")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def channel_url(base: str) -> str:
    """The URL of webcare's channel on the Rasa server at ``base``."""
    return f"{base.rstrip('/')}/webhooks/webcare/webhook"
