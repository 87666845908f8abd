"""GDPR export and erase on a real store filled through the real code paths, with a fake Rasa API."""
from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Iterator, List, Tuple
from zoneinfo import ZoneInfo

import pytest
import yaml
from aiohttp import web
from sqlalchemy import inspect as sa_inspect, select, text as sql_text, update

from bot.cases import escalation as cases
from bot.privacy import gdpr
from bot.accounts import create_user
from bot.cases.escalation import CaseSettings, default_settings
from bot.cli import main as cli_main
from bot.config import DEFAULTS
from bot.customers.contacts import record_comment
from bot.reporting.digest import DigestScheduler, build_digests, deliver
from bot.pipeline.drafting_policy import DraftingPolicy
from bot.errors import InvalidInput, NotFound
from bot.pipeline.intake import store_inbound
from bot.outreach.known_issues import open_known_issue
from bot.opening_hours import WEEKDAYS, OpeningHours
from bot.customers.opt_ins import set_opt_in
from bot.pipeline.rasa_client import RasaReply
from bot.reporting.sinks import ReportSink
from bot.reporting.sinks.file import FileSink
from bot.reporting.sinks.webhook import WebhookSink
from bot.pipeline.service_buttons import button_payload, parse_command
from bot.pipeline.service_commands import carry_out
from bot.store.database import Store
from bot.store.models import (
    AuditEntry,
    Broadcast,
    BroadcastRecipient,
    Case,
    ChannelIdentity,
    Contact,
    Conversation,
    Customer,
    Draft,
    KnownIssueSubscription,
    Message,
    OptIn,
    OutboxItem,
    OutboxStatus,
    utcnow,
)
from bot.pipeline.leases import claim_conversations
from bot.pipeline.worker import apply_reply, next_job
from connectors.base import InboundMessage
from tests.conftest import fresh_postgres_database

POLICY = DraftingPolicy.from_config(DEFAULTS["drafting"])
SETTINGS = CaseSettings(default_settings().taxonomy,
                        OpeningHours.from_config({"timezone": "UTC", **{d: "closed" for d in WEEKDAYS}}))
NOTHING_LISTENS = "http://127.0.0.1:9"

JAN = "31612345678"
SENDER = f"hook:{JAN}"
CRM_REF = "CRM-ZZ-4711"
# every string that identifies Jan or that Jan (or an agent about Jan) wrote
SECRETS = [JAN, "Jan Jansen", "ZZSECRET1", "ZZSECRET2", "ZZDRAFT", "ZZNOTE", "ZZREPLY", "ZZRESOLUTION",
           "ZZCOMMENT", "ZZENTITY", CRM_REF, "ZZSLOT", "ZZREJECT"]
OTHER = ["Piet Puk", "ZZOTHER", "31699999999"]


# --------------------------------------------------------------------------- fake Rasa


class FakeRasa:
    """GET /conversations/<id>/tracker and PUT .../tracker/events of Rasa's HTTP API."""

    def __init__(self) -> None:
        self.trackers: Dict[str, List[Dict[str, Any]]] = {}
        self.puts: List[Tuple[str, Any]] = []
        self.url = ""
        self._runner: Any = None

    async def _get(self, request: web.Request) -> web.Response:
        sender = request.match_info["sender"]
        return web.json_response({"sender_id": sender, "events": self.trackers.get(sender, []),
                                  "slots": {"name": "ZZSLOT"} if self.trackers.get(sender) else {}})

    async def _put(self, request: web.Request) -> web.Response:
        sender = request.match_info["sender"]
        events = await request.json()
        self.puts.append((sender, events))
        self.trackers[sender] = list(events)
        return web.json_response({"sender_id": sender, "events": None})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/conversations/{sender}/tracker", self._get)
        app.router.add_put("/conversations/{sender}/tracker/events", self._put)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        await self._runner.cleanup()


@pytest.fixture
async def rasa() -> AsyncIterator[FakeRasa]:
    fake = FakeRasa()
    await fake.start()
    fake.trackers[SENDER] = [{"event": "user", "text": "Mijn naam is Jan Jansen ZZSECRET1"},
                             {"event": "bot", "text": "Hoi Jan Jansen"}]
    fake.trackers["hook:31699999999"] = [{"event": "user", "text": "ZZOTHER"}]
    yield fake
    await fake.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(f"sqlite:///{tmp_path}/t.db")
    yield store
    store.close()


# --------------------------------------------------------------------------- filling the store


def receive(store: Store, message_id: str, text: str, sender: str = JAN, name: str = "Jan Jansen",
            kind: str = "text") -> Any:
    return store.transaction(store_inbound, InboundMessage(
        channel="hook", channel_message_id=message_id, sender_id=sender, sender_name=name, text=text, kind=kind))


def job_for(store: Store, conversation_id: int) -> Any:
    store.transaction(claim_conversations, "w", 10)
    job = store.transaction(next_job, conversation_id, "w")
    assert job is not None
    return job


def answer(store: Store, conversation_id: int, intent: str, confidence: float, text: str,
           entities: Any = ()) -> Any:
    job = job_for(store, conversation_id)
    parse = {"text": job.text, "intent": {"name": intent, "confidence": confidence},
             "intent_ranking": [{"name": intent, "confidence": confidence}], "entities": list(entities),
             "language": {"name": "nl"}}
    return store.transaction(apply_reply, job, RasaReply([{"text": text}], parse, []), POLICY, "w", SETTINGS)


def release(store: Store) -> None:
    store.transaction(lambda s: s.execute(update(Conversation).values(lease_owner=None, lease_until=None)))


def fill(store: Store, rasa_events: bool = True) -> Dict[str, Any]:
    """Jan: messages, an auto-sent answer, a draft, a case with note/reply/link/close, a rating with a
    comment, an opt-in, a subscription, a broadcast delivery; Piet: one message."""
    agent = store.transaction(lambda s: create_user(s, "anna", "correct horse battery", "agent"))
    first = receive(store, "m1", "Mijn naam is Jan Jansen, mijn rekening is te hoog ZZSECRET1")
    conversation_id = first.conversation_id
    answer(store, conversation_id, "bill_too_high", 0.97, "Wat vervelend.",
           entities=[{"entity": "name", "value": "ZZENTITY Jan Jansen"}])
    receive(store, "m2", "ik wil iemand spreken ZZSECRET2")
    answer(store, conversation_id, "bill_too_high", 0.31, "Hoi Jan Jansen, ZZDRAFT")
    [draft] = store.transaction(lambda s: s.execute(select(Draft)).scalars().all())
    from bot.review import decisions as drafts
    release(store)
    draft_case_id = store.transaction(drafts.reject, draft.id, agent, "ZZREJECT te boos", SETTINGS)["case_id"]
    case_id = draft_case_id
    store.transaction(lambda s: s.execute(update(Case).where(Case.id == case_id).values(
        slots={"name": "ZZSLOT"}, crm_profile={"name": "Jan Jansen"})))
    store.transaction(cases.add_note, case_id, agent, "Klant ZZNOTE belt morgen")
    store.transaction(cases.reply, case_id, agent, "Hoi Jan, ZZREPLY")
    identity_id = store.transaction(lambda s: s.execute(select(ChannelIdentity.id)).scalars().first())
    store.transaction(cases.link_customer, case_id, agent, identity_id, CRM_REF)
    store.transaction(cases.close, case_id, agent, "meter_reading", "Opgelost ZZRESOLUTION", SETTINGS)
    [contact] = store.transaction(lambda s: s.execute(select(Contact)).scalars().all())
    # rating and comment, through the service commands
    receive(store, "r1", button_payload("csat", contact=contact.id, score=4), kind="button")
    job = job_for(store, conversation_id)
    assert store.transaction(carry_out, job, parse_command(job.kind, job.text))
    release(store)
    receive(store, "c1", "Snel geholpen ZZCOMMENT")
    job = job_for(store, conversation_id)
    assert store.transaction(record_comment, job)
    release(store)
    customer_id = store.transaction(lambda s: s.execute(select(Conversation.customer_id)).scalars().first())

    def extras(session: Any) -> None:
        set_opt_in(session, customer_id, True, "button")
        issue = open_known_issue(session, agent, "meter_reading", "Meterstoring", "Storing.", "Outage.",
                                 SETTINGS.taxonomy)
        session.add(KnownIssueSubscription(known_issue_id=issue["id"], customer_id=customer_id,
                                           identity_id=identity_id))
        broadcast = Broadcast(known_issue_id=issue["id"], text_nl="Opgelost.", text_en="Fixed.")
        session.add(broadcast)
        session.flush()
        session.add(BroadcastRecipient(broadcast_id=broadcast.id, customer_id=customer_id,
                                       identity_id=identity_id, reason="subscriber", status="pending"))
        # Rasa's SQL tracker store lives in the same database (endpoints.yml)
        if not rasa_events:
            return
        session.execute(sql_text(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255) NOT NULL, "
            "type_name VARCHAR(255) NOT NULL, timestamp FLOAT, intent_name VARCHAR(255), "
            "action_name VARCHAR(255), data TEXT)"))
        for sender, data in ((SENDER, "Jan Jansen ZZSECRET1"), ("hook:31699999999", "ZZOTHER")):
            session.execute(sql_text("INSERT INTO events (sender_id, type_name, data) VALUES (:s, 'user', :d)"),
                            {"s": sender, "d": json.dumps({"text": data})})
    store.transaction(extras)
    # a second customer, who must stay untouched
    other = receive(store, "p1", "Hallo ZZOTHER", sender="31699999999", name="Piet Puk")
    answer(store, other.conversation_id, "greet", 0.99, "Hallo!")
    return {"customer_id": customer_id, "case_id": case_id, "agent": agent, "other": other}


def dump(store: Store) -> str:
    """Every value of every row of every table, as one string."""
    def read(session: Any) -> str:
        parts = []
        for table in sa_inspect(session.connection()).get_table_names():
            for row in session.execute(sql_text(f'SELECT * FROM "{table}"')).all():
                parts.append(f"{table}: " + " | ".join(str(v) for v in row))
        return "\n".join(parts)
    return store.transaction(read)


def aggregates(store: Store) -> Dict[str, Any]:
    def read(session: Any) -> Dict[str, Any]:
        contacts = session.execute(select(Contact).order_by(Contact.id)).scalars().all()
        messages = session.execute(select(Message).order_by(Message.id)).scalars().all()
        return {
            "contacts": [(c.root_cause, c.root_cause_source, c.handled_by, c.csat_score, c.customer_messages,
                          c.first_response_seconds, c.handling_seconds) for c in contacts],
            "messages": [(m.direction.value, m.sender, m.created_at, ((m.nlu or {}).get("intent") or {}).get("name"),
                          ((m.nlu or {}).get("intent") or {}).get("confidence")) for m in messages],
            "cases": [(c.trigger, c.root_cause, c.suggested_root_cause, c.opened_at, c.first_response_at)
                      for c in session.execute(select(Case).order_by(Case.id)).scalars()],
            "customers": session.execute(select(Customer.id).order_by(Customer.id)).scalars().all(),
        }
    return store.transaction(read)


# --------------------------------------------------------------------------- tests


async def test_export_holds_everything_and_the_rasa_tracker(store: Store, rasa: FakeRasa) -> None:
    filled = fill(store)
    for ref, by in ((str(filled["customer_id"]), None), (CRM_REF, None), (SENDER, None), (SENDER, "identity")):
        document = await gdpr.export_customer(store, ref, rasa.url, by=by)
        assert document["customer_id"] == filled["customer_id"]
    text = json.dumps(document, ensure_ascii=False)
    for secret in SECRETS:
        assert secret in text, secret
    for other in OTHER:
        assert other not in text, other
    assert document["rasa"]["reachable"] is True
    assert document["rasa"]["trackers"][SENDER]["events"][0]["text"].endswith("ZZSECRET1")
    [conversation] = document["conversations"]
    assert {m["direction"] for m in conversation["messages"]} == {"in", "out"}
    assert len(document["cases"]) == 1 and document["cases"][0]["notes"][0]["text"].startswith("Klant ZZNOTE")
    assert document["contacts"][0]["csat_score"] == 4 and document["contacts"][0]["csat_comment"].endswith("ZZCOMMENT")
    assert document["opt_ins"][0]["proactive"] is True
    assert document["known_issue_subscriptions"][0]["known_issue"]["title"] == "Meterstoring"
    assert document["broadcast_deliveries"][0]["status"] == "pending"
    assert {e["action"] for e in document["audit_entries"]} >= {
        "case.open", "case.note", "case.reply", "case.close", "case.link_customer", "identity.link", "draft.reject"}
    assert document["drafts"][0]["messages"][0]["text"].endswith("ZZDRAFT")
    assert document["outbox"] and all(o["recipient"] == JAN for o in document["outbox"])
    assert rasa.puts == []  # export never writes


async def test_export_without_rasa_says_so(store: Store) -> None:
    filled = fill(store)
    document = await gdpr.export_customer(store, str(filled["customer_id"]), NOTHING_LISTENS)
    assert document["rasa"]["reachable"] is False and "unreachable" in document["rasa"]["error"]
    assert document["rasa"]["trackers"] == {} and document["customers"][0]["display_name"] == "Jan Jansen"


def test_unknown_and_ambiguous_customers_are_refused(store: Store) -> None:
    filled = fill(store)
    with pytest.raises(NotFound):
        store.transaction(gdpr.resolve_customer, "hook:000")
    with pytest.raises(NotFound):
        store.transaction(gdpr.resolve_customer, "nobody")
    # a CRM number that is another customer's id
    other_id = store.transaction(lambda s: s.get(Conversation, filled["other"].conversation_id).customer_id)
    store.transaction(lambda s: s.execute(update(Customer).where(Customer.id == filled["customer_id"])
                                          .values(crm_ref=str(other_id))))
    with pytest.raises(InvalidInput, match="ambiguous"):
        store.transaction(gdpr.resolve_customer, str(other_id))
    assert store.transaction(gdpr.resolve_customer, str(other_id), "crm") == filled["customer_id"]
    assert store.transaction(gdpr.resolve_customer, str(other_id), "id") == other_id


async def test_erase_removes_every_trace_and_keeps_the_aggregates(store: Store, rasa: FakeRasa) -> None:
    filled = fill(store)
    before = aggregates(store)
    before_dump = dump(store)
    for secret in SECRETS:
        assert secret in before_dump, secret

    pending_before = store.transaction(lambda s: s.execute(select(OutboxItem.id).where(
        OutboxItem.status == OutboxStatus.pending, OutboxItem.recipient == JAN).order_by(OutboxItem.id)).scalars().all())
    assert pending_before  # replies not delivered yet: they must never go out

    report = await gdpr.erase_customer(store, SENDER, rasa.url, operator="dpo")
    assert report.complete and report.customer_id == filled["customer_id"] and not report.already_erased
    assert report.counts["outbox_cancelled"] == len(pending_before)
    after_dump = dump(store)
    for secret in SECRETS:
        assert secret not in after_dump, secret
    for other in OTHER:
        assert other in after_dump, other  # the other customer is untouched
    assert aggregates(store) == before
    # Rasa: the tracker replaced by nothing, the SQL tracker store rows gone, the other one kept
    assert rasa.puts == [(SENDER, [])] and rasa.trackers[SENDER] == []
    assert "hook:31699999999" in after_dump

    def check(session: Any) -> None:
        customer = session.get(Customer, filled["customer_id"])
        assert customer.flags == ["erased"] and customer.display_name is None and customer.crm_ref is None
        identity = session.execute(select(ChannelIdentity).where(
            ChannelIdentity.customer_id == customer.id)).scalar_one()
        assert identity.external_id.startswith("erased:") and not identity.reachable
        assert session.execute(select(OptIn)).scalars().all() == []
        assert session.execute(select(KnownIssueSubscription)).scalars().all() == []
        assert session.execute(select(BroadcastRecipient.status)).scalars().all() == ["skipped"]
        contact = session.execute(select(Contact)).scalar_one()
        assert contact.csat_score == 4 and contact.csat_comment is None and contact.root_cause == "meter_reading"
        pending = session.execute(select(OutboxItem).where(OutboxItem.status == OutboxStatus.pending,
                                                           OutboxItem.recipient != "31699999999")).scalars().all()
        assert pending == []
        [entry] = session.execute(select(AuditEntry).where(AuditEntry.action == "gdpr.erase")).scalars().all()
        assert entry.target_id == customer.id and entry.details["operator"] == "dpo"
        assert entry.details["outbox_cancelled"] == pending_before
        for item_id in pending_before:
            cancelled = session.get(OutboxItem, item_id)
            assert (cancelled.status, cancelled.last_error) == (OutboxStatus.failed, gdpr.CANCELLED)
            assert session.get(Message, cancelled.message_id).status == "failed"
        assert session.execute(sql_text("SELECT count(*) FROM events")).scalar_one() == 1
        conversation = session.execute(select(Conversation).where(
            Conversation.customer_id == customer.id)).scalar_one()
        assert conversation.rasa_sender_id.startswith("erased:") and conversation.closed_at is not None
    store.transaction(check)

    # a returning customer starts fresh: a new customer, nothing to look up
    again = receive(store, "n1", "hallo weer")
    assert store.transaction(lambda s: s.get(Conversation, again.conversation_id).customer_id) != filled["customer_id"]
    with pytest.raises(NotFound):
        store.transaction(gdpr.resolve_customer, CRM_REF)


async def test_erase_is_idempotent(store: Store, rasa: FakeRasa) -> None:
    filled = fill(store)
    first = await gdpr.erase_customer(store, str(filled["customer_id"]), rasa.url)
    snapshot = dump(store)
    second = await gdpr.erase_customer(store, str(filled["customer_id"]), rasa.url)
    assert first.complete and second.complete and second.already_erased
    assert second.trackers_erased == [] and len(rasa.puts) == 1
    import re
    assert re.sub(r"erased:[0-9a-f]{32}", "T", dump(store)) == re.sub(r"erased:[0-9a-f]{32}", "T", snapshot)
    assert store.transaction(lambda s: len(s.execute(select(AuditEntry).where(
        AuditEntry.action == "gdpr.erase")).scalars().all())) == 1


async def test_erase_with_rasa_down_erases_the_store_and_finishes_later(store: Store, rasa: FakeRasa) -> None:
    filled = fill(store)
    report = await gdpr.erase_customer(store, CRM_REF, NOTHING_LISTENS)
    assert not report.complete and list(report.trackers_pending) == [SENDER]
    assert "unreachable" in report.trackers_pending[SENDER]
    after = dump(store)
    for secret in ("Jan Jansen", "ZZSECRET1", "ZZSECRET2", "ZZNOTE", "ZZREPLY", "ZZCOMMENT", CRM_REF):
        assert secret not in after, secret
    # the sender ids still to erase are kept, and only those
    assert store.transaction(gdpr.pending_senders, filled["customer_id"]) == [SENDER]
    assert rasa.puts == []

    done = await gdpr.erase_customer(store, str(filled["customer_id"]), rasa.url, by="id")
    assert done.complete and done.already_erased and done.trackers_erased == [SENDER]
    assert rasa.puts == [(SENDER, [])]
    final = dump(store)
    for secret in SECRETS:
        assert secret not in final, secret
    assert store.transaction(gdpr.pending_senders, filled["customer_id"]) == []


async def test_a_tracker_store_that_keeps_events_is_reported_as_pending(store: Store, rasa: FakeRasa) -> None:
    filled = fill(store)

    async def ignore_put(request: web.Request) -> web.Response:  # like SQLTrackerStore.save: appends only
        rasa.puts.append((request.match_info["sender"], await request.json()))
        return web.json_response({})
    rasa._put = ignore_put  # type: ignore[assignment]
    await rasa.stop()
    await rasa.start()
    report = await gdpr.erase_customer(store, str(filled["customer_id"]), rasa.url)
    assert not report.complete and "still holds" in report.trackers_pending[SENDER]


async def test_erase_includes_customers_merged_into_it(store: Store, rasa: FakeRasa) -> None:
    filled = fill(store)
    other_conversation = filled["other"].conversation_id
    # Piet's identity is linked to Jan's CRM number: Piet's customer is merged into Jan's
    def link(session: Any) -> None:
        from bot.customers.identity_linking import link_identity

        session.execute(update(Customer).where(Customer.id == filled["customer_id"]).values(crm_ref="C-1"))
        identity = session.get(Conversation, other_conversation).identity_id
        link_identity(session, identity, "C-1")
    store.transaction(link)
    report = await gdpr.erase_customer(store, "C-1", rasa.url, by="crm")
    assert len(report.customer_ids) == 2 and report.complete
    final = dump(store)
    for secret in [*SECRETS, *OTHER]:
        assert secret not in final, secret


def write_config(tmp_path: Path, rasa_url: str) -> Path:
    path = tmp_path / "webcare.yml"
    path.write_text(yaml.safe_dump({"database": {"url": f"sqlite:///{tmp_path}/t.db"},
                                    "rasa": {"url": rasa_url, "actions_url": NOTHING_LISTENS}}))
    return path


def test_cli_export_and_erase(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture) -> None:
    filled = fill(store)
    monkeypatch.delenv("WEBCARE_DATABASE_URL", raising=False)
    monkeypatch.delenv("WEBCARE_RASA_URL", raising=False)
    config = str(write_config(tmp_path, NOTHING_LISTENS))
    out = tmp_path / "export.json"
    assert cli_main(["--config", config, "gdpr", "export", SENDER, "--out", str(out)]) == 1
    document = json.loads(out.read_text())
    assert document["rasa"]["reachable"] is False and document["customer_id"] == filled["customer_id"]
    assert cli_main(["--config", config, "gdpr", "export", SENDER, "--out", str(out),
                     "--allow-without-rasa"]) == 0
    assert cli_main(["--config", config, "gdpr", "export", "hook:nobody"]) == 1
    monkeypatch.setattr("sys.stdin", open("/dev/null"))
    assert cli_main(["--config", config, "gdpr", "erase", SENDER]) == 2  # no --yes, no terminal
    capsys.readouterr()
    assert cli_main(["--config", config, "gdpr", "erase", SENDER, "--yes", "--actor", "anna"]) == 1  # Rasa down
    captured = capsys.readouterr()
    assert SENDER in captured.err and f"gdpr erase {filled['customer_id']}" in captured.err
    assert json.loads(captured.out)["rasa_trackers_pending"]
    assert "Jan Jansen" not in dump(store)


async def test_erase_on_postgresql(pg_url: str, rasa: FakeRasa) -> None:
    store = Store.from_url(pg_url)
    try:
        fill(store, rasa_events=False)
        filled = store.transaction(lambda s: s.execute(select(Contact.id)).scalar_one())
        report = await gdpr.erase_customer(store, SENDER, rasa.url)
        assert report.complete and rasa.puts == [(SENDER, [])]
        final = dump(store)
        for secret in SECRETS:
            assert secret not in final, secret
        assert "ZZOTHER" in final
        assert store.transaction(lambda s: s.get(Contact, filled).csat_score) == 4
    finally:
        store.close()


def test_a_received_message_is_not_answered_after_erase(store: Store) -> None:
    first = receive(store, "m1", "Jan Jansen ZZSECRET1")
    store.transaction(gdpr.erase_store, store.transaction(gdpr.resolve_customer, SENDER))
    message = store.transaction(lambda s: s.get(Message, first.message_id))
    assert message.status == "processed" and message.text is None
    assert store.transaction(claim_conversations, "w", 10) == []
    assert utcnow()


# --------------------------------------------------------------------------- weekly digests

UTC = ZoneInfo("UTC")


class KeepingSink(ReportSink):
    """A sink that keeps what it got; with ``erase_on_first`` the customer is erased while the
    first digest is being delivered to it (the erase commits in the middle of the week's sending)."""

    type_name = "keeping"

    def __init__(self, store: Store, erase_on_first: bool = False) -> None:
        self.store, self.erase_on_first = store, erase_on_first
        self.delivered: List[Dict[str, Any]] = []

    async def deliver(self, digest: Dict[str, Any]) -> None:
        if self.erase_on_first and not self.delivered:
            await self.store.run(lambda s: gdpr.erase_store(s, gdpr.resolve_customer(s, SENDER)))
        self.delivered.append(copy.deepcopy(digest))

    def describe(self) -> str:
        return f"keeping:{id(self)}"


def scheduler_for_tomorrow(store: Store, sinks: List[ReportSink]) -> Tuple[DigestScheduler, dt.date]:
    """A scheduler whose week (the 7 days before tomorrow, UTC) holds the contacts made today."""
    tomorrow = utcnow() + dt.timedelta(days=1)
    return DigestScheduler(store, SETTINGS.taxonomy, sinks, UTC, tomorrow.weekday(), dt.time(0, 0),
                           clock=lambda: tomorrow), tomorrow.date()


async def check_erase_reaches_stored_digests(store: Store, rasa_url: str, folder: Path) -> None:
    fill(store, rasa_events=False)
    contact_id = store.transaction(lambda s: s.execute(
        select(Contact.id).where(Contact.csat_comment.isnot(None))).scalar_one())
    recorded, configured = folder / "recorded", folder / "configured"
    # the scheduler sends the week to a file sink (the delivery is recorded in report_digests) ...
    scheduler, day = scheduler_for_tomorrow(store, [FileSink(recorded)])
    assert await scheduler.tick() == day
    # ... the same week by hand to the configured file sink, plus a digest written before quotes
    # carried their contact id, and a JSON file that is not a digest
    digests = store.transaction(build_digests, SETTINGS.taxonomy, day, UTC)
    await deliver(digests, [FileSink(configured)])
    legacy = copy.deepcopy(next(d for d in digests if d["owner"] == "metering"))
    legacy["date"] = "2020-01-06"
    for row in legacy["root_causes"]:
        for word in row["customer_words"]:
            del word["contact_id"]
    await FileSink(configured).deliver(legacy)
    (configured / "notes.json").write_text(json.dumps({"text": "Snel geholpen ZZCOMMENT"}), encoding="utf-8")
    quoting = sorted(recorded.glob("*-metering.*")) + sorted(configured.glob("*-metering.*"))
    assert len(quoting) == 6 and all("ZZCOMMENT" in f.read_text(encoding="utf-8") for f in quoting)

    webhook = WebhookSink("http://127.0.0.1:9/digest")  # delivered elsewhere: out of reach
    report = await gdpr.erase_customer(store, SENDER, rasa_url, sinks=[FileSink(configured), webhook])
    assert report.complete and report.digests_redacted == 3 and report.digests_pending == {}
    assert report.digest_sinks_not_recalled == ["webhook:http://127.0.0.1:9/digest"]
    for path in [*recorded.iterdir(), *configured.glob("*-*.*")]:
        assert "ZZCOMMENT" not in path.read_text(encoding="utf-8"), path
    assert "ZZCOMMENT" in (configured / "notes.json").read_text(encoding="utf-8")  # not a digest: untouched
    saved = json.loads((recorded / f"{day.isoformat()}-metering.json").read_text(encoding="utf-8"))
    [row] = [r for r in saved["root_causes"] if r["root_cause"] == "meter_reading"]
    assert row["customer_words"] == [{"text": None, "score": 4, "contact_id": contact_id, "erased": True}]
    assert (row["contacts"], row["csat_answered"], row["csat_mean"]) == (1, 1, 4.0)  # the figures stay
    assert "In the customers' words" not in (recorded / f"{day.isoformat()}-metering.md").read_text(encoding="utf-8")
    # future digests no longer quote it
    again = store.transaction(build_digests, SETTINGS.taxonomy, day, UTC)
    assert [w for d in again for r in d["root_causes"] for w in r["customer_words"]] == []
    # again (idempotent): nothing left to rewrite
    second = await gdpr.erase_customer(store, str(report.customer_id), rasa_url, by="id",
                                       sinks=[FileSink(configured)])
    assert second.complete and second.already_erased and second.digests_redacted == 0


async def test_erase_reaches_the_comments_in_stored_digests(store: Store, rasa: FakeRasa, tmp_path: Path) -> None:
    await check_erase_reaches_stored_digests(store, rasa.url, tmp_path)


async def test_erase_reaches_the_comments_in_stored_digests_on_postgresql(rasa: FakeRasa, tmp_path: Path) -> None:
    with fresh_postgres_database("webcare_gdpr_digests") as url:
        store = Store.from_url(url)
        try:
            await check_erase_reaches_stored_digests(store, rasa.url, tmp_path)
        finally:
            store.close()


async def test_a_digest_built_before_the_erase_goes_out_without_the_comment(store: Store) -> None:
    filled = fill(store, rasa_events=False)
    erasing, keeping = KeepingSink(store, erase_on_first=True), KeepingSink(store)
    scheduler, day = scheduler_for_tomorrow(store, [erasing, keeping])
    assert await scheduler.tick() == day  # built, then the erase commits while it is being sent
    assert store.transaction(lambda s: s.get(Customer, filled["customer_id"]).flags) == ["erased"]
    assert len(keeping.delivered) == len({c.owner for c in SETTINGS.taxonomy.causes})
    assert "ZZCOMMENT" not in json.dumps(keeping.delivered)
    [metering] = [d for d in keeping.delivered if d["owner"] == "metering"]
    [row] = [r for r in metering["root_causes"] if r["root_cause"] == "meter_reading"]
    assert row["customer_words"][0]["text"] is None and row["customer_words"][0]["erased"] is True
