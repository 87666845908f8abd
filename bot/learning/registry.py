"""The trained models and the retraining jobs in the store: which model serves, which one a
rollback returns to, how far a job is, and the gate a candidate must pass.

Every service replica reads the same rows, so the console's progress bar and "in use" are the
same everywhere. The Rasa side (training, evaluating, loading a model into every replica) is
:mod:`bot.retraining.job` and :mod:`bot.retraining.promotion`; this module knows no Rasa and no HTTP.

A model's life: a job trains a *candidate* and evaluates it against the model *in use*; the gate
(:func:`gate`) rejects it (``rejected``: it never serves) or lets it wait for promotion
(``candidate``). Promoting makes it ``in_use`` and the one before ``retired``; a rollback
promotes the newest retired model again. Every change is audited.
"""
from __future__ import annotations

import datetime as dt
import logging
import statistics
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.accounts import Actor
from bot.errors import Conflict, NotFound
from bot.store.audit import record
from bot.store.models import JobStatus, LearningJob, ModelStatus, SwapClaim, TrainedModel, User, utcnow

logger = logging.getLogger(__name__)

STALE_AFTER = dt.timedelta(minutes=3)  # a running job whose heartbeat is older has died
DEFAULT_ESTIMATE_SECONDS = 120.0  # the first job's estimate (training ~60 s, evaluation ~40 s)
ESTIMATE_FROM = 5  # the last jobs whose durations make the estimate


# --------------------------------------------------------------------------- the gate


@dataclass(frozen=True)
class GateSettings:
    """What "not worse" means (``learning`` in the configuration)."""

    max_drop: float  # held-out accuracy and auto-send coverage may be this much lower
    min_holdout: int  # fewer held-out messages: they do not decide

    @classmethod
    def from_config(cls, learning: Any) -> "GateSettings":
        """From the ``learning`` section (:class:`bot.config.LearningConfig`)."""
        return cls(max_drop=learning.max_drop, min_holdout=learning.min_holdout)


def gate(candidate: Mapping[str, Any], in_use: Optional[Mapping[str, Any]],
         settings: GateSettings) -> Tuple[bool, List[str]]:
    """``(passed, reasons)`` for a candidate's scores against the model in use's.

    Scores: ``stories`` / ``stories_failed`` (the test stories), ``n`` / ``accuracy`` /
    ``coverage`` (the held-out verified messages). The candidate fails when it fails more test
    stories than the model in use or one the model in use passes, or, with at least ``min_holdout`` held-out messages, scores more
    than ``max_drop`` lower on accuracy or on auto-send coverage at the target precision.
    Without a model in use to compare with, a candidate that passes every test story passes.
    """
    reasons: List[str] = []
    passed = True
    failed_now = int(candidate.get("stories_failed") or 0)
    failed_before = int((in_use or {}).get("stories_failed") or 0) if in_use else 0
    newly_failed = sorted(set(candidate.get("failed_stories") or [])
                          - set((in_use or {}).get("failed_stories") or []))
    if candidate.get("stories") is None:
        reasons.append("no test stories to run")
    elif failed_now > failed_before or newly_failed:
        passed = False
        reasons.append(f"fails {failed_now} test stor{'y' if failed_now == 1 else 'ies'} "
                       f"(the model in use: {failed_before})"
                       + (f", newly: {', '.join(newly_failed[:5])}" if newly_failed else ""))
    else:
        reasons.append(f"test stories: {failed_now} failed (the model in use: {failed_before})")
    n = int(candidate.get("n") or 0)
    if in_use is None:
        reasons.append("no model in use to compare with")
    elif n < settings.min_holdout:
        reasons.append(f"only {n} held-out verified message(s) (the gate compares from {settings.min_holdout})")
    else:
        for key, label in (("accuracy", "held-out accuracy"), ("coverage", "auto-send coverage")):
            now, before = float(candidate.get(key) or 0.0), float(in_use.get(key) or 0.0)
            if now + settings.max_drop + 1e-9 < before:
                passed = False
                reasons.append(f"{label} {now:.3f} is below the model in use's {before:.3f}")
            else:
                reasons.append(f"{label} {now:.3f} (the model in use: {before:.3f})")
    return passed, reasons


# --------------------------------------------------------------------------- views


def _iso(value: Optional[dt.datetime]) -> Optional[str]:
    return value.isoformat() if value else None


def _names(session: Session, ids: Sequence[Optional[int]]) -> Dict[int, str]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    return dict(session.execute(select(User.id, User.display_name).where(User.id.in_(wanted))).all())


def model_view(model: TrainedModel, names: Mapping[int, str]) -> Dict[str, Any]:
    """A model as the API and the console show it."""
    return {
        "id": model.id, "file": model.file_name, "status": ModelStatus(model.status).value,
        "created_at": _iso(model.created_at), "training_seconds": model.training_seconds,
        "examples": model.examples, "gate_passed": model.gate_passed, "evaluation": model.evaluation,
        "served_from": _iso(model.served_from), "promoted_at": _iso(model.served_from),
        "promoted_by": names.get(model.promoted_by) if model.promoted_by else None,
        "previous_id": model.previous_id, "rolled_back_at": _iso(model.rolled_back_at),
    }


def job_view(job: LearningJob, names: Mapping[int, str], now: Optional[dt.datetime] = None) -> Dict[str, Any]:
    """A job as the API and the console's progress bar show it."""
    end = job.finished_at or now or utcnow()
    elapsed = max(0.0, (end - job.started_at).total_seconds())
    remaining = None
    if job.status == JobStatus.running and job.estimate_seconds:
        remaining = max(0.0, job.estimate_seconds - elapsed)
    return {
        "id": job.id, "status": JobStatus(job.status).value, "phase": job.phase,
        "progress": round(job.progress, 3), "elapsed_seconds": round(elapsed, 1),
        "estimate_seconds": job.estimate_seconds, "remaining_seconds": None if remaining is None else round(remaining, 1),
        "started_at": _iso(job.started_at), "finished_at": _iso(job.finished_at),
        "training_seconds": job.training_seconds, "candidate_id": job.candidate_id,
        "auto_promote": job.auto_promote, "error": job.error,
        "started_by": names.get(job.started_by) if job.started_by else None,
    }


def models(session: Session, limit: int = 20) -> Dict[str, Any]:
    """``{"in_use": model | None, "models": [newest first]}``."""
    rows = session.execute(select(TrainedModel).order_by(TrainedModel.id.desc()).limit(limit)).scalars().all()
    current = in_use(session)
    names = _names(session, [m.promoted_by for m in rows] + [current.promoted_by if current else None])
    return {"in_use": model_view(current, names) if current else None,
            "models": [model_view(m, names) for m in rows]}


def model(session: Session, model_id: int) -> Dict[str, Any]:
    """One model (404 when unknown)."""
    found = session.get(TrainedModel, model_id)
    if found is None:
        raise NotFound(f"no model {model_id}")
    return model_view(found, _names(session, [found.promoted_by]))


def jobs(session: Session, limit: int = 20) -> List[Dict[str, Any]]:
    """The latest jobs, newest first (stale running ones are failed first)."""
    fail_stale(session)
    rows = session.execute(select(LearningJob).order_by(LearningJob.id.desc()).limit(limit)).scalars().all()
    names = _names(session, [j.started_by for j in rows])
    return [job_view(j, names) for j in rows]


def job(session: Session, job_id: int) -> Dict[str, Any]:
    """One job (404 when unknown)."""
    fail_stale(session)
    found = session.get(LearningJob, job_id)
    if found is None:
        raise NotFound(f"no retraining job {job_id}")
    return job_view(found, _names(session, [found.started_by]))


# --------------------------------------------------------------------------- models


def in_use(session: Session) -> Optional[TrainedModel]:
    """The model every Rasa replica serves (as far as the store knows)."""
    return session.execute(
        select(TrainedModel).where(TrainedModel.status == ModelStatus.in_use)
        .order_by(TrainedModel.served_from.desc(), TrainedModel.id.desc()).limit(1)
    ).scalars().first()


def rollback_target(session: Session) -> Optional[TrainedModel]:
    """The model the one in use replaced (a rollback never returns to a model rolled back from)."""
    current = in_use(session)
    if current is None or current.previous_id is None:
        return None
    previous = session.get(TrainedModel, current.previous_id)
    if previous is None or previous.rolled_back_at is not None:
        return None
    return previous


def in_use_file(session: Session) -> Optional[Tuple[int, str]]:
    """``(id, file name)`` of the model in use, if the store knows one."""
    current = in_use(session)
    return (current.id, current.file_name) if current else None


def adopt(session: Session, file_name: str) -> Tuple[int, str]:
    """Record ``file_name`` as the model in use when the replicas serve it and the store says
    otherwise (a model trained by ``webcare train`` or ``webcare run``); the first retraining
    compares its candidate with it."""
    current = in_use(session)
    if current is not None and current.file_name == file_name:
        return current.id, current.file_name
    if current is not None:
        current.status = ModelStatus.retired
        session.flush()  # (one model in use: the unique index)
    found = session.execute(select(TrainedModel).where(TrainedModel.file_name == file_name)).scalars().first()
    if found is None:
        found = TrainedModel(file_name=file_name, status=ModelStatus.in_use, examples=0, served_from=utcnow())
        session.add(found)
    else:
        found.status, found.served_from = ModelStatus.in_use, utcnow()
    found.previous_id = current.id if current is not None else found.previous_id
    session.flush()
    record(session, None, "model.adopt", "model", found.id,
           {"file": file_name, "store_said": current.file_name if current else None})
    return found.id, found.file_name


def add_candidate(session: Session, job_id: int, file_name: str, examples: int, training_seconds: float,
                  evaluation: Dict[str, Any], passed: bool) -> int:
    """Register a job's evaluated model (its id): a ``candidate`` when its gate passed, else ``rejected``."""
    candidate = TrainedModel(
        file_name=file_name, status=ModelStatus.candidate if passed else ModelStatus.rejected,
        examples=examples, training_seconds=training_seconds, evaluation=evaluation, gate_passed=passed)
    session.add(candidate)
    session.flush()
    found = session.get(LearningJob, job_id)
    if found is not None:
        found.candidate_id = candidate.id
    record(session, None, "model.evaluated", "model", candidate.id,
           {"job": job_id, "file": file_name, "gate_passed": passed,
            "reasons": (evaluation.get("gate") or {}).get("reasons", [])})
    return candidate.id


def promotable(session: Session, model_id: int,
               expected_in_use: Optional[int] = None) -> Tuple[TrainedModel, Optional[TrainedModel]]:
    """``(model, the one in use now)`` for a promotion of ``model_id``; refuses what must not serve:
    a rejected model, the one in use, a candidate evaluated against another model than the one in
    use now (its comparison is stale), or any promotion when the model in use is no longer
    ``expected_in_use`` (someone else promoted or rolled back meanwhile)."""
    found = session.get(TrainedModel, model_id)
    if found is None:
        raise NotFound(f"no model {model_id}")
    current = in_use(session)
    _expect(current, expected_in_use)
    status = ModelStatus(found.status)
    if status == ModelStatus.in_use:
        raise Conflict(f"model {model_id} is already in use")
    if status == ModelStatus.rejected:
        raise Conflict(f"model {model_id} did not pass the gate ({'; '.join(_reasons(found))}); "
                       "it is never promoted")
    compared_with = ((found.evaluation or {}).get("in_use") or {}).get("model_id")
    if status == ModelStatus.candidate and current is not None and compared_with != current.id:
        raise Conflict(f"model {model_id} was compared with another model than the one in use now "
                       f"(model {current.id}); retrain to compare again")
    return found, current


def rollback_pair(session: Session, expected_in_use: Optional[int] = None) -> Tuple[TrainedModel, TrainedModel]:
    """``(the rollback target, the model in use)``; 409 when there is nothing to roll back to."""
    current = in_use(session)
    _expect(current, expected_in_use)
    target = rollback_target(session)
    if current is None or target is None:
        raise Conflict("there is no previous model to roll back to")
    return target, current


def _expect(current: Optional[TrainedModel], expected_in_use: Optional[int]) -> None:
    if expected_in_use is not None and (current is None or current.id != expected_in_use):
        raise Conflict(f"the model in use changed (now {current.id if current else 'none'}, "
                       f"not {expected_in_use}): reload and decide again")


def _reasons(found: TrainedModel) -> List[str]:
    return list(((found.evaluation or {}).get("gate") or {}).get("reasons", []))


def mark_promoted(session: Session, actor: Optional[Actor], model_id: int, swap: Dict[str, Any],
                  rollback: bool = False) -> TrainedModel:
    """Record that every replica now serves ``model_id``: the one before is retired (and, after a
    rollback, never a rollback target again); a promoted model remembers what it replaced."""
    found = session.get(TrainedModel, model_id)
    if found is None:
        raise NotFound(f"no model {model_id}")
    previous = in_use(session)
    now = utcnow()
    if previous is not None and previous.id != model_id:
        previous.status = ModelStatus.retired
        if rollback:
            previous.rolled_back_at = now
        session.flush()  # (one model in use: the unique index)
    if not rollback:
        found.previous_id = previous.id if previous is not None and previous.id != model_id else found.previous_id
        found.rolled_back_at = None
    found.status = ModelStatus.in_use
    found.served_from = now
    found.promoted_by = actor.id if actor else None
    action = "model.rollback" if rollback else "model.promote"
    record(session, actor.id if actor else None, action, "model", found.id,
           {"file": found.file_name, "previous": previous.file_name if previous else None, "swap": swap})
    logger.info("learning: %s model %s (%s)", action, found.id, found.file_name)
    return found


def record_swap_failure(session: Session, actor: Optional[Actor], model_id: int, swap: Dict[str, Any]) -> None:
    """Audit a promotion that did not happen (the replicas were put back)."""
    record(session, actor.id if actor else None, "model.promote_failed", "model", model_id, {"swap": swap})


SWAP_CLAIM_ID = 1


def claim_swap(session: Session, holder: str, seconds: float) -> None:
    """Claim the one swap slot for ``seconds`` (409 while another promotion or rollback holds it)."""
    now = utcnow()
    claimed = session.execute(
        update(SwapClaim).where(SwapClaim.id == SWAP_CLAIM_ID,
                                or_(SwapClaim.until.is_(None), SwapClaim.until < now))
        .values(holder=holder, until=now + dt.timedelta(seconds=seconds))).rowcount
    if claimed != 1:
        raise Conflict("another promotion or rollback is loading a model into the Rasa replicas; "
                       "try again when it is done")


def release_swap(session: Session, holder: str) -> None:
    """Give the swap slot back (only its holder can)."""
    session.execute(update(SwapClaim).where(SwapClaim.id == SWAP_CLAIM_ID, SwapClaim.holder == holder)
                    .values(holder=None, until=None))


# --------------------------------------------------------------------------- jobs


def estimate(session: Session) -> float:
    """Seconds a job takes: the median of the last succeeded ones, else a first guess."""
    rows = session.execute(
        select(LearningJob.started_at, LearningJob.finished_at)
        .where(LearningJob.status == JobStatus.succeeded, LearningJob.finished_at.isnot(None))
        .order_by(LearningJob.id.desc()).limit(ESTIMATE_FROM)
    ).all()
    durations = [(end - start).total_seconds() for start, end in rows]
    return round(statistics.median(durations), 1) if durations else DEFAULT_ESTIMATE_SECONDS


def fail_stale(session: Session, now: Optional[dt.datetime] = None) -> int:
    """Fail running jobs whose process stopped beating (killed, or its replica died); each once,
    even when two replicas look at the same moment."""
    now = now or utcnow()
    cutoff = now - STALE_AFTER
    stale = session.execute(select(LearningJob.id, LearningJob.phase).where(
        LearningJob.status == JobStatus.running, LearningJob.heartbeat_at < cutoff)).all()
    failed = 0
    for job_id, phase in stale:
        changed = session.execute(update(LearningJob).where(
            LearningJob.id == job_id, LearningJob.status == JobStatus.running, LearningJob.heartbeat_at < cutoff)
            .values(status=JobStatus.failed, finished_at=now,
                    error=f"the job stopped answering during {phase} (its process ended)")).rowcount
        if changed == 1:
            failed += 1
            record(session, None, "learning_job.stale", "learning_job", job_id, {"phase": phase})
    return failed


def start_job(session: Session, actor: Optional[Actor], auto_promote: bool) -> LearningJob:
    """A new running job (409 while another one runs: one retraining at a time, which a unique
    index holds across replicas)."""
    fail_stale(session)
    running = session.execute(select(LearningJob.id).where(LearningJob.status == JobStatus.running)).scalars().first()
    if running is not None:
        raise Conflict(f"retraining job {running} is still running")
    found = LearningJob(status=JobStatus.running, phase="queued", progress=0.0, estimate_seconds=estimate(session),
                        started_by=actor.id if actor else None, auto_promote=auto_promote)
    session.add(found)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("another retraining job started at the same moment") from None
    record(session, actor.id if actor else None, "learning_job.start", "learning_job", found.id,
           {"auto_promote": auto_promote})
    return found


def job_settings(session: Session, job_id: int) -> Tuple[float, bool, Optional[User]]:
    """``(estimate_seconds, auto_promote, who started it)`` of a job."""
    found = session.get(LearningJob, job_id)
    if found is None:
        raise NotFound(f"no retraining job {job_id}")
    starter = session.get(User, found.started_by) if found.started_by else None
    return found.estimate_seconds or DEFAULT_ESTIMATE_SECONDS, found.auto_promote, starter


def beat(session: Session, job_id: int, phase: str, progress: float, **fields: Any) -> bool:
    """The job is alive: its phase and progress (0..1), and any of its other fields. False when
    the job no longer runs (failed as stale meanwhile): its process must stop."""
    values = {"phase": phase, "progress": max(0.0, min(1.0, progress)), "heartbeat_at": utcnow(), **fields}
    return session.execute(update(LearningJob).where(LearningJob.id == job_id,
                                                     LearningJob.status == JobStatus.running)
                           .values(**values)).rowcount == 1


def finish_job(session: Session, job_id: int, error: Optional[str] = None) -> bool:
    """The running job ended: succeeded, or failed with ``error``. False when it had already
    ended (a job failed as stale stays failed)."""
    now = utcnow()
    values: Dict[str, Any] = {"status": JobStatus.failed if error else JobStatus.succeeded,
                              "finished_at": now, "heartbeat_at": now, "error": error}
    if not error:
        values.update(phase="done", progress=1.0)
    ended = session.execute(update(LearningJob).where(LearningJob.id == job_id,
                                                      LearningJob.status == JobStatus.running)
                            .values(**values)).rowcount == 1
    if ended:
        candidate = session.execute(select(LearningJob.candidate_id).where(LearningJob.id == job_id)).scalar()
        record(session, None, "learning_job.failed" if error else "learning_job.done", "learning_job", job_id,
               {"error": error} if error else {"candidate": candidate})
    return ended
