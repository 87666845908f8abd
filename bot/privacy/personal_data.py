"""Personal data in a text meant for everyone: refused in public replies unless overridden.

A public reply (a comment under the company's post) is read by everyone, so it must never
carry the customer's personal data. :func:`find` spots what a Dutch webcare reply most often
leaks: an e-mail address, a phone number (Dutch and international), an IBAN (its check digits
verified, so an order number is not taken for one), a postcode with a house number, and a
customer number (``klantnummer 1234567``, or the configured pattern). It is a guard against
slips, not a guarantee: an agent who means it (a shop's public phone number) overrides it
knowingly, and that is audited.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Pattern

from bot.errors import InvalidInput

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# +31 6 12345678, 0031..., 06-12345678, 020 123 4567, +44 20 7946 0958: 9+ digits in one number
PHONE = re.compile(r"(?<![\w+])(?:\+|00|0)\d[\d \-()]{6,}\d(?!\w)")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
POSTCODE_HOUSE = re.compile(r"\b[1-9]\d{3} ?(?!SA|SD|SS)[A-Z]{2}\b[ ,]*\d{1,5}(?: ?[a-zA-Z])?\b"
                            r"|\b[A-Za-z][A-Za-z .'-]+ \d{1,5}[a-zA-Z]?,? [1-9]\d{3} ?[A-Z]{2}\b")
CUSTOMER_NUMBER = re.compile(r"\b(?:klant|customer|contract|client)[\s-]*(?:nummer|number|nr\.?|no\.?)\s*:?\s*"
                             r"[A-Z0-9-]{4,}\b", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    """One piece of personal data in a text."""

    kind: str  # email | phone | iban | address | customer_number
    text: str

    def masked(self) -> str:
        shown = self.text[:2]
        return f"{self.kind} ({shown}{'•' * max(3, len(self.text) - 2)})"


def _iban_ok(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    digits = "".join(str(int(c, 36)) for c in rearranged)
    return int(digits) % 97 == 1


def find(text: str, customer_number: Optional[Pattern[str]] = None) -> List[Finding]:
    """The personal data found in ``text``, in order of appearance."""
    found: List[tuple] = []
    for match in EMAIL.finditer(text):
        found.append((match.start(), Finding("email", match.group())))
    for match in IBAN.finditer(text):
        if _iban_ok(match.group()):
            found.append((match.start(), Finding("iban", match.group())))
    taken = [(start, start + len(f.text)) for start, f in found]
    for match in PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if len(digits) >= 9 and not any(a <= match.start() < b for a, b in taken):
            found.append((match.start(), Finding("phone", match.group().strip())))
    for match in POSTCODE_HOUSE.finditer(text):
        found.append((match.start(), Finding("address", match.group())))
    for pattern in (CUSTOMER_NUMBER, customer_number):
        if pattern is not None:
            for match in pattern.finditer(text):
                found.append((match.start(), Finding("customer_number", match.group())))
    return [finding for _, finding in sorted(found, key=lambda pair: pair[0])]


class PersonalDataInPublic(InvalidInput):
    """A public reply holds personal data; ``details["findings"]`` says which (masked)."""

    code = "personal_data_in_public"


def refuse_in_public(text: str, override: bool) -> List[Finding]:
    """Raise :class:`PersonalDataInPublic` when ``text`` holds personal data, unless ``override``
    (then the findings are returned, for the audit log)."""
    findings = find(text)
    if findings and not override:
        kinds = ", ".join(dict.fromkeys(f.kind.replace("_", " ") for f in findings))
        raise PersonalDataInPublic(
            f"this reply is public (everyone can read it) and contains personal data: {kinds}. "
            "Move the conversation to private, or confirm that you mean to publish it",
            findings=[f.masked() for f in findings])
    return findings
