"""The {"webcare": …} payload protocol: what actions build is what the service reads."""
from __future__ import annotations

import pytest

from bot.protocol import Handover, Instructions, handover_payload, identify_payload, read_instructions


def test_a_handover_built_by_an_action_is_read_by_the_service() -> None:
    messages = [{"text": "Ik verbind je door."}, {"custom": handover_payload("profanity", {"words": ["kut"]})}]
    assert read_instructions(messages) == Instructions(handover=Handover("profanity", {"words": ["kut"]}))
    assert handover_payload("customer_asked") == {"webcare": {"handover": {"reason": "customer_asked"}}}


def test_identify_by_number_or_by_address() -> None:
    assert read_instructions([{"custom": identify_payload(customer_number="123456")}]).identify == {
        "customer_number": "123456"}
    assert read_instructions([{"custom": identify_payload(postcode="1234AB", house_number="12A")}]).identify == {
        "postcode": "1234AB", "house_number": "12A"}
    with pytest.raises(ValueError, match="customer number, or a postcode"):
        identify_payload(postcode="1234AB")


@pytest.mark.parametrize("custom", [None, "webcare", {"webcare": "handover"}, {"other": {"handover": {}}},
                                    {"webcare": {"identify": "123"}}])
def test_anything_else_is_no_instruction(custom: object) -> None:
    assert read_instructions([{"text": "hoi", "custom": custom}]) == Instructions()


def test_a_malformed_handover_still_hands_over() -> None:
    assert read_instructions([{"custom": {"webcare": {"handover": "yes"}}}]).handover == Handover("handover", {})
