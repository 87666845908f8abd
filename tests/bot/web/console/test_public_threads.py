"""Public comment threads, channel/visibility labels, messaging windows and delivery status in
the console, over the real app (SQLite; the domain builds the state: intake, open_case)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import html as markup
import itertools
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.cases.escalation import open_case
from bot.customer_texts import customer_text
from bot.pipeline.intake import store_inbound
from bot.store.models import (
    AuditEntry,
    Case,
    Conversation,
    Direction,
    Draft,
    DraftStatus,
    Message,
    OutboxItem,
    utcnow,
)
from bot.web.app import create_app
from bot.web.keys import CASES_KEY, STORE_KEY
from connectors.base import (
    Capabilities,
    Connector,
    InboundMessage,
    MessagingWindow,
    SendResult,
    TemplateSpec,
)
from tests.bot.console_support import (
    HOSTILE,
    console_login,
    hidden_field,
    make_config,
    seed_draft,
    seed_users,
    store_of,
)

WINDOWED = "tests.bot.web.console.test_public_threads.WindowedChannel"
POST = "post_1"
PERMALINK = "https://www.facebook.com/polder/posts/1"
PHONE = "Bel ons op 06-12345678, dan regelen we het."
_ids = itertools.count(1)


class WindowedChannel(Connector):
    """A WhatsApp/Messenger-like channel: a 24-hour window, HUMAN_AGENT up to 7 days;
    option ``template``: the name of the template for answers outside the window."""

    capabilities = Capabilities(window=MessagingWindow(24, 168))

    def setup(self, app: Any, intake: Any) -> None:
        pass

    async def send(self, recipient: str, payload: Dict[str, Any], idempotency_key: str) -> SendResult:
        return SendResult(channel_message_id=idempotency_key)

    def template_for(self, purpose: str) -> Optional[TemplateSpec]:
        name = self.options.get("template")
        return TemplateSpec(name, (("nl", "nl"),)) if name else None


@pytest.fixture
async def client(tmp_path: Path):  # type: ignore[no-untyped-def]
    config = make_config(tmp_path)
    config = dataclasses.replace(config, channels={
        **config.channels, "wa": {"type": WINDOWED}, "wt": {"type": WINDOWED, "template": "webcare_reply"}})
    app = create_app(config)
    app[STORE_KEY].transaction(seed_users)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


# ------------------------------------------------------------------ state, built by the domain


def comment(client: TestClient, text: str, *, comment_id: Optional[str] = None, sender: str = "psid-1",
            kind: str = "text", post: str = POST) -> Any:
    """A customer's comment under ``post``, through intake (a public conversation)."""
    comment_id = comment_id or f"c{next(_ids)}"
    inbound = InboundMessage(channel="facebook", channel_message_id=f"{comment_id}:{kind}", sender_id=sender,
                             text=text, sender_name="Jan Klant", language_hint="nl", kind=kind,
                             visibility="public", thread=post,
                             metadata={"comment_id": comment_id, "post": {"id": post, "permalink_url": PERMALINK}})
    return store_of(client).transaction(store_inbound, inbound)


def private_message(client: TestClient, channel: str, text: str = "Mijn factuur klopt niet",
                    ago: dt.timedelta = dt.timedelta(0), sender: str = "31612345678") -> Any:
    inbound = InboundMessage(channel=channel, channel_message_id=f"m{next(_ids)}", sender_id=sender, text=text,
                             sender_name="Jan Klant", language_hint="nl")
    accepted = store_of(client).transaction(store_inbound, inbound)
    if ago:
        def backdate(session: Any) -> None:
            session.get(Message, accepted.message_id).created_at = utcnow() - ago
        store_of(client).transaction(backdate)
    return accepted


def draft_for(client: TestClient, accepted: Any, texts: List[str]) -> int:
    def add(session: Any) -> int:
        draft = Draft(conversation_id=accepted.conversation_id, inbound_message_id=accepted.message_id,
                      messages=[{"text": t} for t in texts], intent="bill_too_high", confidence=0.6,
                      alternatives=[], reason="confidence 0.60 below the threshold 0.80")
        session.add(draft)
        session.flush()
        return draft.id
    return store_of(client).transaction(add)


def case_for(client: TestClient, conversation_id: int) -> int:
    case, _ = store_of(client).transaction(open_case, conversation_id, "complaint", client.app[CASES_KEY], {})
    return case.id


def outbox(client: TestClient) -> List[OutboxItem]:
    return store_of(client).transaction(lambda s: s.execute(
        select(OutboxItem).where(OutboxItem.source == "agent").order_by(OutboxItem.id)).scalars().all())


def audit_actions(client: TestClient) -> List[str]:
    return store_of(client).transaction(lambda s: s.execute(
        select(AuditEntry.action).order_by(AuditEntry.id)).scalars().all())


def conversation(client: TestClient, conversation_id: int) -> Conversation:
    return store_of(client).transaction(lambda s: s.get(Conversation, conversation_id))


def window_text(html: str) -> str:
    found = re.search(r'id="window" role="status">(.*?)</div>', html, re.S)
    assert found, "no window notice"
    return " ".join(markup.unescape(re.sub(r"<[^>]+>", "", found.group(1))).split())


async def page(client: TestClient, path: str) -> str:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return await response.text()


# ------------------------------------------------------------------ queues


async def test_queue_rows_show_channel_and_visibility_in_html_and_json(client):
    public = comment(client, "Waarom is mijn rekening zo hoog?")
    public_draft = draft_for(client, public, ["Vervelend! Stuur ons een DM."])
    private_draft = store_of(client).transaction(seed_draft, channel="telegram")
    await console_login(client, "anna")
    html = await page(client, "/console/queue")
    assert re.search(rf'data-id="{public_draft}">.*?facebook · public comment', html, re.S)
    assert re.search(rf'data-id="{private_draft}">.*?telegram · private', html, re.S)
    # the rows console.js renders from the polled JSON: the fields it reads are there
    rows = {d["id"]: d for d in (await (await client.get("/api/drafts")).json())["drafts"]}
    assert (rows[public_draft]["channel"], rows[public_draft]["visibility"]) == ("facebook", "public")
    assert (rows[private_draft]["channel"], rows[private_draft]["visibility"]) == ("telegram", "private")
    js = await (await client.get("/console/static/console.js")).text()
    assert "channelLabel(d.channel, d.visibility)" in js and '"public": "public comment"' in js
    assert "innerHTML" not in js

    case_for(client, public.conversation_id)
    private_conversation = store_of(client).transaction(lambda s: s.get(Draft, private_draft).conversation_id)
    case_for(client, private_conversation)
    cases = await page(client, "/console/cases")
    assert "facebook · public comment" in cases and "telegram · private" in cases
    listed = (await (await client.get("/api/cases")).json())["cases"]
    assert {(c["channel"], c["visibility"]) for c in listed} == {("facebook", "public"), ("telegram", "private")}


# ------------------------------------------------------------------ the thread page


async def test_thread_page_shows_the_post_and_the_comments(client):
    first = comment(client, "Jullie storing duurt al uren!", comment_id="c-first")
    comment(client, HOSTILE, comment_id="c-second")
    comment(client, "Jullie storing duurt al uren!!! (aangepast)", comment_id="c-first", kind="edit")
    conversation_id = first.conversation_id
    await console_login(client, "anna")
    html = await page(client, f"/console/conversations/{conversation_id}")
    assert f"<code>{POST}</code>" in html and f'href="{PERMALINK}"' in html
    assert "facebook · public comment" in html and "Jan Klant" in html
    assert "Jullie storing duurt al uren!" in html and HOSTILE not in html and "&lt;script&gt;" in html
    assert 'class="marker marker-edited">edited<' in html
    assert html.count('action="/console/conversations/%d/hide"' % conversation_id) == 3
    for form_id in ("public-reply", "move-to-private"):
        assert f'id="{form_id}"' in html
    # prefilled from the customer texts, in the conversation's language
    assert customer_text("moved_to_private_private", "nl") in html
    assert customer_text("moved_to_private_public", "nl") in html

    # our reply shows its delivery; a hidden comment is marked (and has no hide button left)
    csrf = hidden_field(html, "csrf_token")
    reply = await client.post(f"/console/conversations/{conversation_id}/reply", allow_redirects=False,
                              data={"csrf_token": csrf, "token": hidden_field(html, "token"),
                                    "text": "Sorry! We kijken ernaar."})
    assert reply.status == 303
    def delivered(session: Any) -> None:
        message = session.execute(select(Message).where(Message.conversation_id == conversation_id,
                                                        Message.direction == Direction.outbound)).scalar_one()
        message.status = "delivered"
    store_of(client).transaction(delivered)
    hidden = await client.post(f"/console/conversations/{conversation_id}/hide", allow_redirects=False,
                               data={"csrf_token": csrf, "message_id": str(first.message_id)})
    assert hidden.status == 303
    html = await page(client, f"/console/conversations/{conversation_id}")
    assert re.search(r'<span class="sender">Agent</span>.*?class="msg-status delivery-delivered">delivered<', html, re.S)
    assert 'class="marker marker-hidden">hidden<' in html
    assert html.count('action="/console/conversations/%d/hide"' % conversation_id) == 2
    # the draft and case pages of a public conversation say so and link the thread
    draft_id = draft_for(client, first, ["Wat vervelend!"])
    thread = await page(client, f"/console/conversations/{conversation_id}")
    # the bot's drafted public reply is pointed to: deciding it there keeps the verdict
    assert 'id="pending-draft"' in thread and f'href="/console/drafts/{draft_id}"' in thread
    assert "<q>Wat vervelend!</q>" in thread
    case_id = case_for(client, conversation_id)
    for path in (f"/console/drafts/{draft_id}", f"/console/cases/{case_id}"):
        other = await page(client, path)
        assert "facebook · public comment" in other and f'href="/console/conversations/{conversation_id}"' in other
        assert f"<code>{POST}</code>" in other and 'id="window"' not in other  # a comment has no window
    thread = await page(client, f"/console/conversations/{conversation_id}")
    assert f'href="/console/cases/{case_id}"' in thread
    assert 'id="pending-draft"' not in thread  # the case superseded the bot's draft


async def test_the_three_actions_work_through_the_console_forms(client):
    accepted = comment(client, "Mijn factuur is veel te hoog", comment_id="c-42")
    conversation_id = accepted.conversation_id
    pending = draft_for(client, accepted, ["Vervelend!"])
    await console_login(client, "anna")
    html = await page(client, f"/console/conversations/{conversation_id}")
    csrf, token = hidden_field(html, "csrf_token"), hidden_field(html, "token")

    reply = {"csrf_token": csrf, "token": token, "text": "We kijken ernaar!"}
    first = await client.post(f"/console/conversations/{conversation_id}/reply", data=reply, allow_redirects=False)
    again = await client.post(f"/console/conversations/{conversation_id}/reply", data=reply, allow_redirects=False)
    assert first.status == again.status == 303
    assert first.headers["Location"] == f"/console/conversations/{conversation_id}?done=reply"
    assert "Public reply queued for delivery" in await page(client, first.headers["Location"])
    hide = await client.post(f"/console/conversations/{conversation_id}/hide", data={"csrf_token": csrf},
                             allow_redirects=False)
    assert hide.status == 303 and hide.headers["Location"].endswith("?done=hide")
    # the reply goes under the comment it answers (fixed when queued), the hide to that comment
    assert [o.payload for o in outbox(client)] == [{"text": "We kijken ernaar!", "reply_to": "c-42"},
                                                   {"action": "hide", "comment_id": "c-42"}]
    assert store_of(client).transaction(lambda s: s.get(Draft, pending).status) == DraftStatus.superseded

    moved = await client.post(f"/console/conversations/{conversation_id}/move-to-private", allow_redirects=False,
                              data={"csrf_token": csrf, "private_text": "Hoi Jan, vertel eens?",
                                    "public_text": customer_text("moved_to_private_public", "nl")})
    assert moved.status == 303
    match = re.fullmatch(r"/console/cases/(\d+)\?done=moved", moved.headers["Location"])
    assert match, moved.headers["Location"]
    case_id = int(match.group(1))
    items = outbox(client)
    assert [o.payload for o in items[2:]] == [
        {"text": "Hoi Jan, vertel eens?", "private_reply_to": "c-42"},
        {"text": customer_text("moved_to_private_public", "nl"), "reply_to": "c-42"}]
    private_id = store_of(client).transaction(lambda s: s.get(Case, case_id).conversation_id)
    assert conversation(client, conversation_id).linked_id == private_id
    # the new private case, with a flash, linked back to the public comment; and the other way round
    case_html = await page(client, moved.headers["Location"])
    assert "Moved to private" in case_html and "facebook · private" in case_html
    assert re.search(rf'From a public comment:\s*<a href="/console/conversations/{conversation_id}">'
                     rf'conversation #{conversation_id}</a>', case_html)
    # the customer's history across channels: the public conversation, labelled as such
    earlier = case_html[case_html.index("Earlier conversations"):]
    assert "facebook · public comment" in earlier and f'href="/console/conversations/{conversation_id}"' in earlier
    thread = await page(client, f"/console/conversations/{conversation_id}")
    assert re.search(rf'moved to private:\s*<a href="/console/cases/{case_id}">case #{case_id}</a>', thread)
    # Meta allows one private reply per comment: a second move is refused with the reason
    twice = await client.post(f"/console/conversations/{conversation_id}/move-to-private",
                              data={"csrf_token": csrf})
    assert twice.status == 409 and "already answered privately" in await twice.text()
    assert "public.reply" in audit_actions(client) and "public.move_to_private" in audit_actions(client)


# ------------------------------------------------------------------ personal data


async def test_a_public_reply_with_personal_data_is_refused_then_published_knowingly(client):
    accepted = comment(client, "Ik wil een monteur", comment_id="c-7")
    conversation_id = accepted.conversation_id
    await console_login(client, "anna")
    html = await page(client, f"/console/conversations/{conversation_id}")
    csrf, token = hidden_field(html, "csrf_token"), hidden_field(html, "token")
    assert 'name="override_personal_data"' not in html  # offered only after a refusal
    refused = await client.post(f"/console/conversations/{conversation_id}/reply",
                                data={"csrf_token": csrf, "token": token, "text": PHONE})
    assert refused.status == 400
    html = await refused.text()
    assert "contains personal data: phone" in html and "phone (06•" in html  # the findings, masked
    assert re.search(r'<textarea id="public-reply-text" name="text"[^>]*>Bel ons op 06-12345678', html)
    assert 'name="override_personal_data"' in html and "I know this is public and mean to publish it" in html
    assert outbox(client) == []
    published = await client.post(f"/console/conversations/{conversation_id}/reply", allow_redirects=False,
                                  data={"csrf_token": csrf, "token": token, "text": PHONE,
                                        "override_personal_data": "on"})
    assert published.status == 303 and [o.payload["text"] for o in outbox(client)] == [PHONE]

    # move to private: the public answer is checked too; both texts are kept
    move = {"csrf_token": csrf, "private_text": "Hoi, wat is je adres?", "public_text": "Mail jan@example.com"}
    refused = await client.post(f"/console/conversations/{conversation_id}/move-to-private", data=move)
    html = await refused.text()
    assert refused.status == 400 and "email (ja•" in html
    assert ">Hoi, wat is je adres?</textarea>" in html and ">Mail jan@example.com</textarea>" in html
    assert 'id="override-move"' in html and len(outbox(client)) == 1
    moved = await client.post(f"/console/conversations/{conversation_id}/move-to-private",
                              data={**move, "override_personal_data": "on"}, allow_redirects=False)
    assert moved.status == 303 and len(outbox(client)) == 3


async def test_draft_and_case_forms_of_a_public_conversation_refuse_personal_data_unless_overridden(client):
    accepted = comment(client, "Storing!", comment_id="c-9")
    draft_id = draft_for(client, accepted, ["Bel 020 123 4567 voor hulp."])
    await console_login(client, "anna")
    html = await page(client, f"/console/drafts/{draft_id}")
    csrf = hidden_field(html, "csrf_token")
    refused = await client.post(f"/console/drafts/{draft_id}/approve", data={"csrf_token": csrf})
    html = await refused.text()
    assert refused.status == 400 and "contains personal data: phone" in html
    assert re.search(r'id="approve-form"[^>]*>.*?name="override_personal_data"', html, re.S)
    edited = await client.post(f"/console/drafts/{draft_id}/edit",
                               data={"csrf_token": csrf, "text": "Mail naar jan@example.com"})
    html = await edited.text()
    assert edited.status == 400 and "email (ja•" in html and ">Mail naar jan@example.com</textarea>" in html
    assert re.search(r'id="edit-form".*?id="override-edit" name="override_personal_data"', html, re.S)
    assert store_of(client).transaction(lambda s: s.get(Draft, draft_id).status) == DraftStatus.pending
    approved = await client.post(f"/console/drafts/{draft_id}/approve", allow_redirects=False,
                                 data={"csrf_token": csrf, "override_personal_data": "on"})
    assert approved.status == 303
    assert store_of(client).transaction(lambda s: s.get(Draft, draft_id).status) == DraftStatus.approved
    assert "public.personal_data_override" in audit_actions(client)

    case_id = case_for(client, accepted.conversation_id)
    html = await page(client, f"/console/cases/{case_id}")
    reply = {"csrf_token": csrf, "token": hidden_field(html, "token"), "text": "Je klantnummer 40001234 klopt."}
    refused = await client.post(f"/console/cases/{case_id}/reply", data=reply)
    html = await refused.text()
    assert refused.status == 400 and "customer number" in html and "klantnummer 40001234 klopt." in html
    assert 'id="override-reply"' in html and outbox(client) == []
    sent = await client.post(f"/console/cases/{case_id}/reply", data={**reply, "override_personal_data": "on"},
                             allow_redirects=False)
    assert sent.status == 303 and [o.payload for o in outbox(client)] == [{"text": reply["text"]}]


async def test_a_private_conversation_has_no_personal_data_check(client):
    draft_id = store_of(client).transaction(seed_draft, messages=[{"text": "Bel 020 123 4567."}])
    await console_login(client, "anna")
    html = await page(client, f"/console/drafts/{draft_id}")
    response = await client.post(f"/console/drafts/{draft_id}/approve",
                                 data={"csrf_token": hidden_field(html, "csrf_token")}, allow_redirects=False)
    assert response.status == 303 and "telegram · private" in html and "Public comment" not in html


# ------------------------------------------------------------------ who may


async def test_new_routes_refuse_anonymous_users_and_process_owners_writes(client):
    conversation_id = comment(client, "Hallo?", comment_id="c-1").conversation_id
    base = f"/console/conversations/{conversation_id}"
    anonymous = await client.get(base, allow_redirects=False)
    assert anonymous.status == 302 and anonymous.headers["Location"].startswith("/console/login?next=")
    for action in ("reply", "hide", "move-to-private"):
        response = await client.post(f"{base}/{action}", data={"text": "x"}, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/console/login", action
    assert (await client.get(f"/api/conversations/{conversation_id}/thread")).status == 401

    await console_login(client, "piet")  # a process owner reads, never acts
    html = await page(client, base)
    assert "Hallo?" in html and 'id="public-reply"' not in html and "Hide this comment" not in html
    csrf = hidden_field(html, "csrf_token")
    for action in ("reply", "hide", "move-to-private"):
        response = await client.post(f"{base}/{action}", data={"csrf_token": csrf, "text": "x"})
        assert response.status == 403, action
    assert outbox(client) == [] and conversation(client, conversation_id).linked_id is None


async def test_a_private_or_unknown_conversation_has_no_thread_page(client):
    private = private_message(client, "wa")
    await console_login(client, "anna")
    assert (await client.get(f"/console/conversations/{private.conversation_id}")).status == 400
    assert (await client.get("/console/conversations/9999")).status == 404
    assert (await client.get("/console/conversations/abc")).status == 404


# ------------------------------------------------------------------ messaging windows


async def test_case_page_shows_an_open_window_and_the_human_agent_tag(client):
    case_id = case_for(client, private_message(client, "wa", ago=dt.timedelta(minutes=10)).conversation_id)
    await console_login(client, "anna")
    html = await page(client, f"/console/cases/{case_id}")
    assert "wa · private" in html
    assert '<div class="alert window info" id="window"' in html  # open: information, not a warning
    text = window_text(html)
    # 24 h after the customer's message, less the 5-minute margin: 23h 45m from now
    assert re.search(r"wa window open until \d\d \w{3} \d\d:\d\d \(in 23h 4[45]m\)", text), text
    assert "after it closes, an agent's reply may still go out with Meta's HUMAN_AGENT tag until" in text


async def test_case_page_shows_a_closed_window_the_tag_and_the_missing_template(client):
    case_id = case_for(client, private_message(client, "wa", ago=dt.timedelta(hours=30)).conversation_id)
    await console_login(client, "anna")
    html = await page(client, f"/console/cases/{case_id}")
    assert '<div class="alert window warn" id="window"' in html
    text = window_text(html)
    assert re.search(r"wa window closed since \d\d \w{3} \d\d:\d\d", text), text
    # 7 days after the customer's message (less the margin): 137h 55m from now
    assert re.search(r"an agent's reply may still go out with Meta's HUMAN_AGENT tag until "
                     r"\d\d \w{3} \d\d:\d\d \(in 137h 5[45]m\)", text), text
    assert "after that, a reply needs a template (none configured)" in text


async def test_past_the_tag_a_reply_goes_out_as_the_configured_template(client):
    accepted = private_message(client, "wt", ago=dt.timedelta(days=8))
    case_id = case_for(client, accepted.conversation_id)
    draft_id = draft_for(client, accepted, ["Hoi!"])
    await console_login(client, "anna")
    for path in (f"/console/cases/{case_id}", f"/console/drafts/{draft_id}"):
        html = await page(client, path)
        text = window_text(html)
        assert "wt window closed since" in text and "a reply goes out as template webcare_reply" in text, text
        assert "HUMAN_AGENT" not in text and "after that" not in text


async def test_the_draft_page_shows_the_window_without_the_agent_tag(client):
    accepted = private_message(client, "wa", ago=dt.timedelta(hours=2))
    draft_id = draft_for(client, accepted, ["Hoi!"])
    await console_login(client, "anna")
    html = await page(client, f"/console/drafts/{draft_id}")
    text = window_text(html)
    assert re.search(r"wa window open until .* \(in 21h 5\dm\)\.$", text), text
    assert "HUMAN_AGENT" not in text
    # a channel without a window (telegram) shows none
    plain = store_of(client).transaction(seed_draft, channel="telegram")
    assert 'id="window"' not in await page(client, f"/console/drafts/{plain}")


# ------------------------------------------------------------------ delivery in the transcript


async def test_transcript_shows_how_each_reply_went_out(client):
    accepted = private_message(client, "wa", ago=dt.timedelta(days=2))
    conversation_id = accepted.conversation_id
    case_id = case_for(client, conversation_id)

    def replies(session: Any) -> None:
        for text, status, sent_as, error in (
                ("Als template", "delivered", {"action": "template", "template": "webcare_reply",
                                               "reason": "outside the window"}, None),
                ("Met tag", "read", {"action": "tag", "reason": "an agent's reply"}, None),
                ("Kapot", "failed", None, "(#131026) Message undeliverable"),
                ("Wacht", "needs_template", None,
                 "needs a template: outside the 24-hour window and no template is configured for 'answer' messages")):
            session.add(Message(conversation_id=conversation_id, direction=Direction.outbound, channel="wa",
                                sender="agent:1", text=text, status=status, last_error=error,
                                payload={"text": text, **({"sent_as": sent_as} if sent_as else {})}))
    store_of(client).transaction(replies)
    draft_id = draft_for(client, accepted, ["Hoi!"])
    await console_login(client, "anna")
    for path in (f"/console/cases/{case_id}", f"/console/drafts/{draft_id}"):
        html = await page(client, path)
        assert "delivered · sent as template webcare_reply" in html, path
        assert "read · with HUMAN_AGENT tag" in html
        assert "failed: (#131026) Message undeliverable" in html
        assert "needs a template: outside the 24-hour window and no template is configured" in html
        assert "needs a template: needs a template" not in html
    detail = await (await client.get(f"/api/cases/{case_id}")).json()
    assert [t.get("sent_as") for t in detail["transcript"] if t["text"] in ("Als template", "Met tag")] == [
        "webcare_reply", "tag"]

