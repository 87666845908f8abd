"""The channel connector extension point.

A connector turns a channel's webhook into :class:`InboundMessage` objects (verifying it
first) and sends :class:`OutboundMessage` payloads back, returning the channel's message id.
Connectors are named by dotted path in ``webcare.yml`` (``channels: {name: {type: ...}}``) or
registered under the entry-point group ``webcare.connectors``.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Protocol

from bot.store.database import Store

if TYPE_CHECKING:
    from aiohttp import web


@dataclass(frozen=True)
class InboundMessage:
    """A customer message in webcare's normalized form."""

    channel: str  # the connector's configured name, e.g. "telegram"
    channel_message_id: str  # the channel's own id: the idempotency key of intake
    sender_id: str  # the customer's address on the channel (chat id, session id, ...)
    text: Optional[str]
    sender_name: Optional[str] = None
    language_hint: Optional[str] = None
    kind: str = "text"  # text | button | attachment | edit
    metadata: Mapping[str, Any] = field(default_factory=dict)


class Accepted(Protocol):
    """What intake answers for a committed message."""

    message_id: int
    duplicate: bool  # delivered before: stored once, answered once
    truncated: bool


class IntakePort(Protocol):
    """All a connector sees of the service (:class:`bot.pipeline.intake.Intake` implements it)."""

    store: Store  # read-only use: a channel that serves its own history (the web chat)

    async def accept(self, inbound: InboundMessage) -> Accepted:
        """Commit ``inbound`` (idempotent on its channel message id) before the channel's 2xx."""
        ...


@dataclass(frozen=True)
class Capabilities:
    """What a channel can do; the service respects these limits."""

    max_text_length: int = 4096
    buttons: bool = True
    rate_limit_per_second: float = 30.0


@dataclass(frozen=True)
class SendResult:
    """Outcome of a successful delivery."""

    channel_message_id: Optional[str] = None


class DeliveryError(Exception):
    """A delivery failed.

    ``retry_after``: the channel asked us to wait (seconds; e.g. Telegram 429).
    ``permanent``: retrying cannot help (bad request, recipient gone).
    ``unreachable``: the recipient blocked us / no longer exists; stop sending to them.
    """

    def __init__(
        self,
        reason: str,
        *,
        retry_after: Optional[float] = None,
        permanent: bool = False,
        unreachable: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.permanent = permanent or unreachable
        self.unreachable = unreachable


class ConnectorError(Exception):
    """A connector is misconfigured or failed to load."""


class Connector(abc.ABC):
    """Base class of every channel connector.

    Subclasses set :attr:`capabilities`, register their webhook routes in :meth:`setup`
    (handing each verified message to ``intake.accept``) and implement :meth:`send`.
    """

    capabilities: Capabilities = Capabilities()

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        self.name = name
        self.options = dict(options)

    @classmethod
    def from_config(cls, name: str, options: Mapping[str, Any]) -> "Connector":
        """Build from the options in ``webcare.yml``; raise :class:`ConnectorError` if invalid."""
        return cls(name, options)

    @abc.abstractmethod
    def setup(self, app: "web.Application", intake: IntakePort) -> None:
        """Register this channel's routes (webhooks, pages) on ``app``."""

    @abc.abstractmethod
    async def send(self, recipient: str, payload: Dict[str, Any], idempotency_key: str) -> SendResult:
        """Deliver ``payload`` (``{"text": ..., "buttons": [{"title", "payload"}]}``).

        ``idempotency_key`` is stable across retries of the same message; pass it on where
        the channel can deduplicate. Raise :class:`DeliveryError` on failure.
        """

    async def start(self) -> None:
        """Called when the service starts (open clients, start polling)."""

    async def stop(self) -> None:
        """Called when the service stops."""
