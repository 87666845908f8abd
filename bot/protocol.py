"""The ``{"webcare": …}`` payload protocol between the action server and the service.

Actions decide ("hand this over", "look this customer up"); they tell the service in a custom
payload of one of the bot's messages, built here. The service reads the instructions of a
reply with :func:`read_instructions`. Both sides import this one module; it imports nothing of
webcare's (the action server never loads the service).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Mapping, Optional

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


@dataclass(frozen=True)
class Handover:
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Instructions:
    """What the actions asked of the service in one reply (a malformed part is ignored)."""

    handover: Optional[Handover] = None
    identify: Optional[Mapping[str, Any]] = None  # customer_number, or postcode + house_number


def read_instructions(messages: Iterable[Mapping[str, Any]]) -> Instructions:
    """The instructions in the ``custom`` payloads of a reply's messages (later ones win)."""
    merged: Dict[str, Any] = {}
    for message in messages:
        custom = message.get("custom")
        if isinstance(custom, dict) and isinstance(custom.get(WEBCARE_KEY), dict):
            merged.update(custom[WEBCARE_KEY])
    handover = None
    if "handover" in merged and merged["handover"] is not None:
        raw = merged["handover"] if isinstance(merged["handover"], dict) else {}
        details = raw.get("details") if isinstance(raw.get("details"), dict) else {}
        handover = Handover(str(raw.get("reason") or "handover"), dict(details))
    identify = merged.get("identify") if isinstance(merged.get("identify"), dict) else None
    return Instructions(handover, identify)
