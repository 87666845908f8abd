"""The messaging window rules the dispatcher applies before each send (pure)."""
from __future__ import annotations

import datetime as dt

from bot.pipeline import messaging_window as mw
from connectors.base import MessagingWindow, SendContext, TemplateSpec

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.timezone.utc)
WHATSAPP = MessagingWindow(free_form_hours=24)
MESSENGER = MessagingWindow(free_form_hours=24, human_agent_hours=168)
FIX = TemplateSpec("storing_opgelost", (("nl", "nl"), ("en", "en_US")), ("customer_name", "text"))


def decide(window, hours_ago, source="bot", purpose="answer", template=None, visibility="private", payload=None,
           language="nl"):
    last = None if hours_ago is None else NOW - dt.timedelta(hours=hours_ago)
    context = SendContext(purpose=purpose, source=source, visibility=visibility, language=language,
                          customer_name="Sanne")
    return mw.decide(window, payload or {"text": "De storing is opgelost.\nExcuses!"}, context, last, template, NOW)


def test_a_channel_without_a_window_always_sends() -> None:
    assert decide(None, None).action == mw.SEND


def test_inside_the_window_the_message_goes_as_it_is() -> None:
    decision = decide(WHATSAPP, 23)
    assert decision.action == mw.SEND and decision.payload == {"text": "De storing is opgelost.\nExcuses!"}


def test_the_margin_closes_the_window_a_little_early() -> None:
    assert decide(WHATSAPP, 24 - 1 / 60).action == mw.HOLD  # one minute left, inside the 5-minute margin


def test_outside_the_window_a_configured_template_goes_with_its_parameters_on_one_line() -> None:
    decision = decide(WHATSAPP, 30, purpose="broadcast", template=FIX)
    assert decision.action == mw.TEMPLATE
    assert decision.payload["template"] == {"name": "storing_opgelost", "language": "nl",
                                            "parameters": ["Sanne", "De storing is opgelost. Excuses!"]}
    english = decide(WHATSAPP, 30, purpose="broadcast", template=FIX, language="en")
    assert english.payload["template"]["language"] == "en_US"
    german = decide(WHATSAPP, 30, purpose="broadcast", template=FIX, language="de")
    assert german.payload["template"]["language"] == "nl"  # the first configured language


def test_outside_the_window_without_a_template_the_item_is_held_with_the_reason() -> None:
    decision = decide(WHATSAPP, 30, purpose="csat")
    assert decision.action == mw.HOLD
    assert "needs a template" in decision.reason and "'csat'" in decision.reason


def test_a_customer_who_never_wrote_needs_a_template() -> None:
    assert decide(WHATSAPP, None, purpose="broadcast").action == mw.HOLD
    assert decide(WHATSAPP, None, purpose="broadcast", template=FIX).action == mw.TEMPLATE


def test_human_agent_tag_only_for_a_person_s_reply_within_seven_days() -> None:
    tagged = decide(MESSENGER, 50, source="agent")
    assert tagged.action == mw.TAG and tagged.payload["tag"] == "HUMAN_AGENT"
    assert decide(MESSENGER, 50, source="draft").action == mw.HOLD  # an approved bot draft is no person's text
    assert decide(MESSENGER, 50, source="bot").action == mw.HOLD
    assert decide(MESSENGER, 24 * 8, source="agent").action == mw.HOLD
    assert decide(WHATSAPP, 50, source="agent").action == mw.HOLD  # WhatsApp has no such tag


def test_public_replies_and_private_replies_to_comments_have_no_dm_window() -> None:
    assert decide(MESSENGER, None, visibility="public").action == mw.SEND
    assert decide(MESSENGER, None, payload={"text": "Hoi!", "private_reply_to": "123_456"}).action == mw.SEND
    assert decide(MESSENGER, None, payload={"action": "hide", "comment_id": "123_456"}).action == mw.SEND


def test_a_long_parameter_is_cut() -> None:
    decision = decide(WHATSAPP, 30, template=FIX, payload={"text": "x" * 5000})
    assert len(decision.payload["template"]["parameters"][1]) == mw.MAX_PARAMETER_CHARS


def test_closes_at() -> None:
    last = NOW - dt.timedelta(hours=1)
    assert mw.closes_at(MESSENGER, last) == last + dt.timedelta(hours=24, minutes=-5)
    assert mw.closes_at(MESSENGER, last, human=True) == last + dt.timedelta(hours=168, minutes=-5)
    assert mw.closes_at(WHATSAPP, last, human=True) is None
    assert mw.closes_at(None, last) is None


def test_an_agent_s_edit_of_a_draft_is_a_person_s_text() -> None:
    last = NOW - dt.timedelta(hours=50)
    edited = SendContext(source="draft", typed_by_person=True)
    assert mw.decide(MESSENGER, {"text": "x"}, edited, last, None, NOW).action == mw.TAG
