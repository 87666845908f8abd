"""Corrections to review: agents' decisions on drafts as training examples, reviewed before training.

Every decided draft says something about the customer's message (``TrainingExample.source``):

* ``confirmed`` — approved as drafted: the bot's intent was right (``agent_intent`` = the draft's intent);
* ``picked`` — an alternative of the ranking was sent (its intent);
* ``corrected`` — an edited reply with the intent the agent labelled (an edit without a label says
  nothing about the intent and is skipped);
* ``rejected`` — the agent answered themselves; the intent they chose, if any (none: the reviewer
  relabels or drops it).

:func:`collect` turns decided drafts into examples once (the unique ``draft_id``; two replicas may
run it at the same moment). A process owner or an admin then accepts, relabels or drops each one
(:func:`review`, in bulk, all or nothing): an agent can be wrong, and one careless click must not
teach the bot a wrong answer for everyone. Only accepted and relabelled examples reach the
training data (:func:`training_examples`, :func:`write_training_data`), in an order that depends on
the store alone, so every replica writes the same file.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, aliased

from bot.accounts import Actor
from bot.cases.escalation import PROJECT
from bot.cases.root_causes import domain_intents
from bot.config import Config
from bot.errors import InvalidInput, NotFound
from bot.privacy import personal_data
from bot.review.decisions import clean_intent
from bot.review.feedback_export import FeedbackExample, example_text, to_nlu_yaml
from bot.store.audit import record
from bot.store.models import (
    Conversation,
    Draft,
    DraftStatus,
    ExampleStatus,
    Message,
    TrainingExample,
    User,
    utcnow,
)

logger = logging.getLogger(__name__)

ACTIONS = ("accept", "relabel", "drop")
AFTER = {"accept": ExampleStatus.accepted, "relabel": ExampleStatus.relabelled, "drop": ExampleStatus.dropped}
TRAINED = (ExampleStatus.accepted, ExampleStatus.relabelled)
# What a listing can show: one status, every reviewed one, or all.
FILTERS = tuple(s.value for s in ExampleStatus) + ("reviewed", "all")
# Intents of the domain no example may be trained on (Rasa's FallbackClassifier predicts it).
UNTRAINABLE = frozenset({"nlu_fallback"})
MAX_IDS = 1000  # one review at a time
MAX_LIMIT = 500
BATCH = 50  # rows per INSERT: 12 columns each, far below SQLite's variable limit
HEADER = ("# Reviewed corrections of the webcare console (bot/learning/corrections.py): generated, do not edit.\n"
          "# Accepted and relabelled examples only; the same store writes the same file.\n")


# --------------------------------------------------------------------------- the domain's intents


@lru_cache(maxsize=8)
def _intents_of(path: str, mtime: float) -> Tuple[str, ...]:
    return tuple(i for i in domain_intents(Path(path)) if i not in UNTRAINABLE)


def known_intents(domain_file: Path) -> Tuple[str, ...]:
    """The intents of ``domain_file`` an example may be labelled with (re-read when it changes)."""
    try:
        mtime = domain_file.stat().st_mtime
    except FileNotFoundError:
        raise InvalidInput(f"the domain file {domain_file} does not exist (config: cases.domain_file)") from None
    return _intents_of(str(domain_file), mtime)


def domain_file(config: Config) -> Path:
    """``cases.domain_file`` of ``config``: absolute, or the first that exists relative to the
    config file's folder, the working directory and the project (like the root-cause taxonomy)."""
    path = Path(config.cases.domain_file)
    if path.is_absolute():
        return path
    bases = ([config.source.parent] if config.source is not None else []) + [Path.cwd(), PROJECT]
    candidates = [base / path for base in bases]
    return next((c for c in candidates if c.exists()), candidates[0])


# --------------------------------------------------------------------------- collecting


def _language(conversation_language: Optional[str], nlu: Any, hint: Optional[str]) -> Optional[str]:
    if conversation_language:
        return conversation_language
    detected = nlu.get("language") if isinstance(nlu, dict) else None
    if isinstance(detected, dict):
        detected = detected.get("name")
    if isinstance(detected, str) and detected.strip():
        return detected.strip()[:8]
    return hint or None


def _source(status: DraftStatus, intent: Optional[str], corrected: Optional[str]) -> Optional[Tuple[str, Optional[str]]]:
    """``(source, agent_intent)`` of a decided draft, or ``None`` when it teaches nothing."""
    if status == DraftStatus.approved:
        return "confirmed", intent
    if status == DraftStatus.picked:
        return "picked", corrected
    if status == DraftStatus.edited:
        return ("corrected", corrected) if corrected else None
    if status == DraftStatus.rejected:
        return "rejected", corrected
    return None


def _insert_ignoring_duplicates(session: Session, rows: List[Dict[str, Any]]) -> int:
    """INSERT … ON CONFLICT (draft_id) DO NOTHING: another replica may have collected them first."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - webcare runs on SQLite and PostgreSQL
        return session.execute(insert(TrainingExample), rows).rowcount or 0
    statement = dialect_insert(TrainingExample).values(rows).on_conflict_do_nothing(index_elements=["draft_id"])
    return session.execute(statement).rowcount or 0


def collect(session: Session) -> int:
    """Make a pending example of every decided draft that has none yet; returns how many were made.

    Idempotent, and safe when two replicas run it at once (the unique ``draft_id``). Drafts whose
    customer message has no text (a photo, a sticker) are skipped; public comments are kept.
    """
    rows = session.execute(
        select(Draft.id, Draft.inbound_message_id, Draft.status, Draft.intent, Draft.confidence,
               Draft.corrected_intent, Draft.decided_by, Draft.decided_at,
               Message.text, Message.nlu, Message.language_hint, Conversation.language)
        .join(Message, Message.id == Draft.inbound_message_id)
        .join(Conversation, Conversation.id == Draft.conversation_id)
        .outerjoin(TrainingExample, TrainingExample.draft_id == Draft.id)
        .where(TrainingExample.id.is_(None),
               Draft.status.in_([DraftStatus.approved, DraftStatus.picked, DraftStatus.edited,
                                 DraftStatus.rejected]))
        .order_by(Draft.decided_at, Draft.id)
    ).all()
    now = utcnow()
    new: List[Dict[str, Any]] = []
    for (draft_id, message_id, status, intent, confidence, corrected, decided_by, decided_at,
         text, nlu, hint, conversation_language) in rows:
        verdict = _source(DraftStatus(status), intent, corrected)
        if verdict is None or not text or not text.strip():
            continue
        source, agent_intent = verdict
        new.append({
            "draft_id": draft_id, "message_id": message_id, "text": text, "source": source,
            "language": _language(conversation_language, nlu, hint), "bot_intent": intent,
            "bot_confidence": confidence, "agent_intent": agent_intent, "decided_by": decided_by,
            "decided_at": decided_at, "status": ExampleStatus.pending, "created_at": now,
        })
    made = 0
    for start in range(0, len(new), BATCH):
        made += _insert_ignoring_duplicates(session, new[start:start + BATCH])
    if made:
        logger.info("learning: %d new correction(s) to review", made)
    return made


# --------------------------------------------------------------------------- reading


def _iso(value: Optional[dt.datetime]) -> Optional[str]:
    return value.isoformat() if value is not None else None


def _status_filter(status: Optional[str]) -> List[ExampleStatus]:
    if status is None or status == "pending":
        return [ExampleStatus.pending]
    if status == "all":
        return list(ExampleStatus)
    if status == "reviewed":
        return [s for s in ExampleStatus if s != ExampleStatus.pending]
    try:
        return [ExampleStatus(status)]
    except ValueError:
        raise InvalidInput(f"status must be one of {', '.join(FILTERS)}, not {status!r}", field="status") from None


def examples(session: Session, status: Optional[str] = "pending", limit: int = 100,
             offset: int = 0) -> List[Dict[str, Any]]:
    """Examples with ``status`` (one of :data:`FILTERS`), oldest first, for a reviewer."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be from 1 to {MAX_LIMIT}, not {limit}", field="limit")
    if offset < 0:
        raise InvalidInput(f"offset must be 0 or more, not {offset}", field="offset")
    decider, reviewer = aliased(User), aliased(User)
    rows = session.execute(
        select(TrainingExample, decider.display_name, reviewer.display_name)
        .outerjoin(decider, decider.id == TrainingExample.decided_by)
        .outerjoin(reviewer, reviewer.id == TrainingExample.reviewed_by)
        .where(TrainingExample.status.in_(_status_filter(status)))
        .order_by(TrainingExample.id)
        .limit(limit).offset(offset)
    ).all()
    return [{
        "id": example.id,
        "draft_id": example.draft_id,
        "text": example.text,
        "language": example.language,
        "source": example.source,
        "bot_intent": example.bot_intent,
        "bot_confidence": example.bot_confidence,
        "agent_intent": example.agent_intent,
        "decided_by": decided_by,
        "decided_at": _iso(example.decided_at),
        "status": ExampleStatus(example.status).value,
        "intent": example.intent,
        "reviewed_by": reviewed_by,
        "reviewed_at": _iso(example.reviewed_at),
        # the text goes into the training data: a reviewer sees what personal data it holds
        "personal_data": list(dict.fromkeys(f.kind for f in personal_data.find(example.text))),
    } for example, decided_by, reviewed_by in rows]


def pending(session: Session, limit: int = 100, offset: int = 0) -> List[Dict[str, Any]]:
    """The examples waiting for a reviewer, oldest first."""
    return examples(session, "pending", limit, offset)


def counts(session: Session) -> Dict[str, int]:
    """How many examples there are per status (every status, zeros included)."""
    found = dict(session.execute(
        select(TrainingExample.status, func.count()).group_by(TrainingExample.status)).all())
    return {s.value: int(found.get(s, 0)) for s in ExampleStatus}


def reviewed_since(session: Session, since: dt.datetime) -> int:
    """Accepted and relabelled examples reviewed after ``since`` (the model in use was trained
    before them: the next retraining is the first to learn from them)."""
    return int(session.execute(select(func.count()).select_from(TrainingExample).where(
        TrainingExample.status.in_(TRAINED), TrainingExample.reviewed_at > since)).scalar_one())


# --------------------------------------------------------------------------- reviewing


def _ids(ids: Iterable[Any]) -> List[int]:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise InvalidInput("ids must be a list of example ids", field="ids")
    chosen: List[int] = []
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 2**62:
            raise InvalidInput(f"ids must be example ids (whole numbers), not {value!r}", field="ids")
        if value not in chosen:
            chosen.append(value)
    if not chosen:
        raise InvalidInput("choose at least one example", field="ids")
    if len(chosen) > MAX_IDS:
        raise InvalidInput(f"at most {MAX_IDS} examples at a time, not {len(chosen)}", field="ids")
    return chosen


def review(session: Session, reviewer: Actor, ids: Sequence[int], action: str, intent: Optional[str] = None,
           intents: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Accept (the agent's intent), relabel (``intent``) or drop the examples ``ids``: all or nothing.

    ``intents``: the intents an example may be trained on (the web layer passes the configured
    domain's, see :func:`known_intents`); ``None``: the shipped ``domain.yml``'s. Reviewing an
    example again is allowed (a reviewer changes their mind) and audited with before and after.
    Raises :class:`~bot.errors.InvalidInput` (nothing changed) for an unknown action, a relabel
    without a known intent, or an accept of an example without a known agent's intent;
    :class:`~bot.errors.NotFound` (nothing changed) when an id does not exist.
    """
    if action not in ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}, not {action!r}", field="action")
    chosen = _ids(ids)
    allowed = set(intents if intents is not None else known_intents(PROJECT / "domain.yml")) - UNTRAINABLE
    label = clean_intent(intent) if action == "relabel" else None
    if action == "relabel":
        if label is None:
            raise InvalidInput("choose the intent to relabel the examples with", field="intent")
        if label not in allowed:
            raise InvalidInput(f"{label!r} is not an intent of the domain", field="intent")
    found = {e.id: e for e in session.execute(
        select(TrainingExample).where(TrainingExample.id.in_(chosen))).scalars()}
    missing = [i for i in chosen if i not in found]
    if missing:
        raise NotFound(f"no example {', '.join(map(str, missing))}", ids=missing)
    if action == "accept":
        unlabelled = [i for i in chosen if not found[i].agent_intent]
        if unlabelled:
            raise InvalidInput(f"example {', '.join(map(str, unlabelled))} has no agent's intent to accept: "
                               "relabel or drop it", field="ids", ids=unlabelled)
        unknown = [i for i in chosen if found[i].agent_intent not in allowed]
        if unknown:
            raise InvalidInput(f"the agent's intent of example {', '.join(map(str, unknown))} is not an intent "
                               "of the domain: relabel or drop it", field="ids", ids=unknown)
    status = AFTER[action]
    now = utcnow()
    for example_id in chosen:
        example = found[example_id]
        before = {"status": ExampleStatus(example.status).value, "intent": example.intent}
        example.status = status
        example.intent = {"accept": example.agent_intent, "relabel": label, "drop": None}[action]
        example.reviewed_by = reviewer.id
        example.reviewed_at = now
        record(session, reviewer.id, f"training_example.{action}", "training_example", example.id,
               {"before": before, "after": {"status": status.value, "intent": example.intent},
                "agent_intent": example.agent_intent, "source": example.source})
    logger.info("learning: %s %s %d example(s)", reviewer.display_name, status.value, len(chosen))
    return {"action": action, "status": status.value, "intent": label, "count": len(chosen), "ids": chosen}


# --------------------------------------------------------------------------- training data


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


def held_out(text: str, share: float) -> bool:
    """Whether a reviewed text belongs to the held-out share (never trained on; the test a
    candidate model and the model in use are compared on). Decided by the text itself (a hash,
    case and spaces ignored, whatever its language: one model serves every language), so the
    same text is always on the same side and every replica splits alike."""
    if share <= 0:
        return False
    digest = hashlib.sha256(_key(text).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2 ** 32 < share


def _reviewed(session: Session) -> List[Tuple[Optional[str], str, str]]:
    """``(language, text, intent)`` per distinct reviewed text, oldest first (see :func:`training_examples`)."""
    rows = session.execute(
        select(TrainingExample.id, TrainingExample.text, TrainingExample.intent, TrainingExample.language)
        .where(TrainingExample.status.in_(TRAINED), TrainingExample.intent.isnot(None))
        .order_by(TrainingExample.reviewed_at, TrainingExample.id)
    ).all()
    latest: Dict[Tuple[Optional[str], str], Tuple[int, str, str]] = {}
    first_seen: Dict[Tuple[Optional[str], str], int] = {}
    for example_id, text, intent, language in rows:
        clean = example_text(text or "")
        if not clean or not intent:
            continue
        key = (language or None, _key(clean))
        first_seen[key] = min(first_seen.get(key, example_id), example_id)  # where the text first came
        previous = latest.get(key)
        if previous is None or previous[1] != intent:  # rows come in review order: the last label wins
            latest[key] = (example_id, intent, clean)  # (the first text of a label is kept as written)
    ordered = sorted(latest.items(), key=lambda item: first_seen[item[0]])
    return [(language, clean, intent) for (language, _), (_, intent, clean) in ordered]


def training_examples(session: Session, holdout_share: float = 0.0) -> Dict[Tuple[str, Optional[str]], List[str]]:
    """The accepted and relabelled examples as ``{(intent, language): [text, ...]}``, without
    the held-out share (:func:`held_out`).

    Texts are cleaned as in :func:`bot.review.feedback_export.example_text` (one line, no accidental
    entity annotation) and de-duplicated case- and whitespace-insensitively. When the same text
    (in the same language) was reviewed with different intents, the latest review wins: one text
    trained on two intents only confuses the model. Keys sorted, texts oldest first.
    """
    blocks: Dict[Tuple[str, Optional[str]], List[str]] = {}
    for language, clean, intent in _reviewed(session):
        if not held_out(clean, holdout_share):
            blocks.setdefault((intent, language), []).append(clean)
    return {key: blocks[key] for key in sorted(blocks, key=lambda k: (k[0], k[1] or ""))}


def held_out_examples(session: Session, holdout_share: float) -> List[Tuple[str, str, Optional[str]]]:
    """The held-out share of the reviewed examples: ``(text, intent, language)``, oldest first."""
    return [(clean, intent, language) for language, clean, intent in _reviewed(session)
            if held_out(clean, holdout_share)]


def training_yaml(session: Session, holdout_share: float = 0.0) -> Tuple[str, int]:
    """The reviewed examples (less the held-out share) as Rasa NLU YAML (version "3.1") and their number."""
    blocks = training_examples(session, holdout_share)
    flat = [FeedbackExample(text, intent, language, 0)
            for (intent, language), texts in blocks.items() for text in texts]
    return to_nlu_yaml(flat, header=HEADER), len(flat)


def write_training_data(session: Session, path: Path, holdout_share: float = 0.0) -> int:
    """Write the reviewed examples to ``path`` (a generated file outside ``data/`` in git, e.g.
    ``var/training/learned_nlu.yml``; the caller picks it); returns the number of examples.

    Atomic (a temporary file renamed over it), and untouched when the content is the same, so
    its modification time says when the training data last changed.
    """
    text, count = training_yaml(session, holdout_share)
    path = Path(path)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return count
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    logger.info("learning: wrote %d reviewed example(s) to %s", count, path)
    return count
