"""Corrections to review (bot/learning/corrections.py): agents' decisions → reviewed training data.

Drafts are decided through the real ``bot.review.decisions`` functions on a real store.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Iterator

import pytest
import yaml
from sqlalchemy import func, select, update

from bot.errors import InvalidInput, NotFound
from bot.learning import corrections
from bot.review import decisions
from bot.store.database import Store
from bot.store.models import AuditEntry, Draft, DraftStatus, ExampleStatus, Message, Role, TrainingExample
from tests.bot.console_support import make_store, seed_draft, seed_users
from tests.conftest import PROJECT, fresh_store

INTENTS = corrections.known_intents(PROJECT / "domain.yml")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = make_store(tmp_path)
    yield store
    store.close()


@pytest.fixture
def users(store):
    return store.transaction(seed_users)


def decide_one_of_each(store: Store, users) -> Dict[str, int]:
    """One draft per kind of decision (and a few that teach nothing); name → draft id."""
    agent = users[Role.agent]
    ids = {}
    ids["approved"] = store.transaction(seed_draft, customer_text="Mijn jaarafrekening is veel te hoog!",
                                        intent="bill_too_high", confidence=0.71)
    store.transaction(decisions.approve, ids["approved"], agent)
    ids["picked"] = store.transaction(seed_draft, customer_text="kan ik een betalingsregeling krijgen",
                                      intent="bill_too_high", confidence=0.44)
    store.transaction(decisions.pick, ids["picked"], agent, 1)  # → payment_arrangement
    ids["corrected"] = store.transaction(seed_draft, customer_text="I am really unhappy with you", language="en",
                                         intent="bill_too_high", confidence=0.38)
    store.transaction(decisions.edit, ids["corrected"], agent, "Sorry to hear that!", "complaint")
    ids["rejected"] = store.transaction(seed_draft, customer_text="wat is dit nou weer", intent="greet",
                                        confidence=0.3)
    store.transaction(decisions.reject, ids["rejected"], agent, "not a greeting")
    ids["unlabelled_edit"] = store.transaction(seed_draft, customer_text="dit telt niet mee")
    store.transaction(decisions.edit, ids["unlabelled_edit"], agent, "Ok!")
    ids["pending"] = store.transaction(seed_draft, customer_text="nog niet besloten")
    ids["photo"] = store.transaction(seed_draft, customer_text=None)
    store.transaction(decisions.approve, ids["photo"], agent)
    return ids


def all_examples(store: Store):
    return store.transaction(lambda s: {e.draft_id: e for e in s.execute(select(TrainingExample)).scalars()})


def audit_of(store: Store, example_id: int):
    return store.transaction(lambda s: [(a.action, a.details) for a in s.execute(
        select(AuditEntry).where(AuditEntry.target_type == "training_example", AuditEntry.target_id == example_id)
        .order_by(AuditEntry.id)).scalars()])


def example_ids(store: Store, ids: Dict[str, int], *names: str):
    by_draft = all_examples(store)
    return [by_draft[ids[name]].id for name in names]


# --------------------------------------------------------------------------- collect


def test_collect_makes_one_example_per_decision_that_says_something_about_the_intent(store, users):
    ids = decide_one_of_each(store, users)
    assert store.transaction(corrections.collect) == 4
    examples = all_examples(store)
    assert set(examples) == {ids["approved"], ids["picked"], ids["corrected"], ids["rejected"]}
    view = {name: (examples[ids[name]].source, examples[ids[name]].agent_intent, examples[ids[name]].bot_intent)
            for name in ("approved", "picked", "corrected", "rejected")}
    assert view == {
        "approved": ("confirmed", "bill_too_high", "bill_too_high"),
        "picked": ("picked", "payment_arrangement", "bill_too_high"),
        "corrected": ("corrected", "complaint", "bill_too_high"),
        "rejected": ("rejected", None, "greet"),  # the reviewer must relabel or drop it
    }
    picked = examples[ids["picked"]]
    draft = store.transaction(lambda s: s.get(Draft, ids["picked"]))
    assert picked.text == "kan ik een betalingsregeling krijgen"
    assert picked.message_id == draft.inbound_message_id
    assert picked.language == "nl" and examples[ids["corrected"]].language == "en"
    assert picked.bot_confidence == pytest.approx(0.44)
    assert picked.decided_by == users[Role.agent].id and picked.decided_at == draft.decided_at
    assert {e.status for e in examples.values()} == {ExampleStatus.pending}
    assert all(e.intent is None and e.reviewed_by is None for e in examples.values())


def test_collect_twice_makes_no_duplicates(store, users):
    ids = decide_one_of_each(store, users)
    assert store.transaction(corrections.collect) == 4
    assert store.transaction(corrections.collect) == 0
    later = store.transaction(seed_draft, customer_text="en nog een")
    store.transaction(decisions.approve, later, users[Role.agent])
    assert store.transaction(corrections.collect) == 1
    assert len(all_examples(store)) == 5
    assert store.transaction(corrections.counts) == {"pending": 5, "accepted": 0, "relabelled": 0, "dropped": 0}
    assert ids["pending"] not in all_examples(store)


def test_the_language_comes_from_the_message_when_the_conversation_has_none(store, users):
    draft_id = store.transaction(seed_draft, customer_text="my bill is too high", language=None)

    def detected(session):
        message_id = session.get(Draft, draft_id).inbound_message_id
        session.execute(update(Message).where(Message.id == message_id)
                        .values(nlu={"intent": {"name": "bill_too_high"}, "language": {"name": "en"}}))

    store.transaction(detected)
    store.transaction(decisions.approve, draft_id, users[Role.agent])
    store.transaction(corrections.collect)
    assert all_examples(store)[draft_id].language == "en"


def test_a_batch_already_collected_elsewhere_is_skipped_without_an_error(store, users):
    draft_id = store.transaction(seed_draft)
    store.transaction(decisions.approve, draft_id, users[Role.agent])
    store.transaction(corrections.collect)

    def insert_again(session):  # what a replica inserts after another committed the same rows
        example = session.execute(select(TrainingExample)).scalar_one()
        row = {c.name: getattr(example, c.name) for c in TrainingExample.__table__.columns if c.name != "id"}
        return corrections._insert_ignoring_duplicates(session, [row])

    assert store.transaction(insert_again) == 0
    assert len(all_examples(store)) == 1


@pytest.fixture(params=["postgresql"])
def pg_store(request, tmp_path: Path) -> Iterator[Store]:
    yield from fresh_store(request.param, tmp_path, "webcare_corrections")


def test_two_replicas_collecting_at_once_make_each_example_once(pg_store):
    users = pg_store.transaction(seed_users)
    ids = decide_one_of_each(pg_store, users)
    pool = ThreadPoolExecutor(1)
    held = pg_store.sessions()
    try:
        held.begin()
        assert corrections.collect(held) == 4  # replica A, not committed yet
        other = pool.submit(pg_store.transaction, corrections.collect)  # replica B, at the same moment
        time.sleep(0.5)
        assert not other.done()  # B waits for A's rows instead of failing
        held.commit()
        assert other.result(timeout=10) == 0
    finally:
        held.close()
        pool.shutdown()
    assert pg_store.transaction(lambda s: s.execute(select(func.count()).select_from(TrainingExample)).scalar()) == 4
    assert set(all_examples(pg_store)) == {ids["approved"], ids["picked"], ids["corrected"], ids["rejected"]}


# --------------------------------------------------------------------------- listing


def test_pending_lists_oldest_first_with_who_and_when(store, users):
    ids = decide_one_of_each(store, users)
    store.transaction(corrections.collect)
    rows = store.transaction(corrections.pending, 10, 0)
    assert [r["draft_id"] for r in rows] == [ids["approved"], ids["picked"], ids["corrected"], ids["rejected"]]
    first = rows[0]
    assert first["decided_by"] == "Anna Agent" and first["decided_at"].startswith("20")
    assert first["status"] == "pending" and first["source"] == "confirmed"
    assert first["text"] == "Mijn jaarafrekening is veel te hoog!" and first["bot_confidence"] == pytest.approx(0.71)
    assert [r["draft_id"] for r in store.transaction(corrections.pending, 2, 2)] == [ids["corrected"], ids["rejected"]]
    assert store.transaction(corrections.examples, "reviewed") == []
    with pytest.raises(InvalidInput):
        store.transaction(corrections.examples, "nonsense")
    with pytest.raises(InvalidInput):
        store.transaction(corrections.pending, 0, 0)


# --------------------------------------------------------------------------- review


def test_review_in_bulk_accepts_relabels_and_drops_and_audits(store, users):
    ids = decide_one_of_each(store, users)
    store.transaction(corrections.collect)
    owner = users[Role.process_owner]
    approved, picked, corrected, rejected = example_ids(store, ids, "approved", "picked", "corrected", "rejected")

    result = store.transaction(corrections.review, owner, [approved, picked], "accept", None, INTENTS)
    assert result == {"action": "accept", "status": "accepted", "intent": None, "count": 2, "ids": [approved, picked]}
    store.transaction(corrections.review, owner, [rejected], "relabel", "complaint", INTENTS)
    store.transaction(corrections.review, owner, [corrected], "drop", None, INTENTS)

    examples = all_examples(store)
    assert (examples[ids["approved"]].status, examples[ids["approved"]].intent) == (ExampleStatus.accepted,
                                                                                     "bill_too_high")
    assert (examples[ids["picked"]].status, examples[ids["picked"]].intent) == (ExampleStatus.accepted,
                                                                                 "payment_arrangement")
    assert (examples[ids["rejected"]].status, examples[ids["rejected"]].intent) == (ExampleStatus.relabelled,
                                                                                     "complaint")
    assert (examples[ids["corrected"]].status, examples[ids["corrected"]].intent) == (ExampleStatus.dropped, None)
    assert all(e.reviewed_by == owner.id and e.reviewed_at is not None for e in examples.values())
    assert audit_of(store, rejected) == [("training_example.relabel", {
        "before": {"status": "pending", "intent": None}, "after": {"status": "relabelled", "intent": "complaint"},
        "agent_intent": None, "source": "rejected"})]
    assert store.transaction(corrections.counts) == {"pending": 0, "accepted": 2, "relabelled": 1, "dropped": 1}


def test_a_reviewer_may_change_their_mind_and_it_is_audited(store, users):
    ids = decide_one_of_each(store, users)
    store.transaction(corrections.collect)
    admin = users[Role.admin]
    (picked,) = example_ids(store, ids, "picked")
    store.transaction(corrections.review, admin, [picked], "accept", None, INTENTS)
    store.transaction(corrections.review, admin, [picked], "drop", None, INTENTS)
    assert all_examples(store)[ids["picked"]].status == ExampleStatus.dropped
    assert [(action, details["before"], details["after"]) for action, details in audit_of(store, picked)] == [
        ("training_example.accept", {"status": "pending", "intent": None},
         {"status": "accepted", "intent": "payment_arrangement"}),
        ("training_example.drop", {"status": "accepted", "intent": "payment_arrangement"},
         {"status": "dropped", "intent": None}),
    ]


def _unchanged(store):
    assert store.transaction(corrections.counts)["pending"] == 4
    assert store.transaction(lambda s: s.execute(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.target_type == "training_example")).scalar()) == 0


def test_relabel_to_an_unknown_intent_is_refused_and_changes_nothing(store, users):
    ids = decide_one_of_each(store, users)
    store.transaction(corrections.collect)
    owner = users[Role.process_owner]
    chosen = example_ids(store, ids, "approved", "rejected")
    for intent in ("no_such_intent", "nlu_fallback", "", None, "two words"):
        with pytest.raises(InvalidInput):
            store.transaction(corrections.review, owner, chosen, "relabel", intent, INTENTS)
    _unchanged(store)


def test_review_is_all_or_nothing(store, users):
    ids = decide_one_of_each(store, users)
    store.transaction(corrections.collect)
    owner = users[Role.process_owner]
    approved, rejected = example_ids(store, ids, "approved", "rejected")
    with pytest.raises(InvalidInput, match="relabel or drop"):  # the rejected one has no agent's intent
        store.transaction(corrections.review, owner, [approved, rejected], "accept", None, INTENTS)
    with pytest.raises(NotFound):
        store.transaction(corrections.review, owner, [approved, 999999], "drop", None, INTENTS)
    with pytest.raises(InvalidInput):
        store.transaction(corrections.review, owner, [approved], "approve", None, INTENTS)
    with pytest.raises(InvalidInput):
        store.transaction(corrections.review, owner, [], "drop", None, INTENTS)
    with pytest.raises(InvalidInput):
        store.transaction(corrections.review, owner, [True], "drop", None, INTENTS)
    _unchanged(store)


def test_an_agents_intent_outside_the_domain_cannot_be_accepted(store, users):
    draft_id = store.transaction(seed_draft, customer_text="meterstand doorgeven")
    store.transaction(decisions.pick, draft_id, users[Role.agent], 0)  # "meter_reading": not in domain.yml
    store.transaction(corrections.collect)
    (example,) = all_examples(store).values()
    with pytest.raises(InvalidInput, match="not an intent of the domain"):
        store.transaction(corrections.review, users[Role.admin], [example.id], "accept", None, INTENTS)
    store.transaction(corrections.review, users[Role.admin], [example.id], "relabel", "submit_meter_reading")
    assert all_examples(store)[draft_id].intent == "submit_meter_reading"  # the shipped domain by default


# --------------------------------------------------------------------------- training data


def load_with_rasa(path: Path):
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(path))
    return sorted((m.get("intent"), m.get("text")) for m in data.intent_examples), data


def test_a_dropped_wrong_correction_never_reaches_training(store, users, tmp_path):
    agent, owner = users[Role.agent], users[Role.process_owner]
    wrong = store.transaction(seed_draft, customer_text="mijn stroom is uitgevallen")
    store.transaction(decisions.edit, wrong, agent, "Wat fijn!", "thank")  # the agent's careless label
    right = store.transaction(seed_draft, customer_text="Ik wil een [klacht](indienen) over jullie")
    store.transaction(decisions.edit, right, agent, "Dat spijt me.", "complaint")
    store.transaction(corrections.collect)
    by_draft = all_examples(store)
    store.transaction(corrections.review, owner, [by_draft[wrong].id], "drop", None, INTENTS)
    store.transaction(corrections.review, owner, [by_draft[right].id], "accept", None, INTENTS)

    blocks = store.transaction(corrections.training_examples)
    assert blocks == {("complaint", "nl"): ["Ik wil een [klacht] (indienen) over jullie"]}
    path = tmp_path / "var" / "training" / "learned_nlu.yml"
    assert store.transaction(corrections.write_training_data, path) == 1
    text = path.read_text(encoding="utf-8")
    assert "uitgevallen" not in text and "thank" not in text
    examples, data = load_with_rasa(path)
    assert examples == [("complaint", "Ik wil een [klacht] (indienen) over jullie")]
    assert data.entity_examples == []  # the customer's brackets are no entity annotation


def test_written_training_data_round_trips_through_rasa_and_is_the_same_on_every_replica(store, users, tmp_path):
    ids = decide_one_of_each(store, users)
    agent, owner = users[Role.agent], users[Role.process_owner]
    again = store.transaction(seed_draft, customer_text="  MIJN jaarafrekening   is veel te hoog! ")
    store.transaction(decisions.approve, again, agent)  # the same text: trained once
    english = store.transaction(seed_draft, customer_text="my bill is too high", language="en")
    store.transaction(decisions.approve, english, agent)
    store.transaction(corrections.collect)
    approved, picked, corrected, rejected = example_ids(store, ids, "approved", "picked", "corrected", "rejected")
    extra = example_ids(store, {"again": again, "english": english}, "again", "english")
    store.transaction(corrections.review, owner, [approved, picked, corrected, *extra], "accept", None, INTENTS)
    store.transaction(corrections.review, owner, [rejected], "relabel", "complaint", INTENTS)

    assert store.transaction(corrections.training_examples) == {
        ("bill_too_high", "en"): ["my bill is too high"],
        ("bill_too_high", "nl"): ["Mijn jaarafrekening is veel te hoog!"],
        ("complaint", "en"): ["I am really unhappy with you"],
        ("complaint", "nl"): ["wat is dit nou weer"],
        ("payment_arrangement", "nl"): ["kan ik een betalingsregeling krijgen"],
    }
    first, second = tmp_path / "replica-a" / "learned_nlu.yml", tmp_path / "replica-b" / "learned_nlu.yml"
    assert store.transaction(corrections.write_training_data, first) == 5
    assert store.transaction(corrections.write_training_data, second) == 5
    assert first.read_bytes() == second.read_bytes()
    modified = first.stat().st_mtime_ns
    time.sleep(0.01)
    store.transaction(corrections.write_training_data, first)
    assert first.stat().st_mtime_ns == modified  # nothing changed: the file is left alone

    document = yaml.safe_load(first.read_text(encoding="utf-8"))
    assert document["version"] == "3.1"
    assert {(b["intent"], b["metadata"]["lang"]) for b in document["nlu"]} == {
        ("bill_too_high", "en"), ("bill_too_high", "nl"), ("complaint", "en"), ("complaint", "nl"),
        ("payment_arrangement", "nl")}
    examples, _ = load_with_rasa(first)
    assert examples == [
        ("bill_too_high", "Mijn jaarafrekening is veel te hoog!"),
        ("bill_too_high", "my bill is too high"),
        ("complaint", "I am really unhappy with you"),
        ("complaint", "wat is dit nou weer"),
        ("payment_arrangement", "kan ik een betalingsregeling krijgen"),
    ]


def test_the_same_text_with_two_labels_is_trained_with_the_latest_review(store, users):
    agent, owner = users[Role.agent], users[Role.process_owner]
    first = store.transaction(seed_draft, customer_text="ja")
    store.transaction(decisions.edit, first, agent, "Top!", "affirm")
    second = store.transaction(seed_draft, customer_text="Ja")
    store.transaction(decisions.edit, second, agent, "Hoi!", "greet")
    store.transaction(corrections.collect)
    by_draft = all_examples(store)
    store.transaction(corrections.review, owner, [by_draft[second].id], "accept", None, INTENTS)
    store.transaction(corrections.review, owner, [by_draft[first].id], "accept", None, INTENTS)
    assert store.transaction(corrections.training_examples) == {("affirm", "nl"): ["ja"]}
    store.transaction(corrections.review, owner, [by_draft[second].id], "relabel", "affirm", INTENTS)
    assert store.transaction(corrections.training_examples) == {("affirm", "nl"): ["ja"]}


def test_nothing_reviewed_writes_a_valid_empty_file(store, tmp_path):
    path = tmp_path / "learned_nlu.yml"
    assert store.transaction(corrections.write_training_data, path) == 0
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert document == {"version": "3.1", "nlu": []}
    examples, _ = load_with_rasa(path)
    assert examples == []


def test_known_intents_are_the_domains_without_the_fallback():
    assert "bill_too_high" in INTENTS and "complaint" in INTENTS
    assert "nlu_fallback" not in INTENTS
    with pytest.raises(InvalidInput):
        corrections.known_intents(PROJECT / "no-such-domain.yml")


def test_drafts_are_untouched_by_collecting(store, users):
    ids = decide_one_of_each(store, users)
    store.transaction(corrections.collect)
    assert store.transaction(lambda s: s.get(Draft, ids["pending"]).status) == DraftStatus.pending
