"""Personal data in public replies: what is found, and what is not taken for it."""
from __future__ import annotations

import pytest

from bot.privacy.personal_data import PersonalDataInPublic, find, refuse_in_public


@pytest.mark.parametrize("text, kinds", [
    ("Mail ons op sanne.devries@example.nl", ["email"]),
    ("Bel 06-12345678 of +31 20 123 4567", ["phone", "phone"]),
    ("Ik zie 0031612345678 in je profiel", ["phone"]),
    ("Je IBAN NL91 ABNA 0417 1643 00 klopt", ["iban"]),
    ("NL91ABNA0417164300", ["iban"]),
    ("We komen langs op Damrak 1, 1012 LG Amsterdam", ["address"]),
    ("Postcode 3511 AB 7 klopt", ["address"]),
    ("Uw klantnummer 1234567 is bekend", ["customer_number"]),
    ("customer number: AB-99812", ["customer_number"]),
])
def test_found(text: str, kinds: list) -> None:
    assert [f.kind for f in find(text)] == kinds


@pytest.mark.parametrize("text", [
    "We zijn open van 8 tot 20 uur",
    "De storing is om 14:30 op 2026-12-04 opgelost",
    "Order 123456789012 is onderweg",  # a long number that is no phone number
    "NL12ABCD0123456789",  # IBAN-shaped, but its check digits are wrong
    "We sturen je een DM",
])
def test_not_taken_for_personal_data(text: str) -> None:
    assert find(text) == []


def test_refused_with_masked_findings_unless_overridden() -> None:
    with pytest.raises(PersonalDataInPublic) as refused:
        refuse_in_public("mail naar sanne@example.nl", override=False)
    assert refused.value.code == "personal_data_in_public"
    assert "email" in refused.value.reason and "sanne@example.nl" not in str(refused.value.details)
    assert [f.kind for f in refuse_in_public("mail naar sanne@example.nl", override=True)] == ["email"]
    assert refuse_in_public("Vervelend, we kijken mee!", override=False) == []
