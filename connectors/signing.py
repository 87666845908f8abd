"""HMAC-SHA256 signatures of webhook bodies (``X-Webcare-Signature: sha256=<hex>``)."""
from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Webcare-Signature"


def sign(secret: str, body: bytes) -> str:
    """The header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the right signature of ``body`` (constant-time)."""
    return bool(header) and hmac.compare_digest(sign(secret, body), header.strip())
