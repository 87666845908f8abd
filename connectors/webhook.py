"""Signed webhook connector for any other platform (WhatsApp Business, Messenger, X bridges).

Inbound: ``POST /webhooks/<name>`` with a JSON body (schema in README, "Signed webhook") and
``X-Webcare-Signature: sha256=<hex HMAC-SHA256 of the raw body>``. Outbound: a signed JSON
``POST`` to ``callback_url``; 2xx = delivered, 429 + ``Retry-After`` = wait, other 4xx =
permanent failure, 410 = recipient gone, 5xx / network errors = retried with backoff.

Options: ``secret_env`` (name of the environment variable holding the shared secret,
default ``WEBCARE_WEBHOOK_SECRET``), ``callback_url``, ``rate_limit_per_second``,
``max_text_length``, ``timeout_seconds``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any, Dict, Mapping, Optional

import aiohttp
from aiohttp import web

from bot.errors import InvalidInput, NotAuthenticated
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
from connectors.signing import SIGNATURE_HEADER, sign, verify

logger = logging.getLogger(__name__)

MAX_ID_LENGTH = 200


class SignedWebhookConnector(Connector):
    """JSON in and out, both signed with a shared HMAC-SHA256 secret."""

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        super().__init__(name, options)
        secret_env = str(options.get("secret_env", "WEBCARE_WEBHOOK_SECRET"))
        secret = os.environ.get(secret_env)
        if not secret:
            raise ConnectorError(f"channels.{name}: set the shared secret in ${secret_env}")
        self.secret = secret
        self.callback_url: Optional[str] = options.get("callback_url")
        self.timeout = float(options.get("timeout_seconds", 10))
        self.capabilities = Capabilities(
            max_text_length=int(options.get("max_text_length", 4096)),
            buttons=True,
            rate_limit_per_second=float(options.get("rate_limit_per_second", 30)),
        )
        self._session: Optional[aiohttp.ClientSession] = None

    def setup(self, app: web.Application, intake: IntakePort) -> None:
        async def receive(request: web.Request) -> web.Response:
            body = await request.read()
            if not verify(self.secret, body, request.headers.get(SIGNATURE_HEADER)):
                raise NotAuthenticated(f"missing or wrong {SIGNATURE_HEADER} signature")
            message = self.parse(body)
            result = await intake.accept(message)
            return web.json_response(
                {"status": "duplicate" if result.duplicate else "accepted", "message_id": result.message_id}
            )

        app.router.add_post(f"/webhooks/{self.name}", receive)

    def parse(self, body: bytes) -> InboundMessage:
        """Validate the JSON body into an :class:`InboundMessage` (400 with a reason if not)."""
        data = json_body(body)
        if not isinstance(data, dict):
            raise InvalidInput("body must be a JSON object")
        message_id = data.get("message_id")
        sender = data.get("sender")
        text = data.get("text")
        if not _identifier(message_id):
            raise InvalidInput(f"'message_id' must be a non-empty string of at most {MAX_ID_LENGTH} characters")
        if not isinstance(sender, dict) or not _identifier(sender.get("id")):
            raise InvalidInput(f"'sender.id' must be a non-empty string of at most {MAX_ID_LENGTH} characters")
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("'text' must be a non-empty string")
        metadata = data.get("metadata", {})
        if not isinstance(metadata, dict):
            raise InvalidInput("'metadata' must be an object")
        return InboundMessage(
            channel=self.name,
            channel_message_id=str(message_id),
            sender_id=str(sender["id"]),
            text=text,
            sender_name=sender.get("name") if isinstance(sender.get("name"), str) else None,
            language_hint=sender.get("language") if isinstance(sender.get("language"), str) else None,
            kind="button" if data.get("kind") == "button" else "text",
            metadata=metadata,
        )

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, recipient: str, payload: Dict[str, Any], idempotency_key: str) -> SendResult:
        if not self.callback_url:
            raise DeliveryError(f"channels.{self.name}.callback_url is not configured", permanent=True)
        if self._session is None:
            await self.start()
        assert self._session is not None
        body = json.dumps(
            {"idempotency_key": idempotency_key, "recipient": recipient, **payload}, ensure_ascii=False
        ).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self.secret, body)}
        try:
            async with self._session.post(self.callback_url, data=body, headers=headers) as response:
                text = await response.text()
                if 200 <= response.status < 300:
                    try:
                        reply = json.loads(text) if text else {}
                    except json.JSONDecodeError:
                        reply = {}
                    message_id = reply.get("message_id") if isinstance(reply, dict) else None
                    return SendResult(str(message_id) if message_id is not None else None)
                reason = f"callback answered {response.status}: {text[:200]}"
                if response.status == 429:
                    raise DeliveryError(reason, retry_after=_retry_after(response.headers.get("Retry-After")))
                if response.status == 410:
                    raise DeliveryError(reason, unreachable=True)
                if 400 <= response.status < 500:
                    raise DeliveryError(reason, permanent=True)
                raise DeliveryError(reason)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise DeliveryError(f"callback unreachable: {type(exc).__name__}: {exc}") from exc


def _identifier(value: Any) -> bool:
    """A channel id: a non-empty string (or integer, not boolean) that fits the store."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return False
    return 0 < len(str(value).strip()) <= MAX_ID_LENGTH


def _retry_after(value: Optional[str]) -> float:
    try:
        return max(0.0, float(value)) if value else 1.0
    except ValueError:
        return 1.0
