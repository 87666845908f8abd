"""Web chat connector: the customer chat page served by the service itself.

Routes (under ``path``, default ``/chat``):

``GET  /chat``               the page (one template, one JS file, one CSS file; no CDN, no build
                             step); sets the session cookie ``webcare_chat`` on first visit
``GET  /chat/static/...``    its JS and CSS
``GET  /chat/api/history``   the session's messages, both directions, in order, with buttons
``POST /chat/api/messages``  ``{"text", "client_message_id", "language", "payload"?}`` (JSON only)
``GET  /chat/api/events``    Server-Sent Events: the session's outbound messages once sent

The customer is the browser session: the cookie (HttpOnly, SameSite=Lax) holds a random secret
token and the sender id is a digest of it, so the token itself (a credential: whoever has it
reads the chat) is never stored, shown to agents or used as an outbox recipient. A session id
in a request body is ignored.

Inbound is idempotent on the browser's ``client_message_id`` (a UUID; the channel message id
is ``<sender id>/<uuid>``, so one session can never collide with another's), refuses texts
over ``max_text_chars`` with 413 (the page says so and keeps the text), accepts JSON only
(a cross-site form cannot send ``application/json`` without a CORS preflight, never granted),
refuses a foreign ``Origin`` and is rate-limited per session, counted in the store so the
limit holds across replicas.

Outbound: the dispatcher has already committed the message to the store; :meth:`send` only
wakes this process's event streams and returns an id. Every event stream reads the store
(outbound messages of the session with status ``sent`` and an id above the last event id,
``Last-Event-ID`` honoured), so it works whichever replica delivered the message: it wakes at
once on a local ``send``, and one watcher per process polls the store every
``poll_interval_seconds`` for all open streams together (one query, not one per stream).

Options: ``path`` (``/chat``), ``brand`` (``Polder Energie``), ``cookie_secure`` (default: when
the request came over HTTPS), ``session_days`` (30), ``rate_limit_per_minute`` (20),
``max_text_chars`` (4000, what intake keeps), ``poll_interval_seconds`` (0.5),
``heartbeat_seconds`` (15), ``history_limit`` (200), ``max_streams_per_session`` (5),
``allowed_origins`` (extra origins, e.g. behind a proxy that rewrites Host),
``frame_ancestors`` (CSP, default ``'none'``), ``max_text_length`` (4096) and
``rate_limit_per_second`` (200) for outbound.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import re
import secrets
import uuid
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple
from urllib.parse import urlsplit

import jinja2
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.errors import InvalidInput, NotAllowed, RateLimited, TooLarge, UnsupportedMedia
from bot.store.database import Store
from bot.store.models import ChannelIdentity, Conversation, Direction, Message, OutboxItem, utcnow
from connectors.base import (
    Capabilities,
    Connector,
    ConnectorError,
    DeliveryError,
    InboundMessage,
    IntakePort,
    SendResult,
    json_body,
)


logger = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "webchat_assets"
STATIC = ASSETS / "static"
COOKIE = "webcare_chat"
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)
CURSOR_PATTERN = re.compile(r"^[0-9]{1,18}$")
LANGUAGES = ("nl", "en")
DEFAULT_LANGUAGE = "nl"
MAX_PAYLOAD_CHARS = 1000
MAX_TITLE_CHARS = 200
RATE_WINDOW = dt.timedelta(minutes=1)
FAST_POLL_SECONDS = 0.05  # after a local send() the store is re-read quickly until the commit shows
FAST_POLL_WINDOW = 2.0
RETRY_MILLISECONDS = 2000  # how soon the browser reconnects a dropped stream
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

# What the page says; {brand} is filled in. The page also gets both languages for its toggle.
UI_TEXTS: Dict[str, Dict[str, str]] = {
    "nl": {
        "title": "Chat met {brand}",
        "subtitle": "Klantenservice",
        "intro": "Hoi! Stel hier je vraag over je energiecontract, termijnbedrag, meterstanden of een "
                 "storing. Onze digitale assistent helpt je meteen; waar nodig kijkt een collega mee.",
        "privacy": "Deel geen wachtwoorden of volledige bankgegevens in de chat.",
        "language": "Taal",
        "transcript": "Gesprek",
        "label": "Je bericht",
        "hint": "Enter verstuurt, Shift+Enter geeft een nieuwe regel.",
        "send": "Versturen",
        "you": "Jij",
        "bot": "Assistent van {brand}",
        "agent": "Medewerker van {brand}",
        "choices": "Kies een antwoord",
        "typing": "{brand} typt een antwoord",
        "waiting": "We werken aan je antwoord. Het verschijnt hier vanzelf, ook als je de pagina later "
                   "opnieuw opent.",
        "sending": "Wordt verstuurd…",
        "failed": "Niet verstuurd.",
        "retry": "Opnieuw proberen",
        "offline": "De verbinding is verbroken. We proberen opnieuw te verbinden…",
        "online": "Je bent weer verbonden.",
        "empty": "Typ eerst een bericht.",
        "too_long": "Je bericht is te lang ({length} tekens). Maak het korter dan {max} tekens en "
                    "probeer het opnieuw.",
        "too_many": "Je stuurt veel berichten kort na elkaar. Wacht {seconds} seconden en probeer het "
                    "dan opnieuw.",
        "session": "Je chatsessie is verlopen. Laad de pagina opnieuw om verder te chatten.",
        "error": "Dat lukte niet: {reason}",
        "history_error": "Je eerdere berichten konden niet worden geladen.",
        "counter": "{count} van {max} tekens",
        "image": "Afbeelding bekijken",
        "noscript": "Zet JavaScript aan om te chatten.",
    },
    "en": {
        "title": "Chat with {brand}",
        "subtitle": "Customer service",
        "intro": "Hi! Ask your question about your energy contract, monthly payment, meter readings or "
                 "an outage here. Our digital assistant helps you right away; a colleague joins in "
                 "when needed.",
        "privacy": "Please don't share passwords or full bank details in the chat.",
        "language": "Language",
        "transcript": "Conversation",
        "label": "Your message",
        "hint": "Press Enter to send, Shift+Enter for a new line.",
        "send": "Send",
        "you": "You",
        "bot": "{brand} assistant",
        "agent": "{brand} colleague",
        "choices": "Choose an answer",
        "typing": "{brand} is typing a reply",
        "waiting": "We're working on your answer. It will appear here, even if you reopen this page "
                   "later.",
        "sending": "Sending…",
        "failed": "Not sent.",
        "retry": "Try again",
        "offline": "The connection was lost. Reconnecting…",
        "online": "You're connected again.",
        "empty": "Please type a message first.",
        "too_long": "Your message is too long ({length} characters). Please keep it under {max} "
                    "characters and try again.",
        "too_many": "You're sending a lot of messages in a short time. Please wait {seconds} seconds "
                    "and try again.",
        "session": "Your chat session has expired. Please reload the page to continue.",
        "error": "That didn't work: {reason}",
        "history_error": "Your earlier messages couldn't be loaded.",
        "counter": "{count} of {max} characters",
        "image": "View image",
        "noscript": "Please turn on JavaScript to chat.",
    },
}


class _Stream:
    """One open event stream: its wake-up, where it stands, and its connection."""

    __slots__ = ("request", "cursor", "wake", "local")

    def __init__(self, request: web.Request, cursor: int) -> None:
        self.request = request
        self.cursor = cursor
        self.wake = asyncio.Event()
        self.local = False  # woken by this process's send()

    def gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()


class WebChatConnector(Connector):
    """The customer chat page, its JSON API and its event stream."""

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        super().__init__(name, options)
        path = str(options.get("path", "/chat"))
        if not re.fullmatch(r"(/[A-Za-z0-9._-]+)+", path):
            raise ConnectorError(f"channels.{name}.path must look like '/chat', not {path!r}")
        self.path = path
        self.brand = str(options.get("brand", "Polder Energie"))
        secure = options.get("cookie_secure")
        self.cookie_secure: Optional[bool] = None if secure is None else bool(secure)
        allowed = options.get("allowed_origins", [])
        if not isinstance(allowed, list) or not all(isinstance(o, str) for o in allowed):
            raise ConnectorError(f"channels.{name}.allowed_origins must be a list of origins")
        self.allowed_origins = {o.rstrip("/").lower() for o in allowed}
        self.frame_ancestors = str(options.get("frame_ancestors", "'none'"))
        try:
            self.session_days = _positive(options.get("session_days", 30), "session_days")
            self.rate_limit_per_minute = int(_positive(options.get("rate_limit_per_minute", 20),
                                                       "rate_limit_per_minute"))
            self.max_text_chars = int(_positive(options.get("max_text_chars", 4000), "max_text_chars"))
            self.poll_interval = _positive(options.get("poll_interval_seconds", 0.5), "poll_interval_seconds")
            self.heartbeat = _positive(options.get("heartbeat_seconds", 15), "heartbeat_seconds")
            self.history_limit = int(_positive(options.get("history_limit", 200), "history_limit"))
            self.max_streams_per_session = int(_positive(options.get("max_streams_per_session", 5),
                                                         "max_streams_per_session"))
            self.capabilities = Capabilities(
                max_text_length=int(_positive(options.get("max_text_length", 4096), "max_text_length")),
                buttons=True,
                rate_limit_per_second=_positive(options.get("rate_limit_per_second", 200),
                                                "rate_limit_per_second"),
            )
        except ValueError as exc:
            raise ConnectorError(f"channels.{name}.{exc}") from None
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(ASSETS)),
            autoescape=True,  # customer and bot text never reaches the template, but still
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._versions = {asset: _digest(STATIC / asset) for asset in ("chat.js", "chat.css")}
        self._texts = {
            lang: {key: value.replace("{brand}", self.brand) for key, value in texts.items()}
            for lang, texts in UI_TEXTS.items()
        }
        self.store: Optional[Store] = None
        self.intake: Optional[IntakePort] = None
        self._listeners: Dict[str, Set[_Stream]] = {}  # sender id → this process's open streams
        self._watcher: Optional["asyncio.Task[None]"] = None
        self._closing = False

    # ------------------------------------------------------------------ routes

    def setup(self, app: web.Application, intake: IntakePort) -> None:
        self.intake = intake
        self.store = intake.store
        router = app.router
        router.add_get(self.path, self.page)
        router.add_get(f"{self.path}/api/history", self.history)
        router.add_post(f"{self.path}/api/messages", self.post_message)
        router.add_get(f"{self.path}/api/events", self.events)
        router.add_static(f"{self.path}/static", str(STATIC))
        app.on_shutdown.append(self._on_shutdown)

    async def page(self, request: web.Request) -> web.Response:
        """The chat page; starts (or renews) the browser's session."""
        token = _token(request) or secrets.token_urlsafe(32)
        lang = preferred_language(request.headers.get("Accept-Language"))
        config = {
            "api": f"{self.path}/api",
            "lang": lang,
            "languages": list(LANGUAGES),
            "maxChars": self.max_text_chars,
            "texts": self._texts,
        }
        html = self._templates.get_template("chat.html").render(
            lang=lang,
            t=self._texts[lang],
            brand=self.brand,
            config=config,
            css_url=f"{self.path}/static/chat.css?v={self._versions['chat.css']}",
            js_url=f"{self.path}/static/chat.js?v={self._versions['chat.js']}",
        )
        response = web.Response(text=html, content_type="text/html")
        response.headers.update(SECURITY_HEADERS)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self'; frame-ancestors {self.frame_ancestors}; base-uri 'none'; form-action 'self'"
        )
        if self.frame_ancestors == "'none'":
            response.headers["X-Frame-Options"] = "DENY"
        response.headers["Vary"] = "Accept-Language, Cookie"
        response.set_cookie(
            COOKIE, token, max_age=int(self.session_days * 86400), path=self.path, httponly=True,
            samesite="Lax", secure=self.cookie_secure if self.cookie_secure is not None else request.secure,
        )
        return response

    async def history(self, request: web.Request) -> web.Response:
        """``{"messages": [...], "cursor": <last event id covered>}``, oldest first."""
        sender = self._session(request)
        messages, cursor = await self._store().run(load_history, self.name, sender, self.history_limit)
        return _json({"messages": messages, "cursor": cursor})

    async def post_message(self, request: web.Request) -> web.Response:
        """Accept one customer message (or recognise a retry of one)."""
        self._check_origin(request)
        if request.content_type != "application/json":
            raise UnsupportedMedia(
                f"send JSON with 'Content-Type: application/json', not {request.content_type!r}")
        sender = self._session(request)
        inbound = self.parse(await request.read(), sender)
        assert self.intake is not None
        existing, retry_after = await self._store().run(
            recent_activity, self.name, sender, inbound.channel_message_id, self.rate_limit_per_minute)
        if existing is not None:
            return _json({"status": "duplicate", "id": existing})
        if retry_after is not None:
            seconds = max(1, int(retry_after + 0.999))
            raise RateLimited(
                f"too many messages: at most {self.rate_limit_per_minute} a minute; "
                f"try again in {seconds} seconds", retry_after=seconds)
        result = await self.intake.accept(inbound)
        return _json({"status": "duplicate" if result.duplicate else "accepted", "id": result.message_id})

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: every outbound message of the session, once it is sent.

        The stream reads the store when woken: by a local :meth:`send` (then it re-reads
        quickly until the delivery's commit shows), by the watcher (which checks the store for
        all of this process's streams at once, every ``poll_interval_seconds``, so deliveries by
        other replicas arrive too), or every ``heartbeat_seconds`` regardless.
        """
        sender = self._session(request)
        cursor = resume_point(request)
        store = self._store()
        if len(self._listeners.get(sender, ())) >= self.max_streams_per_session:
            raise RateLimited(f"too many open chat windows: at most {self.max_streams_per_session}")
        stream = _Stream(request, cursor)
        streams = self._listeners.setdefault(sender, set())
        streams.add(stream)
        self._ensure_watcher()
        loop = asyncio.get_running_loop()
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "X-Accel-Buffering": "no",  # proxies: do not buffer the stream
            **SECURITY_HEADERS,
        })
        try:
            await response.prepare(request)
            await response.write(f"retry: {RETRY_MILLISECONDS}\n\n".encode())
            last_write = loop.time()
            fast_until = 0.0
            while not self._closing and not stream.gone():
                stream.wake.clear()  # before reading: a send() during the read wakes the next wait
                try:
                    found, stream.cursor = await store.run(new_outbound, self.name, sender, stream.cursor)
                except Exception:  # the store is down: keep the stream, try again
                    logger.warning("webchat: reading the store failed; retrying", exc_info=True)
                    found = []
                for event in found:
                    await response.write(sse_event(event))
                now = loop.time()
                if found:
                    last_write, fast_until = now, 0.0
                elif now - last_write >= self.heartbeat:
                    await response.write(b": keep-alive\n\n")
                    last_write = now
                timeout = max(0.05, self.heartbeat - (now - last_write))
                if now < fast_until:
                    timeout = FAST_POLL_SECONDS
                try:
                    await asyncio.wait_for(stream.wake.wait(), timeout=timeout)
                except asyncio.TimeoutError:
                    continue
                if stream.local:
                    # Woken by a local send(): its delivery commits just after send() returns.
                    stream.local = False
                    fast_until = loop.time() + FAST_POLL_WINDOW
        except ConnectionError:
            pass  # the browser went away; it reconnects with Last-Event-ID
        finally:
            streams.discard(stream)
            if not streams and self._listeners.get(sender) is streams:
                del self._listeners[sender]
        return response

    def _ensure_watcher(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch(), name=f"{self.name}-watcher")

    async def _watch(self) -> None:
        """One store query per interval for all open streams: wake those with news (or gone)."""
        while not self._closing:
            await asyncio.sleep(self.poll_interval)
            if not self._listeners:
                continue
            for stream in [s for streams in list(self._listeners.values()) for s in streams]:
                if stream.gone():
                    stream.wake.set()  # let its handler finish now, not at the next heartbeat
            try:
                latest = await self._store().run(latest_sent, self.name, list(self._listeners))
            except Exception:
                logger.warning("webchat: watching the store failed; retrying", exc_info=True)
                continue
            for sender, newest in latest.items():
                for stream in list(self._listeners.get(sender, ())):
                    if newest > stream.cursor:
                        stream.wake.set()

    # ------------------------------------------------------------------ inbound

    def parse(self, body: bytes, sender_id: str) -> InboundMessage:
        """Validate the JSON body into an :class:`InboundMessage` (400/413 with a reason if not)."""
        data = json_body(body)
        if not isinstance(data, dict):
            raise InvalidInput("body must be a JSON object")
        client_id = data.get("client_message_id")
        try:
            client_id = str(uuid.UUID(client_id)) if isinstance(client_id, str) and len(client_id) <= 64 else None
        except ValueError:
            client_id = None
        if client_id is None:
            raise InvalidInput("'client_message_id' must be a UUID generated by the page")
        language = data.get("language")
        if language is not None and language not in LANGUAGES:
            raise InvalidInput(f"'language' must be one of {', '.join(LANGUAGES)}")
        text = data.get("text")
        payload = data.get("payload")
        if text is not None and not isinstance(text, str):
            raise InvalidInput("'text' must be a string")
        text = _clean(text or "", "text").strip()
        if payload is not None:  # a button: the payload goes to the bot, the title to the transcript
            if not isinstance(payload, str) or not payload.strip():
                raise InvalidInput("'payload' must be a non-empty string")
            if len(payload) > MAX_PAYLOAD_CHARS:
                raise InvalidInput(f"'payload' is longer than {MAX_PAYLOAD_CHARS} characters")
            payload = _clean(payload, "payload").strip()
            title = text[:MAX_TITLE_CHARS] or payload[:MAX_TITLE_CHARS]
            kind, text, metadata = "button", payload, {"title": title}
        else:
            if not text:
                raise InvalidInput("'text' must not be empty")
            if len(text) > self.max_text_chars:
                raise TooLarge(
                    f"the message is {len(text)} characters long; the maximum is {self.max_text_chars}",
                    length=len(text), max=self.max_text_chars)
            kind, metadata = "text", {}
        return InboundMessage(
            channel=self.name,
            channel_message_id=f"{sender_id}/{client_id}",
            sender_id=sender_id,
            text=text,
            language_hint=language,
            kind=kind,
            metadata=metadata,
        )

    # ------------------------------------------------------------------ outbound

    async def send(self, recipient: str, payload: Dict[str, Any], idempotency_key: str) -> SendResult:
        """The message is in the store already: wake this process's streams of ``recipient``.

        An outbox item without a logged message (e.g. a broadcast) is logged here first, or
        the page could never show it.
        """
        if not (payload.get("text") or payload.get("buttons") or payload.get("image")):
            raise DeliveryError("the web chat shows text, buttons and images; this message has none",
                                permanent=True)
        message_id = outbound_message_id(idempotency_key)
        if not await self._store().run(log_unlogged, self.name, recipient, payload, idempotency_key, message_id):
            raise DeliveryError(f"no web chat session {recipient!r}", unreachable=True)
        for stream in list(self._listeners.get(recipient, ())):
            stream.local = True
            stream.wake.set()
        return SendResult(message_id)

    async def start(self) -> None:
        self._closing = False

    async def stop(self) -> None:
        await self._on_shutdown(None)
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None

    async def _on_shutdown(self, _app: Optional[web.Application]) -> None:
        """End the event streams, so shutting down doesn't wait for them (browsers reconnect)."""
        self._closing = True
        for streams in list(self._listeners.values()):
            for stream in list(streams):
                stream.wake.set()

    # ------------------------------------------------------------------ helpers

    def _store(self) -> Store:
        if self.store is None:
            raise ConnectorError(f"channels.{self.name}: setup() was not called")
        return self.store

    def _session(self, request: web.Request) -> str:
        token = _token(request)
        if token is None:
            raise NotAllowed(f"no chat session: open {self.path} first (cookies must be enabled)")
        return sender_id_of(token)

    def _check_origin(self, request: web.Request) -> None:
        """Refuse a state change from another site (the JSON-only rule is the other half)."""
        origin = request.headers.get("Origin")
        if origin is not None:
            if origin.rstrip("/").lower() in self.allowed_origins:
                return
            if urlsplit(origin).netloc.lower() != (request.host or "").lower():
                raise NotAllowed(f"cross-origin request refused: Origin {origin[:100]!r} is not this site")
        elif request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
            raise NotAllowed("cross-origin request refused")


# ---------------------------------------------------------------- units of work


def _session_messages(channel: str, sender_id: str) -> Any:
    return (
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
        .where(ChannelIdentity.channel == channel, ChannelIdentity.external_id == sender_id)
    )


def load_history(session: Session, channel: str, sender_id: str, limit: int) -> Tuple[List[Dict[str, Any]], int]:
    """The newest ``limit`` messages of the session, oldest first, and the event cursor.

    Outbound messages appear once sent; a queued one (and every outbound message after it,
    to keep the order) is left to the event stream, which starts after the cursor.
    """
    rows = session.execute(
        _session_messages(channel, sender_id).order_by(Message.id.desc()).limit(limit + 1)
    ).scalars().all()
    truncated = len(rows) > limit
    rows = list(reversed(rows[:limit]))
    cursor = rows[0].id - 1 if truncated and rows else 0
    shown: List[Dict[str, Any]] = []
    waiting = False
    for message in rows:
        if message.direction == Direction.inbound:
            shown.append(public_message(message))
            continue
        if waiting:
            continue
        if message.status == "sent":
            shown.append(public_message(message))
            cursor = message.id
        elif message.status == "queued":
            waiting = True
        else:  # failed: never shown
            cursor = message.id
    return shown, cursor


def new_outbound(session: Session, channel: str, sender_id: str, after: int,
                 limit: int = 100) -> Tuple[List[Dict[str, Any]], int]:
    """Outbound messages sent after event id ``after``, in order, and the new cursor.

    Stops at a message still queued, so a later one never overtakes it.
    """
    rows = session.execute(
        _session_messages(channel, sender_id)
        .where(Message.direction == Direction.outbound, Message.id > after)
        .order_by(Message.id)
        .limit(limit)
    ).scalars().all()
    found: List[Dict[str, Any]] = []
    cursor = after
    for message in rows:
        if message.status == "sent":
            found.append(public_message(message))
        elif message.status == "queued":
            break
        cursor = message.id
    return found, cursor


def latest_sent(session: Session, channel: str, sender_ids: List[str]) -> Dict[str, int]:
    """The newest sent outbound message id per session (for the watcher)."""
    latest: Dict[str, int] = {}
    for start in range(0, len(sender_ids), 500):
        rows = session.execute(
            select(ChannelIdentity.external_id, func.max(Message.id))
            .join(Conversation, Conversation.identity_id == ChannelIdentity.id)
            .join(Message, Message.conversation_id == Conversation.id)
            .where(ChannelIdentity.channel == channel,
                   ChannelIdentity.external_id.in_(sender_ids[start:start + 500]),
                   Message.direction == Direction.outbound, Message.status == "sent")
            .group_by(ChannelIdentity.external_id)
        ).all()
        latest.update({sender: newest for sender, newest in rows})
    return latest


def recent_activity(session: Session, channel: str, sender_id: str, channel_message_id: str,
                    per_minute: int) -> Tuple[Optional[int], Optional[float]]:
    """(id of this message if already stored, seconds to wait if the session is over its rate)."""
    existing = session.execute(
        select(Message.id).where(
            Message.channel == channel,
            Message.direction == Direction.inbound,
            Message.channel_message_id == channel_message_id,
        )
    ).scalar_one_or_none()
    if existing is not None:
        return existing, None
    now = utcnow()
    recent = session.execute(
        select(Message.created_at)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
        .where(ChannelIdentity.channel == channel, ChannelIdentity.external_id == sender_id,
               Message.direction == Direction.inbound, Message.created_at > now - RATE_WINDOW)
        .order_by(Message.created_at.desc())
        .limit(per_minute)
    ).scalars().all()
    if len(recent) < per_minute:
        return None, None
    return None, max(0.0, (recent[-1] + RATE_WINDOW - now).total_seconds())


def log_unlogged(session: Session, channel: str, recipient: str, payload: Dict[str, Any], key: str,
                 channel_message_id: str) -> bool:
    """Make sure the delivered message is in the session's transcript; False if no such session."""
    item = session.execute(select(OutboxItem).where(OutboxItem.idempotency_key == key)).scalar_one_or_none()
    if item is not None and item.message_id is not None:
        return True  # the usual case: enqueue logged it, record_success marks it sent
    identity = session.execute(
        select(ChannelIdentity).where(ChannelIdentity.channel == channel, ChannelIdentity.external_id == recipient)
    ).scalar_one_or_none()
    if identity is None:
        return False
    already = session.execute(
        select(Message.id).where(Message.channel == channel, Message.direction == Direction.outbound,
                                 Message.channel_message_id == channel_message_id)
    ).scalar_one_or_none()
    if already is not None:
        return True
    conversation = session.execute(
        select(Conversation).where(Conversation.identity_id == identity.id)
        .order_by(Conversation.closed_at.isnot(None), Conversation.id.desc()).limit(1)
    ).scalar_one_or_none()
    if conversation is None:
        return False
    now = utcnow()
    session.add(Message(
        conversation_id=conversation.id, direction=Direction.outbound, channel=channel,
        channel_message_id=channel_message_id, sender="bot",
        text=payload.get("text"), payload=dict(payload), status="sent", created_at=now, processed_at=now,
    ))
    return True


# ---------------------------------------------------------------- helpers


def public_message(message: Message) -> Dict[str, Any]:
    """What the page sees of a message: no internal ids, agents or NLU."""
    payload = message.payload if isinstance(message.payload, dict) else {}
    created = message.created_at.isoformat() if message.created_at else None
    if message.direction == Direction.inbound:
        kind = payload.get("kind", "text")
        title = (payload.get("metadata") or {}).get("title") if kind == "button" else None
        return {"id": message.id, "direction": "in", "from": "customer", "kind": kind,
                "text": title if isinstance(title, str) else (message.text or ""), "created_at": created}
    buttons = [
        {"title": b["title"], "payload": b["payload"]}
        for b in payload.get("buttons") or []
        if isinstance(b, dict) and isinstance(b.get("title"), str) and isinstance(b.get("payload"), str)
    ]
    shown: Dict[str, Any] = {
        "id": message.id, "direction": "out",
        "from": "agent" if (message.sender or "").startswith("agent") else "bot",
        "text": message.text if message.text is not None else (payload.get("text") or ""),
        "buttons": buttons, "created_at": created,
    }
    image = payload.get("image")
    if isinstance(image, str) and image.startswith(("https://", "http://")):  # shown as a link
        shown["image"] = image
    return shown


def sse_event(event: Dict[str, Any]) -> bytes:
    """One ``message`` event; its id is the message id (the browser's ``Last-Event-ID``)."""
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event['id']}\ndata: {data}\n\n".encode()


def resume_point(request: web.Request) -> int:
    """The last event the browser has: ``Last-Event-ID`` (reconnects) or ``?after=`` (first open)."""
    cursor = 0
    given = (("after", request.query.get("after")), ("Last-Event-ID", request.headers.get("Last-Event-ID")))
    for where, value in given:
        if value is None or value == "":
            continue
        if not CURSOR_PATTERN.match(value):
            raise InvalidInput(f"{where} must be a message id (digits), not {value[:40]!r}")
        cursor = max(cursor, int(value))
    return cursor


def sender_id_of(token: str) -> str:
    """The session's sender id: not the secret token itself."""
    return hashlib.sha256(f"webcare-chat:{token}".encode()).hexdigest()[:32]


def outbound_message_id(idempotency_key: str) -> str:
    """A channel message id that is unique per outbox item and fits the store."""
    if len(idempotency_key) <= 190:
        return f"out:{idempotency_key}"
    return "out:" + hashlib.sha256(idempotency_key.encode()).hexdigest()


def preferred_language(accept_language: Optional[str]) -> str:
    """``nl`` or ``en`` from an ``Accept-Language`` header (Dutch when neither is asked for)."""
    best, best_q = DEFAULT_LANGUAGE, -1.0
    for part in (accept_language or "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGUAGES:
            continue
        q = 1.0
        match = re.search(r"q\s*=\s*([0-9.]+)", params)
        if match:
            try:
                q = float(match.group(1))
            except ValueError:
                q = 0.0
        if q > best_q:
            best, best_q = primary, q
    return best


def _token(request: web.Request) -> Optional[str]:
    token = request.cookies.get(COOKIE)
    return token if token and TOKEN_PATTERN.match(token) else None


def _clean(value: str, field: str) -> str:
    """Drop control characters (NUL breaks PostgreSQL) and refuse text that isn't Unicode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"'{field}' is not valid Unicode text") from None
    return CONTROL_CHARS.sub("", value)


def _json(data: Dict[str, Any], status: int = 200) -> web.Response:
    response = web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))
    response.headers.update(SECURITY_HEADERS)
    return response


def _positive(value: Any, key: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, not {value!r}") from None
    if not number > 0:
        raise ValueError(f"{key} must be more than 0, not {value!r}")
    return number


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
