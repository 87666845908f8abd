"""The models and jobs in the store (bot/learning/registry.py) and the scores a candidate is
compared on (bot/retraining/job.py's pure part): no Rasa here."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import select, update

from bot.errors import Conflict, NotFound
from bot.learning import corrections, registry
from bot.retraining.job import Prediction, auto_send_threshold, changed, per_intent, scores
from bot.store.database import Store
from bot.store.models import AuditEntry, JobStatus, LearningJob, ModelStatus, TrainedModel, utcnow
from tests.bot.console_support import make_store

SETTINGS = registry.GateSettings(max_drop=0.0, min_holdout=20)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = make_store(tmp_path)
    yield store
    store.close()


def side(n=40, accuracy=0.9, coverage=0.7, stories=44, failed=0):
    return {"n": n, "accuracy": accuracy, "coverage": coverage, "stories": stories, "stories_failed": failed}


# --------------------------------------------------------------------------- the gate


def test_a_candidate_as_good_or_better_passes():
    passed, reasons = registry.gate(side(accuracy=0.92, coverage=0.7), side(), SETTINGS)
    assert passed and any("held-out accuracy 0.920" in r for r in reasons)


@pytest.mark.parametrize("candidate, why", [
    (side(accuracy=0.89), "held-out accuracy 0.890 is below"),
    (side(coverage=0.69), "auto-send coverage 0.690 is below"),
    (side(failed=1), "fails 1 test story"),
])
def test_a_candidate_worse_on_any_measure_fails(candidate, why):
    passed, reasons = registry.gate(candidate, side(), SETTINGS)
    assert not passed and any(why in r for r in reasons), reasons


def test_the_allowed_drop_is_configurable():
    assert registry.gate(side(accuracy=0.89), side(), registry.GateSettings(max_drop=0.02, min_holdout=20))[0]
    assert not registry.gate(side(accuracy=0.87), side(), registry.GateSettings(max_drop=0.02, min_holdout=20))[0]


def test_too_few_held_out_messages_leave_the_stories_to_decide():
    passed, reasons = registry.gate(side(n=5, accuracy=0.2), side(n=5), SETTINGS)
    assert passed and any("only 5 held-out" in r for r in reasons)
    assert not registry.gate(side(n=5, failed=2), side(n=5, failed=1), SETTINGS)[0]


def test_without_a_model_in_use_the_stories_decide():
    assert registry.gate(side(), None, SETTINGS)[0]


# --------------------------------------------------------------------------- scores


def p(truth, intent, confidence):
    return Prediction(f"{truth}-{intent}-{confidence}", truth, "nl", intent, confidence)


def test_the_auto_send_threshold_is_the_lowest_that_keeps_the_precision():
    predictions = [p("a", "a", 0.99), p("a", "a", 0.95), p("a", "b", 0.9), p("b", "b", 0.8), p("b", "b", 0.7)]
    assert auto_send_threshold(predictions, 1.0) == 0.95
    assert auto_send_threshold(predictions, 0.75) == 0.7  # 4 right of 5 at 0.7
    assert auto_send_threshold([p("a", "b", 0.9)], 0.98) is None
    result = scores(predictions, 0.98)
    assert result == {"n": 5, "accuracy": 0.8, "coverage": 0.4, "threshold": 0.95, "precision": 1.0}
    assert scores([], 0.98)["accuracy"] is None


def test_equal_confidences_are_one_threshold():
    predictions = [p("a", "a", 0.9), p("a", "b", 0.9), p("a", "a", 0.99)]
    assert auto_send_threshold(predictions, 0.9) == 0.99  # at 0.9 both go out, one of them wrong


def test_per_intent_and_the_changed_messages():
    old = [p("a", "b", 0.6), p("a", "a", 0.9), p("b", "b", 0.8)]
    new = [Prediction(old[0].text, "a", "nl", "a", 0.9), Prediction(old[1].text, "a", "nl", "a", 0.9),
           Prediction(old[2].text, "b", "nl", "a", 0.7)]
    rows = changed(new, old)
    assert [(r["in_use"], r["candidate"], r["fixed"], r["broken"]) for r in rows] == [
        ("b", "a", True, False), ("b", "a", False, True)]
    assert per_intent(new, old) == [{"intent": "a", "n": 2, "in_use": 1, "candidate": 2, "change": 1},
                                    {"intent": "b", "n": 1, "in_use": 1, "candidate": 0, "change": -1}]


def test_held_out_texts_are_chosen_by_the_text_the_same_way_everywhere():
    texts = [f"bericht nummer {n}" for n in range(400)]
    chosen = [t for t in texts if corrections.held_out(t, 0.2)]
    assert 50 < len(chosen) < 110  # about a fifth
    assert corrections.held_out("Bericht  NUMMER 1", 0.2) == corrections.held_out("bericht nummer 1", 0.2)
    assert not any(corrections.held_out(t, 0.0) for t in texts)


# --------------------------------------------------------------------------- models and jobs


def test_adopt_records_what_the_replicas_serve_once(store):
    first = store.transaction(registry.adopt, "a.tar.gz")
    assert store.transaction(registry.adopt, "a.tar.gz") == first
    second = store.transaction(registry.adopt, "b.tar.gz")  # `webcare run` retrained it by hand
    statuses = store.transaction(lambda s: {m.file_name: ModelStatus(m.status) for m in
                                            s.execute(select(TrainedModel)).scalars()})
    assert statuses == {"a.tar.gz": ModelStatus.retired, "b.tar.gz": ModelStatus.in_use}
    assert store.transaction(registry.in_use_file) == second
    assert store.transaction(lambda s: registry.rollback_target(s).file_name) == "a.tar.gz"


def candidate(store, compared_with: int, name: str, passed: bool = True) -> int:
    job = store.transaction(lambda s: registry.start_job(s, None, False).id)
    evaluation = {"in_use": {"model_id": compared_with}, "gate": {"passed": passed, "reasons": ["measured"]}}
    model_id = store.transaction(registry.add_candidate, job, name, 3, 50.0, evaluation, passed)
    store.transaction(registry.finish_job, job)
    return model_id


def test_promotion_bookkeeping_retires_the_previous_model(store):
    first, _ = store.transaction(registry.adopt, "a.tar.gz")
    good = candidate(store, first, "c.tar.gz")
    found, current = store.transaction(lambda s: tuple(m.file_name for m in registry.promotable(s, good)))
    assert (found, current) == ("c.tar.gz", "a.tar.gz")
    store.transaction(registry.mark_promoted, None, good, {"replicas": []})
    assert store.transaction(registry.in_use_file) == (good, "c.tar.gz")
    assert store.transaction(lambda s: registry.rollback_target(s).file_name) == "a.tar.gz"
    with pytest.raises(Conflict, match="already in use"):
        store.transaction(registry.promotable, good)
    with pytest.raises(NotFound):
        store.transaction(registry.promotable, 999)


def test_a_rollback_never_returns_to_the_model_rolled_back_from(store):
    a, _ = store.transaction(registry.adopt, "a.tar.gz")
    b = candidate(store, a, "b.tar.gz")
    store.transaction(registry.mark_promoted, None, b, {})
    c = candidate(store, b, "c.tar.gz")
    store.transaction(registry.mark_promoted, None, c, {})
    target, current = store.transaction(lambda s: tuple(m.id for m in registry.rollback_pair(s)))
    assert (target, current) == (b, c)
    store.transaction(registry.mark_promoted, None, b, {}, True)  # roll back c → b
    assert store.transaction(lambda s: registry.rollback_target(s).id) == a  # the next one goes to a, not c
    store.transaction(registry.mark_promoted, None, a, {}, True)  # b → a
    with pytest.raises(Conflict, match="no previous model"):
        store.transaction(registry.rollback_pair)  # a replaced nothing
    rows = store.transaction(lambda s: {m.file_name: (ModelStatus(m.status).value, m.rolled_back_at is not None)
                                        for m in s.execute(select(TrainedModel)).scalars()})
    assert rows == {"a.tar.gz": ("in_use", False), "b.tar.gz": ("retired", True), "c.tar.gz": ("retired", True)}


def test_a_stale_comparison_or_a_changed_model_in_use_is_refused(store):
    a, _ = store.transaction(registry.adopt, "a.tar.gz")
    b = candidate(store, a, "b.tar.gz")
    c = candidate(store, a, "c.tar.gz")
    with pytest.raises(Conflict, match="model in use changed"):
        store.transaction(registry.promotable, b, a + 100)  # the page showed another model in use
    store.transaction(registry.mark_promoted, None, b, {})
    with pytest.raises(Conflict, match="compared with another model"):
        store.transaction(registry.promotable, c)  # compared with a, but b serves now
    store.transaction(registry.promotable, a, b)  # a retired model may serve again (it did before)


def test_one_swap_at_a_time_and_an_expired_claim_is_free(store):
    store.transaction(registry.claim_swap, "one", 60)
    with pytest.raises(Conflict, match="another promotion or rollback"):
        store.transaction(registry.claim_swap, "two", 60)
    store.transaction(registry.release_swap, "two")  # not its claim: nothing happens
    with pytest.raises(Conflict):
        store.transaction(registry.claim_swap, "two", 60)
    store.transaction(registry.release_swap, "one")
    store.transaction(registry.claim_swap, "two", 0)  # expires at once (a crashed holder)
    store.transaction(registry.claim_swap, "three", 60)


def test_only_one_model_in_use_by_the_store_itself(store):
    from sqlalchemy.exc import IntegrityError

    store.transaction(registry.adopt, "a.tar.gz")
    with pytest.raises(IntegrityError):
        store.transaction(lambda s: s.add(TrainedModel(file_name="x.tar.gz", status=ModelStatus.in_use, examples=0)))


def test_one_job_at_a_time_and_a_dead_one_is_failed(store):
    first = store.transaction(lambda s: registry.start_job(s, None, False).id)
    with pytest.raises(Conflict, match=f"job {first} is still running"):
        store.transaction(registry.start_job, None, False)
    old = utcnow() - registry.STALE_AFTER - dt.timedelta(seconds=1)
    store.transaction(lambda s: s.execute(update(LearningJob).values(heartbeat_at=old)))
    second = store.transaction(lambda s: registry.start_job(s, None, True).id)  # the dead one no longer blocks
    jobs = store.transaction(registry.jobs)
    assert [(j["id"], j["status"]) for j in jobs] == [(second, "running"), (first, "failed")]
    assert "stopped answering" in jobs[1]["error"]
    assert store.transaction(registry.beat, first, "training", 0.5) is False  # the dead one learns it ended
    assert store.transaction(registry.finish_job, first) is False  # and cannot flip itself to succeeded
    assert store.transaction(registry.job, first)["status"] == "failed"
    assert store.transaction(registry.finish_job, second) is True
    assert store.transaction(registry.job, second)["progress"] == 1.0
    actions = store.transaction(lambda s: [a.action for a in s.execute(
        select(AuditEntry).where(AuditEntry.target_type == "learning_job")).scalars()])
    assert actions == ["learning_job.start", "learning_job.stale", "learning_job.start", "learning_job.done"]


def test_the_estimate_is_the_median_of_the_last_jobs(store):
    assert store.transaction(registry.estimate) == registry.DEFAULT_ESTIMATE_SECONDS
    for seconds in (60, 80, 200):
        job = store.transaction(lambda s: registry.start_job(s, None, False).id)
        store.transaction(registry.finish_job, job)
        start = utcnow() - dt.timedelta(seconds=seconds)
        store.transaction(lambda s: s.execute(update(LearningJob).where(LearningJob.id == job).values(
            started_at=start, finished_at=start + dt.timedelta(seconds=seconds))))
    assert store.transaction(registry.estimate) == 80.0
    assert store.transaction(lambda s: s.execute(select(LearningJob.status)).scalars().all()) == [
        JobStatus.succeeded] * 3
