"""Public comment threads on a real SQLite store, delivered by the real dispatcher.

The channel is a small in-process connector that records what it is asked to deliver and
answers a private reply to a comment the way Meta does (with the commenter's DM address);
the Meta connectors' own tests replay the platform's payloads.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from sqlalchemy import select, update

from bot.accounts import hash_password
from bot.cases import public_threads
from bot.cases.escalation import default_settings
from bot.errors import Conflict, InvalidInput
from bot.pipeline import outbox
from bot.pipeline.dispatcher import Dispatcher, claim_due
from bot.pipeline.intake import store_inbound
from bot.privacy.personal_data import PersonalDataInPublic
from bot.review import decisions as drafts
from bot.store.database import Store
from bot.store.models import (
    AuditEntry,
    Case,
    ChannelIdentity,
    Conversation,
    Draft,
    Message,
    Mode,
    OutboxItem,
    OutboxStatus,
    Purpose,
    Role,
    User,
    Visibility,
)
from connectors.base import (
    Capabilities,
    Connector,
    InboundMessage,
    MessagingWindow,
    SendContext,
    SendResult,
    TemplateSpec,
)

POST = "104857600123456_901234567890123"
COMMENT = "901234567890123_112233445566"
PSID = "7123456789012345"


class PageChannel(Connector):
    """A Page-like channel: DMs with a 24 h / 7 day window, public replies, private replies."""

    capabilities = Capabilities(window=MessagingWindow(free_form_hours=24, human_agent_hours=168),
                                rate_limit_per_second=1000)

    def __init__(self, name: str = "facebook", options: Dict[str, Any] = {}) -> None:
        super().__init__(name, options)
        self.delivered: List[Tuple[str, Dict[str, Any], SendContext]] = []
        self.templates = dict(options.get("templates") or {})

    def setup(self, app: Any, intake: Any) -> None:  # not served over HTTP here
        pass

    async def send(self, recipient: str, payload: Dict[str, Any], idempotency_key: str) -> SendResult:
        raise AssertionError("the dispatcher calls deliver()")

    async def deliver(self, recipient: str, payload: Dict[str, Any], key: str, context: SendContext) -> SendResult:
        self.delivered.append((recipient, payload, context))
        if payload.get("private_reply_to"):
            return SendResult(f"m_{len(self.delivered)}", recipient_id=PSID)
        return SendResult(f"m_{len(self.delivered)}")

    def template_for(self, purpose: str) -> Any:
        return self.templates.get(purpose)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(f"sqlite:///{tmp_path}/t.db")
    yield store
    store.close()


def agent(store: Store) -> User:
    def add(session: Any) -> User:
        user = User(username="anna", display_name="Anna", role=Role.agent, password_hash=hash_password("x" * 12))
        session.add(user)
        session.flush()
        session.expunge(user)
        return user
    return store.transaction(add)


def comment(store: Store, text: str = "Al drie dagen geen stroom in Utrecht!", comment_id: str = COMMENT,
            sender: str = "5566778899") -> int:
    inbound = InboundMessage(channel="facebook", channel_message_id=comment_id, sender_id=sender, text=text,
                             sender_name="Sanne de Vries", visibility="public", thread=POST,
                             metadata={"comment_id": comment_id, "post": {"id": POST}})
    return store.transaction(lambda s: store_inbound(s, inbound)).conversation_id


def deliver(store: Store, channel: PageChannel) -> None:
    dispatcher = Dispatcher(store, {"facebook": channel})

    async def run() -> None:
        while True:
            due = await store.run(claim_due, ["facebook"], 100, dispatcher.owner)
            if not due:
                return
            await dispatcher.deliver_all(due)
    asyncio.run(run())


def rows(store: Store, model: Any) -> List[Any]:
    def read(session: Any) -> List[Any]:
        found = session.execute(select(model).order_by(model.id)).scalars().all()
        for row in found:
            session.expunge(row)
        return found
    return store.transaction(read)


def test_a_comment_opens_a_public_conversation_apart_from_the_same_person_s_dm(store: Store) -> None:
    public = comment(store)
    dm = store.transaction(lambda s: store_inbound(s, InboundMessage(
        channel="facebook", channel_message_id="m_dm1", sender_id="5566778899", text="Hoi"))).conversation_id
    again = comment(store, "Nog steeds niets", comment_id=COMMENT + "9")
    conversations = {c.id: c for c in rows(store, Conversation)}
    assert public == again != dm
    assert conversations[public].visibility == Visibility.public and conversations[public].thread_id == POST
    assert conversations[dm].visibility == Visibility.private
    assert conversations[public].rasa_sender_id != conversations[dm].rasa_sender_id
    assert len(rows(store, ChannelIdentity)) == 1  # one person


def test_a_public_reply_goes_under_the_latest_comment_and_personal_data_is_refused(store: Store) -> None:
    conversation = comment(store)
    user = agent(store)
    with pytest.raises(PersonalDataInPublic) as refused:
        store.transaction(lambda s: public_threads.reply_public(
            s, conversation, user, "Bel ons op 06-12345678 of mail sanne@example.nl"))
    assert "phone" in refused.value.reason and "email" in refused.value.reason
    assert rows(store, OutboxItem) == []  # nothing queued
    store.transaction(lambda s: public_threads.reply_public(
        s, conversation, user, "Bel ons gerust op 088-1234567", override_personal_data=True))
    store.transaction(lambda s: public_threads.reply_public(s, conversation, user, "Vervelend! We kijken mee."))
    channel = PageChannel()
    deliver(store, channel)
    assert [(p["text"], c.visibility, c.reply_to) for _, p, c in channel.delivered] == [
        ("Bel ons gerust op 088-1234567", "public", COMMENT), ("Vervelend! We kijken mee.", "public", COMMENT)]
    audits = [a for a in rows(store, AuditEntry) if a.action == "public.reply"]
    assert "personal_data_override" in audits[0].details and "personal_data_override" not in audits[1].details


def test_a_drafted_public_reply_with_personal_data_needs_the_override(store: Store) -> None:
    conversation = comment(store)
    user = agent(store)
    message_id = rows(store, Message)[0].id
    store.transaction(lambda s: s.add(Draft(conversation_id=conversation, inbound_message_id=message_id,
                                            messages=[{"text": "Je klantnummer 1234567 staat genoteerd"}],
                                            reason="a public reply: reviewed")))
    draft_id = rows(store, Draft)[0].id
    with pytest.raises(PersonalDataInPublic):
        store.transaction(lambda s: drafts.approve(s, draft_id, user))
    assert rows(store, Draft)[0].status.value == "pending"  # the refusal rolled the claim back
    store.transaction(lambda s: drafts.approve(s, draft_id, user, override_personal_data=True))
    assert [a.action for a in rows(store, AuditEntry)] == ["public.personal_data_override", "draft.approve"]


def test_move_to_private_sends_one_private_reply_and_a_public_answer_and_links_the_dm(store: Store) -> None:
    conversation = comment(store)
    user = agent(store)
    result = store.transaction(lambda s: public_threads.move_to_private(s, conversation, user, default_settings()))
    with pytest.raises(Conflict):  # Meta allows one private reply per comment
        store.transaction(lambda s: public_threads.move_to_private(s, conversation, user, default_settings()))
    channel = PageChannel()
    deliver(store, channel)
    # Two recipients (the comment, the commenter): delivered side by side, in either order.
    [private_reply] = [d for d in channel.delivered if "private_reply_to" in d[1]]
    [public_answer] = [d for d in channel.delivered if "private_reply_to" not in d[1]]
    assert private_reply[1]["private_reply_to"] == COMMENT and private_reply[2].visibility == "private"
    assert public_answer[1]["text"] == "We sturen je een DM, dan kijken we er samen naar."
    assert public_answer[2].visibility == "public"
    conversations = {c.id: c for c in rows(store, Conversation)}
    private = conversations[result["private_conversation_id"]]
    assert private.visibility == Visibility.private and private.linked_id == conversation
    assert conversations[conversation].linked_id == private.id
    assert private.customer_id == conversations[conversation].customer_id
    assert private.mode == Mode.human  # the agent holds it: a case assigned to them
    assert rows(store, Case)[0].assigned_agent_id == user.id
    # Meta answered with the customer's PSID: their DM answer lands in this conversation.
    dm_identity = [i for i in rows(store, ChannelIdentity) if i.id == private.identity_id][0]
    assert dm_identity.external_id == PSID
    answer = store.transaction(lambda s: store_inbound(s, InboundMessage(
        channel="facebook", channel_message_id="m_answer", sender_id=PSID, text="Postcode 3511 AB, nummer 7")))
    assert answer.conversation_id == private.id


def test_a_private_reply_is_refused_after_seven_days(store: Store) -> None:
    conversation = comment(store)
    user = agent(store)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=8)
    with pytest.raises(InvalidInput, match="7 days"):
        store.transaction(lambda s: public_threads.move_to_private(s, conversation, user, default_settings(),
                                                                   now=later))


def test_hide_goes_out_as_an_action_and_the_thread_shows_it(store: Store) -> None:
    conversation = comment(store)
    user = agent(store)
    store.transaction(lambda s: public_threads.hide_comment(s, conversation, user))
    channel = PageChannel()
    deliver(store, channel)
    assert channel.delivered[0][1] == {"action": "hide", "comment_id": COMMENT}
    view = store.transaction(lambda s: public_threads.thread(s, conversation))
    assert view["post"]["id"] == POST and view["comments"][0]["hidden"] is True


def test_the_window_sends_tags_templates_or_holds(store: Store) -> None:
    """Inside the window as is; an agent's late reply with HUMAN_AGENT; a fix announcement
    through its template; a late CSAT request held as needs_template."""
    dm = store.transaction(lambda s: store_inbound(s, InboundMessage(
        channel="facebook", channel_message_id="m_1", sender_id=PSID, text="Hoi"))).conversation_id

    def queue(key: str, source: str, purpose: Purpose) -> None:
        store.transaction(lambda s: outbox.enqueue(s, key=key, channel="facebook", recipient=PSID,
                                                   payload={"text": f"tekst {key}"}, source=source,
                                                   conversation_id=dm, purpose=purpose))

    channel = PageChannel(options={"templates": {"broadcast": TemplateSpec("storing_opgelost", (("nl", "nl"),))}})
    queue("inside", "bot", Purpose.answer)
    deliver(store, channel)
    store.transaction(lambda s: s.execute(update(Message).where(Message.direction == "in").values(
        created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=30))))
    queue("agent-late", "agent", Purpose.answer)
    queue("fix", "broadcast", Purpose.broadcast)
    queue("csat", "bot", Purpose.csat)
    deliver(store, channel)
    sent = [(p.get("text"), p.get("tag"), (p.get("template") or {}).get("name")) for _, p, _ in channel.delivered]
    assert sent == [("tekst inside", None, None), ("tekst agent-late", "HUMAN_AGENT", None),
                    ("tekst fix", None, "storing_opgelost")]
    items = {i.idempotency_key: i for i in rows(store, OutboxItem)}
    assert items["csat"].status == OutboxStatus.needs_template and "needs a template" in items["csat"].last_error
    assert items["fix"].status == OutboxStatus.sent
    logged = {m.text: m for m in rows(store, Message) if m.direction.value == "out"}
    assert logged["tekst fix"].payload["sent_as"]["template"] == "storing_opgelost"
    assert logged["tekst csat"].status == "needs_template"


def test_a_commenter_who_already_wrote_a_dm_becomes_one_customer_with_one_history(store: Store) -> None:
    earlier = store.transaction(lambda s: store_inbound(s, InboundMessage(
        channel="facebook", channel_message_id="m_before", sender_id=PSID, text="Vorige week al gevraagd")))
    conversation = comment(store)
    user = agent(store)
    result = store.transaction(lambda s: public_threads.move_to_private(s, conversation, user, default_settings()))
    deliver(store, PageChannel())
    conversations = {c.id: c for c in rows(store, Conversation)}
    dm_customer = conversations[earlier.conversation_id].customer_id
    private = conversations[result["private_conversation_id"]]
    assert private.customer_id == dm_customer == conversations[conversation].customer_id
    [case] = rows(store, Case)
    assert case.customer_id == dm_customer  # the case follows its conversation
    identities = rows(store, ChannelIdentity)
    assert sorted(i.external_id for i in identities) == sorted([PSID, "5566778899"])  # no placeholder left
    assert {i.customer_id for i in identities} == {dm_customer}
    answer = store.transaction(lambda s: store_inbound(s, InboundMessage(
        channel="facebook", channel_message_id="m_after", sender_id=PSID, text="Bestelling 48213")))
    assert answer.conversation_id == private.id  # the newest open private conversation


def test_a_public_reply_stays_under_the_comment_it_answers(store: Store) -> None:
    """A comment arriving (or one removed) between the agent's reply and its delivery does not
    move the reply under another comment."""
    conversation = comment(store)
    user = agent(store)
    store.transaction(lambda s: public_threads.reply_public(s, conversation, user, "Vervelend! We kijken mee."))
    comment(store, "En nu?", comment_id=COMMENT + "2")
    store.transaction(lambda s: store_inbound(s, InboundMessage(
        channel="facebook", channel_message_id=f"{COMMENT}3:removed", sender_id="5566778899",
        text="[comment deleted]", kind="deleted", visibility="public", thread=POST,
        metadata={"comment_id": COMMENT + "3"})))
    channel = PageChannel()
    deliver(store, channel)
    assert [c.reply_to for _, _, c in channel.delivered] == [COMMENT]
