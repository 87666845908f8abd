"""The structured custom payloads actions send to the webcare service."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

WEBCARE_KEY = "webcare"


def handover_payload(reason: str, details: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Ask the service to hand the conversation over to a human agent.

    ``details`` (optional) tells the agent why, e.g. the matched words of a profanity
    escalation; without it the payload is exactly ``{"webcare": {"handover": {"reason": ...}}}``.
    """
    handover: Dict[str, Any] = {"reason": reason}
    if details:
        handover["details"] = dict(details)
    return {WEBCARE_KEY: {"handover": handover}}


def identify_payload(
    customer_number: Optional[str] = None,
    postcode: Optional[str] = None,
    house_number: Optional[str] = None,
) -> Dict[str, Any]:
    """Ask the service to look the customer up in the CRM and link this channel identity.

    Either ``customer_number``, or ``postcode`` + ``house_number`` (already normalised:
    "1234AB", "12A").
    """
    if customer_number:
        identify: Dict[str, str] = {"customer_number": customer_number}
    elif postcode and house_number:
        identify = {"postcode": postcode, "house_number": house_number}
    else:
        raise ValueError("identify needs a customer number, or a postcode and a house number")
    return {WEBCARE_KEY: {"identify": identify}}
