"""export-feedback: agents' intent corrections as Rasa NLU training data (bot/review/feedback_export.py)."""
from __future__ import annotations

import datetime as dt

import pytest
import yaml
from sqlalchemy import update

from bot.review import decisions as drafts
from bot.review import feedback_export as feedback
from bot.cli import main as cli_main
from bot.store.models import Draft, Role
from tests.bot.console_support import environ, make_store, seed_draft, seed_users


@pytest.fixture
def store(tmp_path):
    store = make_store(tmp_path)
    yield store
    store.close()


def decide_some(store):
    """One of each decision; only the pick and the labelled edit are training examples."""
    users = store.transaction(seed_users)
    agent = users[Role.agent]
    picked = store.transaction(seed_draft, customer_text="kan ik mijn meterstand\ndoorgeven?", language="nl")
    store.transaction(drafts.pick, picked, agent, 0)  # → meter_reading
    edited = store.transaction(seed_draft, customer_text="I want to [complain](about) this", language="en")
    store.transaction(drafts.edit, edited, agent, "Sorry to hear that!", "complaint")
    unlabelled = store.transaction(seed_draft, customer_text="dit telt niet mee")
    store.transaction(drafts.edit, unlabelled, agent, "Ok!")
    approved = store.transaction(seed_draft, customer_text="dit ook niet")
    store.transaction(drafts.approve, approved, agent)
    rejected = store.transaction(seed_draft, customer_text="en dit ook niet")
    store.transaction(drafts.reject, rejected, agent)
    unknown_language = store.transaction(seed_draft, customer_text="betalingsregeling graag", language=None)
    store.transaction(drafts.pick, unknown_language, agent, 1)  # → payment_arrangement
    return {"picked": picked, "edited": edited, "unknown_language": unknown_language}


def load_with_rasa(path):
    from rasa.shared.nlu.training_data.loading import load_data

    from nlu.language_detector import training_language

    data = load_data(str(path))
    return [(m.get("intent"), m.get("text"), training_language(m)) for m in data.intent_examples], data


def test_collect_only_corrected_examples(store):
    decide_some(store)
    examples = store.transaction(feedback.collect)
    assert [(e.intent, e.text, e.lang) for e in examples] == [
        ("meter_reading", "kan ik mijn meterstand doorgeven?", "nl"),
        ("complaint", "I want to [complain] (about) this", "en"),
        ("payment_arrangement", "betalingsregeling graag", None),
    ]


def test_export_loads_with_rasa(store, tmp_path):
    decide_some(store)
    text, count = store.transaction(feedback.export)
    assert count == 3
    document = yaml.safe_load(text)
    assert document["version"] == "3.1"
    blocks = {block["intent"]: block for block in document["nlu"]}
    assert blocks["meter_reading"]["metadata"] == {"lang": "nl"}
    assert "metadata" not in blocks["payment_arrangement"]
    assert "examples: |" in text  # literal blocks, like data/nlu/
    path = tmp_path / "feedback.yml"
    path.write_text(text, encoding="utf-8")
    examples, data = load_with_rasa(path)
    assert sorted(examples) == [
        ("complaint", "I want to [complain] (about) this", "en"),
        ("meter_reading", "kan ik mijn meterstand doorgeven?", "nl"),
        ("payment_arrangement", "betalingsregeling graag", None),
    ]
    assert data.entity_examples == []  # the customer's brackets did not become an annotation


def test_since_filters_on_the_decision_day(store):
    ids = decide_some(store)
    old = dt.datetime(2020, 1, 1, 12, tzinfo=dt.timezone.utc)
    store.transaction(lambda s: s.execute(update(Draft).where(Draft.id == ids["picked"]).values(decided_at=old)))
    _, count = store.transaction(feedback.export, feedback.parse_since("2021-01-01"))
    assert count == 2
    _, count = store.transaction(feedback.export, feedback.parse_since("2020-01-01"))
    assert count == 3
    with pytest.raises(ValueError, match="YYYY|2024-05-31"):
        feedback.parse_since("01-02-2020")


def test_empty_export_is_valid(store, tmp_path):
    text, count = store.transaction(feedback.export)
    assert count == 0
    path = tmp_path / "empty.yml"
    path.write_text(text, encoding="utf-8")
    assert load_with_rasa(path)[0] == []


def test_cli_export_feedback(store, tmp_path, monkeypatch, capsys):
    decide_some(store)
    for key, value in environ(tmp_path).items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "out" / "feedback.yml"
    assert cli_main(["export-feedback", "--out", str(out), "--since", "2000-01-01"]) == 0
    assert "exported 3 corrected example(s)" in capsys.readouterr().out
    examples, _ = load_with_rasa(out)
    assert ("complaint", "I want to [complain] (about) this", "en") in examples
    assert cli_main(["export-feedback"]) == 0
    captured = capsys.readouterr()
    assert "intent: meter_reading" in captured.out and "exported 3" in captured.err
    assert cli_main(["export-feedback", "--since", "yesterday"]) == 2
    assert "--since must be a date" in capsys.readouterr().err
