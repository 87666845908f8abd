"""The ``webhook`` report sink: POST the digest as JSON, signed with HMAC-SHA256.

Options: ``url`` (required), ``secret_env`` (the environment variable holding the signing
secret; the body's signature goes in ``X-Webcare-Signature: sha256=<hex>``, as in
``connectors/signing.py``), ``timeout_seconds`` (10), ``retries`` (3: attempts after the
first, on connection errors, timeouts, 429 and 5xx), ``backoff_seconds`` (1, doubled each time).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any, Dict, Mapping, Optional

import aiohttp

from bot.reporting.sinks.base import ReportSink, ReportSinkError
from connectors.signing import SIGNATURE_HEADER, sign

logger = logging.getLogger(__name__)

EVENT_HEADER = "X-Webcare-Event"
OPTIONS = {"url", "secret_env", "timeout_seconds", "retries", "backoff_seconds"}


class WebhookSink(ReportSink):
    type_name = "webhook"

    def __init__(self, url: str, secret: Optional[str] = None, timeout_seconds: float = 10.0, retries: int = 3,
                 backoff_seconds: float = 1.0) -> None:
        self.url, self.secret = url, secret
        self.timeout_seconds, self.retries, self.backoff_seconds = timeout_seconds, retries, backoff_seconds

    @classmethod
    def from_config(cls, options: Mapping[str, Any], environ: Optional[Mapping[str, str]] = None) -> "WebhookSink":
        environ = os.environ if environ is None else environ
        unknown = set(options) - OPTIONS
        if unknown:
            raise ReportSinkError(f"webhook sink: unknown option(s) {sorted(unknown)}; known: {sorted(OPTIONS)}")
        url = options.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ReportSinkError(f"webhook sink: 'url' must be an http(s) URL, not {url!r}")
        secret = None
        if options.get("secret_env"):
            secret = environ.get(str(options["secret_env"]))
            if not secret:
                raise ReportSinkError(f"webhook sink: environment variable {options['secret_env']} is not set")
        try:
            return cls(url, secret, float(options.get("timeout_seconds", 10)), int(options.get("retries", 3)),
                       float(options.get("backoff_seconds", 1)))
        except (TypeError, ValueError) as exc:
            raise ReportSinkError(f"webhook sink: timeout_seconds, retries, backoff_seconds must be numbers: {exc}")

    async def deliver(self, digest: Dict[str, Any]) -> None:
        body = json.dumps(digest, ensure_ascii=False, sort_keys=True).encode("utf-8")
        headers = {"Content-Type": "application/json", EVENT_HEADER: "report.digest"}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        last = "no attempt"
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for attempt in range(self.retries + 1):
                if attempt:
                    await asyncio.sleep(self.backoff_seconds * 2 ** (attempt - 1))
                try:
                    async with session.post(self.url, data=body, headers=headers) as response:
                        if response.status < 300:
                            return
                        last = f"HTTP {response.status}"
                        if response.status != 429 and response.status < 500:
                            break  # the receiver refuses it: retrying will not help
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    last = type(exc).__name__
                logger.warning("report webhook %s: attempt %d failed (%s)", self.url, attempt + 1, last)
        raise ReportSinkError(f"webhook sink {self.url}: delivery failed ({last})")

    def describe(self) -> str:
        return f"webhook:{self.url}"
