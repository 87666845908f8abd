"""The channel connector extension point.

A connector turns a channel's webhook into :class:`InboundMessage` objects (verifying it
first) and sends :class:`OutboundMessage` payloads back, returning the channel's message id.
Connectors are named by dotted path in ``webcare.yml`` (``channels: {name: {type: ...}}``) or
registered under the entry-point group ``webcare.connectors``.
"""
from __future__ import annotations

import abc
import datetime as dt
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Protocol, Tuple

from bot.errors import InvalidInput
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
    kind: str = "text"  # text | button | attachment | edit | deleted
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # "private" (a DM, a chat) or "public" (a comment everyone can read, see
    # ARCHITECTURE.md); a public message belongs to ``thread`` (the post it is under): one
    # public conversation per customer and thread, apart from their private one.
    visibility: str = "private"
    thread: Optional[str] = None


@dataclass(frozen=True)
class Ignored:
    """A webhook event webcare does not act on (logged, answered 200, nothing stored)."""

    reason: str


DELIVERY_STATES = ("sent", "delivered", "read", "failed")


@dataclass(frozen=True)
class DeliveryUpdate:
    """The platform's word on a message we sent (WhatsApp statuses, Messenger receipts).

    Either one message (``channel_message_id``) or, for a read watermark, every message sent
    to ``recipient`` up to ``watermark``. ``status`` is one of :data:`DELIVERY_STATES`; a
    state never goes back (read after delivered after sent; failed is final).
    """

    channel: str
    status: str
    channel_message_id: Optional[str] = None
    recipient: Optional[str] = None
    watermark: Optional[dt.datetime] = None
    at: Optional[dt.datetime] = None
    error: Optional[str] = None
    # failed because the messaging window was closed (WhatsApp 131047 after accepting it)
    needs_template: bool = False


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

    async def record_delivery(self, update: DeliveryUpdate) -> int:
        """Commit a delivery status before the channel's 2xx; the number of messages it moved."""
        ...


@dataclass(frozen=True)
class MessagingWindow:
    """A channel that allows a free-form message only for a while after the customer's last.

    ``free_form_hours``: WhatsApp and Messenger 24. ``human_agent_hours``: Messenger's
    ``HUMAN_AGENT`` tag lets a person's reply out up to 7 days (168 h); None: no such tag.
    ``margin_minutes``: the window counts as closed this much earlier (our clock and the
    platform's, the time the message took to reach us).
    """

    free_form_hours: float = 24.0
    human_agent_hours: Optional[float] = None
    margin_minutes: float = 5.0


@dataclass(frozen=True)
class TemplateSpec:
    """An approved message template the channel sends outside its window, for one purpose.

    ``languages``: our language code → the template's (``{"nl": "nl", "en": "en_US"}``);
    the first is used when the customer's language has none. ``parameters``: what fills the
    body's ``{{1}}``, ``{{2}}``, ...: ``text`` (the message), ``customer_name``.
    """

    name: str
    languages: Tuple[Tuple[str, str], ...]
    parameters: Tuple[str, ...] = ("text",)

    def language_for(self, language: Optional[str]) -> str:
        for ours, theirs in self.languages:
            if ours == language:
                return theirs
        return self.languages[0][1]


@dataclass(frozen=True)
class SendContext:
    """What the dispatcher knows of an outbound message beyond its payload.

    ``purpose``: answer, ack, handover, notice, csat or broadcast; ``source``: bot, draft, agent
    or broadcast; ``typed_by_person``: an agent wrote the text (a reply, an edited draft; not a
    bot's draft approved as it was); ``visibility``: private or public; ``reply_to``: for a
    public conversation, the comment to answer under.
    """

    purpose: str = "answer"
    source: str = "bot"
    typed_by_person: bool = False  # an agent's reply or an agent's edit of a draft
    visibility: str = "private"
    reply_to: Optional[str] = None
    language: Optional[str] = None
    customer_name: Optional[str] = None


@dataclass(frozen=True)
class Capabilities:
    """What a channel can do; the service respects these limits."""

    max_text_length: int = 4096
    buttons: bool = True
    rate_limit_per_second: float = 30.0
    window: Optional[MessagingWindow] = None  # None: the channel may always send


@dataclass(frozen=True)
class SendResult:
    """Outcome of a successful delivery."""

    channel_message_id: Optional[str] = None
    # The recipient's address as the platform answered it, when it differs from the one we
    # sent to (a private reply to a comment goes to the comment; Meta answers with the PSID).
    recipient_id: Optional[str] = None


class DeliveryError(Exception):
    """A delivery failed.

    ``retry_after``: the channel asked us to wait (seconds; e.g. Telegram 429).
    ``permanent``: retrying cannot help (bad request, recipient gone).
    ``unreachable``: the recipient blocked us / no longer exists; stop sending to them.
    ``needs_template``: the platform says the window is closed; a template is needed.
    """

    def __init__(
        self,
        reason: str,
        *,
        retry_after: Optional[float] = None,
        permanent: bool = False,
        unreachable: bool = False,
        needs_template: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.permanent = permanent or unreachable or needs_template
        self.unreachable = unreachable
        self.needs_template = needs_template


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

    async def deliver(self, recipient: str, payload: Dict[str, Any], idempotency_key: str,
                      context: SendContext) -> SendResult:
        """What the dispatcher calls: :meth:`send`, unless the channel needs ``context``
        (public replies, message tags); override it then."""
        return await self.send(recipient, payload, idempotency_key)

    def template_for(self, purpose: str) -> Optional[TemplateSpec]:
        """The template configured for ``purpose`` outside the window (None: none)."""
        return None

    async def start(self) -> None:
        """Called when the service starts (open clients, start polling)."""

    async def stop(self) -> None:
        """Called when the service stops."""


def json_body(body: bytes) -> Any:
    """A webhook body parsed as JSON; :class:`InvalidInput` (a 400) with the reason if it is not."""
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput("body is not valid JSON: nested too deeply") from None


class SendProgress:
    """How many parts of a multi-part send went out, per idempotency key (and the last part's
    id), so a retry after a failure on part 2 does not send part 1 again. In memory: the most
    recent :data:`LIMIT` keys."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self._done: "OrderedDict[str, Tuple[int, Optional[str]]]" = OrderedDict()

    def get(self, key: str) -> Tuple[int, Optional[str]]:
        """``(parts sent, the last one's id)``; ``(0, None)`` for a new key."""
        return self._done.get(key, (0, None))

    def remember(self, key: str, done: int, last_id: Optional[str]) -> None:
        self._done[key] = (done, last_id)
        self._done.move_to_end(key)
        while len(self._done) > self.LIMIT:
            self._done.popitem(last=False)

    def forget(self, key: str) -> None:
        """Every part went out."""
        self._done.pop(key, None)
