"""What every Meta webhook shares: the verification handshake, the signature, the batch.

``GET /webhooks/<name>``: Meta's verification request (``hub.mode=subscribe``,
``hub.verify_token``, ``hub.challenge``): the challenge echoed when the token is ours, 403
when it is not, 400 when it is not such a request.

``POST /webhooks/<name>``: the body must carry ``X-Hub-Signature-256: sha256=<hex>``, the
HMAC-SHA256 of the raw body with the app secret (missing: 401, wrong: 403, nothing stored).
Then the envelope (``{"object": ..., "entry": [...]}``; not JSON or no entry list: 400). One
POST may carry many entries, each many changes or messaging events: every event the
connector turns into a customer message or a delivery receipt is committed before the 200
(idempotent on Meta's own ids, so a redelivered POST stores nothing twice); an event it does
not act on, a malformed one inside a valid envelope, or one intake refuses, is logged and skipped, so that one bad
event neither blocks the others nor makes Meta redeliver the batch for ever. Another object
than the connector's (a Page webhook sent to the WhatsApp URL): 200, ignored and logged.
"""
from __future__ import annotations

import abc
import asyncio
import hashlib
import hmac
import logging
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

from aiohttp import web

from bot.errors import InvalidInput, NotAllowed, NotAuthenticated
from connectors.base import (
    Connector,
    ConnectorError,
    DeliveryUpdate,
    Ignored,
    InboundMessage,
    IntakePort,
    json_body,
)
from connectors.meta.graph import GraphClient


logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"

Event = Union[InboundMessage, DeliveryUpdate, Ignored]


def sign(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends with ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(app_secret: str, body: bytes, header: Optional[str]) -> bool:
    """Whether ``header`` is Meta's signature of ``body`` (constant-time)."""
    return bool(header) and hmac.compare_digest(sign(app_secret, body), header.strip())


def secret_from_env(name: str, options: Mapping[str, Any], key: str, default_env: str, what: str) -> tuple:
    """``(value, env name)`` of a required secret whose environment variable ``options[key]`` names."""
    env = str(options.get(key, default_env))
    value = os.environ.get(env, "").strip()
    if not value:
        raise ConnectorError(f"channels.{name}: set {what} in ${env}")
    return value, env


class MetaConnector(Connector):
    """Base of the Meta connectors: handshake, signature, batch; subclasses turn an entry into events.

    Options (secrets by environment variable name only): ``verify_token_env``,
    ``app_secret_env``, ``access_token_env`` (defaults ``WEBCARE_<PREFIX>_VERIFY_TOKEN``,
    ``..._APP_SECRET``, ``..._ACCESS_TOKEN``), ``graph_base_url`` (default
    https://graph.facebook.com), ``graph_version`` (default v23.0), ``timeout_seconds``.
    """

    webhook_object: str = ""  # "whatsapp_business_account" | "page" | "instagram"
    env_prefix: str = ""  # WHATSAPP | MESSENGER | INSTAGRAM

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        super().__init__(name, options)
        prefix = f"WEBCARE_{self.env_prefix}"
        self.verify_token, self.verify_token_env = secret_from_env(
            name, options, "verify_token_env", f"{prefix}_VERIFY_TOKEN", "the webhook verify token you chose in Meta's dashboard")
        self.app_secret, self.app_secret_env = secret_from_env(
            name, options, "app_secret_env", f"{prefix}_APP_SECRET", "the Meta app secret (App settings > Basic)")
        token, token_env = secret_from_env(
            name, options, "access_token_env", f"{prefix}_ACCESS_TOKEN", "the access token (a system user's)")
        self.graph = GraphClient(name, options, token, token_env)
        self._intake: Optional[IntakePort] = None

    # ------------------------------------------------------------ lifecycle

    def setup(self, app: web.Application, intake: IntakePort) -> None:
        self._intake = intake
        app.router.add_get(f"/webhooks/{self.name}", self._verify)
        app.router.add_post(f"/webhooks/{self.name}", self._receive)

    async def start(self) -> None:
        await self.graph.open()

    async def stop(self) -> None:
        await self.graph.close()

    # ------------------------------------------------------------ inbound

    async def _verify(self, request: web.Request) -> web.Response:
        mode = request.query.get("hub.mode")
        token = request.query.get("hub.verify_token")
        challenge = request.query.get("hub.challenge")
        if mode != "subscribe" or token is None or challenge is None:
            raise InvalidInput("not a webhook verification request: needs hub.mode=subscribe, "
                               "hub.verify_token and hub.challenge")
        if not hmac.compare_digest(token.encode(), self.verify_token.encode()):
            raise NotAllowed(f"hub.verify_token is not the one in ${self.verify_token_env}")
        return web.Response(text=challenge)

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        header = request.headers.get(SIGNATURE_HEADER)
        if not header:
            raise NotAuthenticated(f"missing {SIGNATURE_HEADER} header")
        if not signature_ok(self.app_secret, body, header):
            raise NotAllowed(f"wrong {SIGNATURE_HEADER}: not signed with the app secret in ${self.app_secret_env}")
        return web.json_response(await self.handle(body))

    async def handle(self, body: bytes) -> Dict[str, Any]:
        """Parse a verified POST body and commit what it holds; the outcome, for the 200's body."""
        assert self._intake is not None, "setup() was not called"
        entries = self.envelope(body)
        if entries is None:
            return {"status": "ignored", "reason": "another object than " + self.webhook_object}
        events: List[Event] = []
        for entry in entries:
            try:
                events.extend(self.events(entry))
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                events.append(Ignored(f"malformed entry: {type(exc).__name__}: {exc}"))
        outcome: Dict[str, Any] = {"status": "ok", "accepted": 0, "duplicates": 0, "receipts": 0, "ignored": []}
        messages = [e for e in events if isinstance(e, InboundMessage)]
        results = await asyncio.gather(*(self._intake.accept(m) for m in messages), return_exceptions=True)
        for message, result in zip(messages, results):
            if isinstance(result, InvalidInput):  # e.g. text no store can hold: this one only
                events.append(Ignored(f"message {message.channel_message_id} refused: {result.reason}"))
            elif isinstance(result, BaseException):
                raise result  # the store is down: a 5xx, and Meta delivers the batch again
            else:
                outcome["duplicates" if result.duplicate else "accepted"] += 1
        for event in events:
            if isinstance(event, DeliveryUpdate):
                outcome["receipts"] += await self._intake.record_delivery(event)
            elif isinstance(event, Ignored):
                logger.info("%s: webhook event ignored: %s", self.name, event.reason)
                outcome["ignored"].append(event.reason)
        return outcome

    def envelope(self, body: bytes) -> Optional[List[Dict[str, Any]]]:
        """The entries of the body; None when it is another object's webhook; 400 when malformed."""
        data = json_body(body)
        if not isinstance(data, dict) or not isinstance(data.get("object"), str):
            raise InvalidInput("body must be a JSON object with an 'object' field (a Meta webhook)")
        if data["object"] != self.webhook_object:
            logger.info("%s: webhook for object %r ignored (this channel takes %r)", self.name, data["object"],
                        self.webhook_object)
            return None
        entries = data.get("entry")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise InvalidInput("'entry' must be a list of objects")
        return entries

    @abc.abstractmethod
    def events(self, entry: Dict[str, Any]) -> Iterable[Event]:
        """The customer messages, receipts and ignored events of one ``entry``."""


def text_field(value: Any, where: str) -> Optional[str]:
    """A string field of a payload, or None; ValueError (an ignored event) when it is another type."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string")
    return value


def id_field(value: Any, where: str) -> str:
    """A required id: Meta sends strings (numbers are taken as their digits)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise ValueError(f"{where} must be a non-empty id")
    return str(value)
