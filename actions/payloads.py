"""The structured custom payloads actions send to the webcare service."""
from __future__ import annotations

from typing import Any, Dict

WEBCARE_KEY = "webcare"


def handover_payload(reason: str) -> Dict[str, Any]:
    """Ask the service to hand the conversation over to a human agent."""
    return {WEBCARE_KEY: {"handover": {"reason": reason}}}
