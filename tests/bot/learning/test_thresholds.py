"""Per-intent thresholds from agents' verdicts (bot/learning/thresholds.py): the maths on
synthetic verdicts, the query over drafts decided through bot.review.decisions, approval and
its effect on the worker's drafting policy, and the ``learning`` config section."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, List

import pytest
from sqlalchemy import event, select, update

from bot.config import ConfigError, LearningConfig, SettingError, load_config
from bot.errors import InvalidInput, NotFound
from bot.events import ThresholdsChanged
from bot.learning import thresholds as th
from bot.learning.thresholds import Verdict, suggest_for, wilson
from bot.pipeline.drafting_policy import DraftingPolicy, LearnedThresholds
from bot.pipeline.intake import store_inbound
from bot.pipeline.leases import claim_conversations
from bot.pipeline.rasa_client import RasaReply
from bot.pipeline.worker import apply_reply, next_job
from bot.review import decisions
from bot.service import Service
from bot.store.models import AuditEntry, Draft, DraftStatus, IntentThreshold, Mode, OutboxItem, Role
from connectors.base import InboundMessage
from tests.bot.console_support import make_config, make_store, seed_draft, seed_users


def right(confidence: float, n: int = 1, intent: str = "tariffs") -> List[Verdict]:
    return [Verdict(intent, confidence, True)] * n


def wrong(confidence: float, n: int = 1, intent: str = "tariffs") -> List[Verdict]:
    return [Verdict(intent, confidence, False)] * n


# --------------------------------------------------------------------------- the maths


def test_wilson_interval_against_known_values() -> None:
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(1, 10) == pytest.approx((0.0179, 0.4042), abs=1e-4)
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    low, high = wilson(200, 200)
    assert low == pytest.approx(200 / (200 + 1.959964 ** 2), abs=1e-6) and low == pytest.approx(0.98115, abs=1e-5)
    assert high == 1.0
    assert wilson(0, 20) == (0.0, pytest.approx(0.1611, abs=1e-4))
    assert wilson(0, 0) == (0.0, 1.0)  # no evidence: anything is possible
    # All right needs 189 verdicts before the lower bound reaches 98 %.
    assert wilson(188, 188)[0] < 0.98 <= wilson(189, 189)[0]


@pytest.mark.parametrize("status, corrected, expected", [
    (DraftStatus.approved, None, True),
    (DraftStatus.edited, None, True),  # wording changed, intent kept
    (DraftStatus.edited, "tariffs", True),
    (DraftStatus.edited, "invoice", False),
    (DraftStatus.picked, "invoice", False),
    (DraftStatus.rejected, None, False),
])
def test_what_counts_as_right(status: DraftStatus, corrected: Any, expected: bool) -> None:
    assert th.is_right(status, "tariffs", corrected) is expected


def test_bands_split_at_their_edges() -> None:
    verdicts = right(0.2) + wrong(0.49) + right(0.5) + right(0.899) + wrong(0.9) + right(0.95) + right(1.0) + right(0.97)
    rows = th.band_rows(verdicts)
    assert [(r["low"], r["high"]) for r in rows] == list(th.BANDS)
    assert [(r["n"], r["right"]) for r in rows] == [(2, 1), (1, 1), (0, 0), (0, 0), (1, 1), (1, 0), (3, 3)]
    assert rows[0]["rate"] == 0.5 and rows[2]["rate"] is None and rows[6]["rate"] == 1.0


def test_200_right_verdicts_at_095_and_above_suggest_095() -> None:
    verdicts = [Verdict("tariffs", 0.95 + (i % 6) * 0.01, True) for i in range(200)]  # 0.95 … 1.00
    suggestion = suggest_for("tariffs", verdicts, target=0.98, min_verdicts=30, current=0.8)
    assert suggestion.action == "set" and suggestion.threshold == 0.95
    evidence = suggestion.evidence
    assert (evidence.n, evidence.right, evidence.precision) == (200, 200, 1.0)
    assert evidence.low == pytest.approx(0.98115, abs=1e-5) and evidence.high == 1.0
    assert evidence.auto_send_share == 1.0
    assert suggestion.as_dict()["change"] == "higher"
    assert "200 of 200 right at 0.95 or above" in suggestion.reason


def test_mixed_bands_cut_where_the_lower_bound_still_reaches_the_target() -> None:
    top = [Verdict("tariffs", 0.90 + (i % 10) * 0.01, True) for i in range(250)]  # 0.90 … 0.99, all right
    middle = right(0.85, 54) + wrong(0.86, 6)  # 90 % right
    low = right(0.7, 20) + wrong(0.72, 20)
    suggestion = suggest_for("tariffs", top + middle + low, target=0.98, min_verdicts=30, current=0.8)
    assert suggestion.action == "set" and suggestion.threshold == 0.90
    assert (suggestion.evidence.n, suggestion.evidence.right, suggestion.verdicts) == (250, 250, 350)
    assert suggestion.evidence.auto_send_share == pytest.approx(250 / 350)
    # With the wrong ones just above the cut, the cut moves up past them.
    shifted = top + wrong(0.905, 3)
    moved = suggest_for("tariffs", shifted, target=0.98, min_verdicts=30, current=0.8)
    assert moved.action == "set" and moved.threshold == 0.91
    assert moved.evidence.n == 225 and moved.evidence.right == 225
    # A lower target lowers the cut.
    assert suggest_for("tariffs", top + middle + low, target=0.95, min_verdicts=30, current=0.8).threshold == 0.85


def test_too_few_verdicts_keep_the_current_threshold() -> None:
    suggestion = suggest_for("tariffs", right(0.99, 10), target=0.98, min_verdicts=30, current=0.8)
    assert (suggestion.action, suggestion.threshold, suggestion.evidence) == ("keep", None, None)
    assert suggestion.reason == "only 10 verdicts (30 needed): keep the global threshold 0.80"
    configured = suggest_for("tariffs", [], min_verdicts=30, current=0.9, current_source="configured")
    assert "only 0 verdicts" in configured.reason and "configured threshold 0.90" in configured.reason


def test_not_enough_evidence_yet_keeps_the_threshold() -> None:
    # 100 of 100 right: promising, but the lower bound is 96.3 % < 98 %: no change either way.
    suggestion = suggest_for("tariffs", right(0.9, 100), target=0.98, min_verdicts=30, current=0.8)
    assert suggestion.action == "keep" and suggestion.threshold is None
    assert suggestion.evidence.n == 100 and suggestion.evidence.low == pytest.approx(0.963, abs=1e-3)
    assert "no threshold reaches the target" in suggestion.reason


def test_evidently_bad_precision_at_the_current_threshold_suggests_review() -> None:
    verdicts = right(0.85, 80) + wrong(0.88, 20) + right(0.6, 10)
    suggestion = suggest_for("tariffs", verdicts, target=0.98, min_verdicts=30, current=0.8)
    assert suggestion.action == "always_review" and suggestion.threshold == th.ALWAYS_REVIEW
    assert (suggestion.evidence.threshold, suggestion.evidence.n, suggestion.evidence.right) == (0.8, 100, 80)
    assert suggestion.evidence.high < 0.98


def test_confidences_below_the_minimum_threshold_are_never_suggested() -> None:
    suggestion = suggest_for("tariffs", right(0.3, 300), target=0.98, min_verdicts=30, current=0.8)
    assert suggestion.action == "keep"  # 300 right, but at 0.3: never auto-sent below 0.5


# --------------------------------------------------------------------------- the store


@pytest.fixture
def store(tmp_path: Path):
    store = make_store(tmp_path)
    yield store
    store.close()


@pytest.fixture
def users(store):
    return store.transaction(seed_users)


def decided(store, users, confidence: float, how: str, intent: str = "tariffs") -> int:
    """A draft seeded as the worker writes it, then decided through bot.review.decisions."""
    agent = users[Role.agent]
    draft_id = store.transaction(seed_draft, intent=intent, confidence=confidence)
    if how == "approve":
        store.transaction(decisions.approve, draft_id, agent)
    elif how == "edit_same":
        store.transaction(decisions.edit, draft_id, agent, "Nieuwe woorden.")
    elif how == "edit_other":
        store.transaction(decisions.edit, draft_id, agent, "Iets anders.", "invoice")
    elif how == "pick":
        store.transaction(decisions.pick, draft_id, agent, 0)
    elif how == "reject":
        store.transaction(decisions.reject, draft_id, agent, "niet goed")
    elif how == "supersede":
        store.transaction(lambda s: s.execute(update(Draft).where(Draft.id == draft_id)
                                              .values(status=DraftStatus.superseded)))
    return draft_id


def test_verdicts_bands_and_suggestions_from_decided_drafts(store, users) -> None:
    for confidence in (0.91, 0.92, 0.93, 0.95, 0.97, 0.99):
        decided(store, users, confidence, "approve")
    decided(store, users, 0.96, "edit_same")  # the intent was right
    decided(store, users, 0.75, "edit_other")
    decided(store, users, 0.72, "pick")
    decided(store, users, 0.55, "reject")
    decided(store, users, 0.98, "supersede")  # no verdict
    decided(store, users, 0.98, "pending")  # no verdict
    decided(store, users, 0.9, "approve", intent="nlu_fallback")  # always drafted: no threshold
    decided(store, users, 0.8, "approve", intent="greet")
    store.transaction(seed_draft, intent=None, confidence=None)

    found = store.transaction(th.verdicts)
    assert set(found) == {"tariffs", "greet"}
    assert sorted((v.confidence, v.right) for v in found["tariffs"]) == [
        (0.55, False), (0.72, False), (0.75, False), (0.91, True), (0.92, True), (0.93, True),
        (0.95, True), (0.96, True), (0.97, True), (0.99, True)]

    bands = store.transaction(th.bands)
    assert list(bands) == ["greet", "tariffs"]
    assert [(b["n"], b["right"]) for b in bands["tariffs"]] == [(0, 0), (1, 0), (0, 0), (2, 0), (0, 0), (3, 3), (4, 4)]
    assert list(store.transaction(th.bands, "greet")) == ["greet"]

    suggestions = store.transaction(th.suggest, target=0.7, min_verdicts=5, global_threshold=0.8)
    assert [s.intent for s in suggestions] == ["tariffs", "greet"]  # most verdicts first
    tariffs, greet = suggestions
    # ≥ 0.91: 7 of 7 right, but a Wilson lower bound of 64.6 %: a 70 % target needs more verdicts.
    assert tariffs.action == "keep" and tariffs.evidence.low == pytest.approx(0.6457, abs=1e-4)
    lenient = store.transaction(th.suggest, target=0.6, min_verdicts=5, global_threshold=0.8)[0]
    assert lenient.action == "set" and lenient.threshold == 0.91
    assert (lenient.evidence.n, lenient.evidence.right) == (7, 7)
    assert lenient.evidence.low == pytest.approx(wilson(7, 7)[0])
    assert lenient.evidence.auto_send_share == pytest.approx(0.7)
    assert greet.action == "keep" and "only 1 verdict (5 needed)" in greet.reason


def test_approve_sets_the_threshold_audits_and_publishes(store, users) -> None:
    admin = users[Role.admin]
    seen: List[ThresholdsChanged] = []
    store.events.subscribe(ThresholdsChanged, seen.append)
    for confidence in (0.91, 0.93, 0.95, 0.97, 0.99):
        decided(store, users, confidence, "approve")
    settings = th.ThresholdSettings(target=0.5, min_verdicts=5, global_threshold=0.95)

    result = store.transaction(th.approve, admin, "tariffs", 0.9, settings)  # lower, with evidence
    assert result["threshold"] == 0.9 and result["approved_by"] == {"id": admin.id, "display_name": "Ada Admin"}
    assert result["evidence"]["n"] == 5 and result["evidence"]["interval"][1] == 1.0
    assert result["evidence"]["replaced"] == {"threshold": 0.95, "source": "global"}
    assert store.transaction(th.approved) == {"tariffs": 0.9}
    row = store.transaction(lambda s: s.get(IntentThreshold, "tariffs"))
    assert row.approved_by == admin.id and row.approved_at is not None and row.evidence["target"] == 0.5
    assert seen == [ThresholdsChanged("tariffs", 0.9)]

    store.transaction(th.approve, admin, "tariffs", 0.97, settings)  # raise: always allowed
    entries = store.transaction(lambda s: s.execute(
        select(AuditEntry).where(AuditEntry.target_type == "intent_threshold").order_by(AuditEntry.id)).scalars().all())
    assert [e.action for e in entries] == ["threshold.approve", "threshold.approve"]
    assert entries[0].actor_id == admin.id and entries[0].details["before"] is None
    assert entries[1].details["before"]["threshold"] == 0.9 and entries[1].details["after"]["threshold"] == 0.97
    assert entries[1].details["intent"] == "tariffs"

    removed = store.transaction(th.remove, admin, "tariffs")
    assert removed["removed"]["threshold"] == 0.97
    assert store.transaction(th.approved) == {}
    last = store.transaction(lambda s: s.execute(
        select(AuditEntry).where(AuditEntry.action == "threshold.remove")).scalar_one())
    assert last.details == {"intent": "tariffs", "before": removed["removed"], "after": None}
    assert seen[-1] == ThresholdsChanged("tariffs", None)
    with pytest.raises(NotFound):
        store.transaction(th.remove, admin, "tariffs")


def test_approve_refuses_a_lower_threshold_without_evidence_and_bad_input(store, users) -> None:
    admin = users[Role.admin]
    decided(store, users, 0.85, "approve")
    settings = th.ThresholdSettings(target=0.98, min_verdicts=30, global_threshold=0.8)
    with pytest.raises(InvalidInput, match="below the global threshold 0.80") as refused:
        store.transaction(th.approve, admin, "tariffs", 0.7, settings)
    assert (refused.value.details["evidence"]["n"], refused.value.details["evidence"]["right"]) == (1, 1)
    for intent, threshold in (("tariffs", 0.3), ("tariffs", 1.5), ("tariffs", "0.9"), ("tariffs", True),
                              ("tariffs", float("nan")), ("two words", 0.9), ("", 0.9), ("nlu_fallback", 0.9)):
        with pytest.raises(InvalidInput):
            store.transaction(th.approve, admin, intent, threshold, settings)
    assert store.transaction(th.approved) == {}
    assert store.transaction(lambda s: s.execute(select(AuditEntry).where(
        AuditEntry.target_type == "intent_threshold")).all()) == []


def test_overview_names_the_current_threshold_and_where_it_comes_from(store, users) -> None:
    decided(store, users, 0.9, "approve")
    decided(store, users, 0.9, "reject", intent="complaint")
    store.transaction(th.approve, users[Role.admin], "greet", 0.99, th.ThresholdSettings())
    settings = th.ThresholdSettings(target=0.98, min_verdicts=30, global_threshold=0.8,
                                    configured={"complaint": 0.9}, always_review=frozenset({"complaint"}))
    data = store.transaction(th.overview, settings)
    rows = {row["intent"]: row for row in data["intents"]}
    assert [row["intent"] for row in data["intents"]] == ["complaint", "tariffs", "greet"]
    assert (rows["tariffs"]["current"], rows["tariffs"]["current_source"]) == (0.8, "global")
    assert (rows["complaint"]["current"], rows["complaint"]["current_source"], rows["complaint"]["always_review"]) == (
        0.9, "configured", True)
    assert (rows["greet"]["current"], rows["greet"]["current_source"], rows["greet"]["verdicts"]) == (0.99, "approved", 0)
    assert rows["greet"]["approved"]["approved_by"]["display_name"] == "Ada Admin"
    assert rows["greet"]["suggestion"] is None and rows["tariffs"]["suggestion"]["action"] == "keep"
    assert data["approved"] == {"greet": 0.99} and data["target"] == 0.98 and len(data["bands"]) == len(th.BANDS)


# --------------------------------------------------------------------------- the worker's policy


def _answer(service: Service, sender: str, confidence: float) -> str:
    """One customer message through the worker's reply path: "sent" or "drafted"."""
    store = service.store
    stored = store.transaction(store_inbound, InboundMessage(channel="webchat", channel_message_id=f"m-{sender}",
                                                             sender_id=sender, text="wat kost stroom?"))
    store.transaction(claim_conversations, "w", 10)
    job = store.transaction(next_job, stored.conversation_id, "w")
    parse = {"text": "wat kost stroom?", "intent": {"name": "tariffs", "confidence": confidence},
             "intent_ranking": [{"name": "tariffs", "confidence": confidence}], "entities": []}
    reply = RasaReply([{"text": "Stroom kost 30 cent per kWh."}], parse, [])
    store.transaction(apply_reply, job, reply, service.worker.policy, "w", service.cases)
    queued = store.transaction(lambda s: s.execute(select(OutboxItem.id).where(
        OutboxItem.conversation_id == stored.conversation_id)).first())
    drafted = store.transaction(lambda s: s.execute(select(Draft.id).where(
        Draft.conversation_id == stored.conversation_id)).first())
    assert (queued is None) != (drafted is None)
    return "sent" if queued is not None else "drafted"


def test_an_approved_threshold_changes_the_workers_decision_at_once(tmp_path: Path) -> None:
    service = Service(make_config(tmp_path))
    try:
        admin = service.store.transaction(seed_users)[Role.admin]
        assert service.worker.policy is service.policy
        assert _answer(service, "a", 0.85) == "sent"  # global threshold 0.8
        service.store.transaction(th.approve, admin, "tariffs", 0.9, th.ThresholdSettings.from_config(service.config))
        assert service.policy.learned.snapshot() == {"tariffs": 0.9}  # the event, in this process
        assert _answer(service, "b", 0.85) == "drafted"
        draft = service.store.transaction(lambda s: s.execute(select(Draft).order_by(Draft.id.desc())).scalars().first())
        assert draft.reason == "confidence 0.85 below 0.90"
        assert _answer(service, "c", 0.92) == "sent"
        service.store.transaction(th.remove, admin, "tariffs")
        assert _answer(service, "d", 0.85) == "sent"
    finally:
        service.store.close()


def test_channel_and_public_thresholds_still_raise_an_approved_one() -> None:
    policy = DraftingPolicy.from_config({"threshold": 0.8, "intent_thresholds": {"tariffs": 0.95},
                                         "channel_thresholds": {"webhook": 0.9},
                                         "public_thresholds": {"facebook": 0.97}},
                                        learned=LearnedThresholds({"tariffs": 0.6}))
    assert policy.threshold_for("tariffs", "telegram") == 0.6  # replaces the configured 0.95
    assert policy.threshold_for("tariffs", "webhook") == 0.9
    assert policy.threshold_for("tariffs", "facebook", public=True) == 0.97
    assert policy.threshold_for("invoice", "telegram") == 0.8
    decide = dict(mode=Mode.bot, channel="telegram")
    assert policy.decide(intent="tariffs", confidence=0.65, **decide).auto_send
    assert not policy.decide(intent="tariffs", confidence=0.65, **{**decide, "channel": "webhook"}).auto_send
    policy.learned.set("tariffs", None)
    assert not policy.decide(intent="tariffs", confidence=0.9, **decide).auto_send  # configured 0.95 again


async def test_other_replicas_pick_approved_thresholds_up_within_the_refresh(store, users) -> None:
    other = DraftingPolicy.from_config({})  # another replica: no event reaches it
    await store.run(other.learned.load)
    assert other.learned.snapshot() == {} and other.learned.loaded_at is not None
    task = asyncio.create_task(other.learned.run(store, interval=0.02))
    try:
        await store.run(th.approve, users[Role.admin], "tariffs", 0.93, th.ThresholdSettings())
        for _ in range(200):
            if other.learned.get("tariffs") is not None:
                break
            await asyncio.sleep(0.01)
        assert other.threshold_for("tariffs", "telegram") == 0.93
        await store.run(th.remove, users[Role.admin], "tariffs")
        for _ in range(200):
            if other.learned.get("tariffs") is None:
                break
            await asyncio.sleep(0.01)
        assert other.threshold_for("tariffs", "telegram") == 0.8
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_a_refresh_does_not_undo_a_newer_local_change(store, users) -> None:
    store.transaction(th.approve, users[Role.admin], "greet", 0.95, th.ThresholdSettings())
    learned = LearnedThresholds()
    changed = []

    def approval_lands_meanwhile(_conn, _cursor, statement, *_args):  # while the refresh reads
        if "intent_thresholds" in statement and not changed:
            changed.append(True)
            learned.set("tariffs", 0.9)

    event.listen(store.engine, "after_cursor_execute", approval_lands_meanwhile)
    try:
        store.transaction(learned.load)
    finally:
        event.remove(store.engine, "after_cursor_execute", approval_lands_meanwhile)
    assert changed and learned.snapshot() == {"tariffs": 0.9}  # not replaced by the older read
    store.transaction(learned.load)  # the next refresh reads the store as it is
    assert learned.snapshot() == {"greet": 0.95}


# --------------------------------------------------------------------------- configuration


def test_learning_config_defaults_and_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(environ={}).learning == LearningConfig(
        target_precision=0.98, min_verdicts=30, holdout_share=0.2, min_holdout=20, max_drop=0.0,
        promotion="manual", swap_timeout_seconds=120.0)
    (tmp_path / "webcare.yml").write_text("learning:\n  target_precision: 0.95\n  min_verdicts: 50\n"
                                          "  promotion: auto\n  holdout_share: 0.3\n")
    config = load_config(environ={})
    assert (config.learning.target_precision, config.learning.min_verdicts) == (0.95, 50)
    assert (config.learning.promotion, config.learning.holdout_share) == ("auto", 0.3)
    settings = th.ThresholdSettings.from_config(config)
    assert (settings.target, settings.min_verdicts, settings.global_threshold) == (0.95, 50, 0.8)
    assert LearningConfig.parse({"target_precision": "0.9"}).target_precision == 0.9


@pytest.mark.parametrize("section, match", [
    ({"target_precision": 1.0}, "target_precision"),
    ({"target_precision": 1.2}, "target_precision"),
    ({"target_precision": 0.3}, "target_precision"),
    ({"target_precision": "high"}, "target_precision"),
    ({"target_precision": None}, "target_precision"),
    ({"min_verdicts": 0}, "min_verdicts"),
    ({"min_verdicts": 2.5}, "min_verdicts"),
    ({"min_verdicts": "many"}, "min_verdicts"),
    ({"min_verdicts": True}, "min_verdicts"),
    ({"target": 0.9}, "unknown"),
    ({"holdout_share": 0.95}, "holdout_share"),
    ({"holdout_share": -0.1}, "holdout_share"),
    ({"promotion": "sometimes"}, "promotion"),
    ({"min_holdout": 0}, "min_holdout"),
    ({"max_drop": 2}, "max_drop"),
    ({"swap_timeout_seconds": 0}, "swap_timeout_seconds"),
])
def test_bad_learning_settings(section: dict, match: str) -> None:
    with pytest.raises(SettingError, match=match):
        LearningConfig.parse(section)


def test_a_bad_learning_setting_in_the_file_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "webcare.yml").write_text("learning:\n  min_verdicts: 0\n")
    with pytest.raises(ConfigError, match=r"webcare.yml: learning.min_verdicts"):
        load_config(environ={})
    (tmp_path / "webcare.yml").write_text("learning:\n  targetprecision: 0.9\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(environ={})
