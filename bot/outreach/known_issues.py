"""Known issues: while one is open, the bot answers matching questions with its text.

A process owner opens a known issue for a root cause with a customer-facing text in Dutch and
English. While it is open, a customer message whose intent suggests that root cause is
answered with that text, and the customer is offered to hear when it is fixed; "yes"
subscribes them (:func:`subscribe`).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.store import audit
from bot.customer_texts import customer_text
from bot.accounts import Actor
from bot.errors import InvalidInput, Conflict, NotFound
from bot.events import KnownIssuesChanged, emit
from bot.customers.opt_ins import may_contact, opt_in_offer
from bot.pipeline.outbox import enqueue
from bot.cases.root_causes import Taxonomy
from bot.pipeline.service_buttons import button_payload
from bot.store.models import (
    Contact,
    Conversation,
    KnownIssue,
    KnownIssueStatus,
    KnownIssueSubscription,
    OptIn,
    Purpose,
    User,
    utcnow,
)
from bot.outreach import broadcasts

logger = logging.getLogger(__name__)

CACHE_SECONDS = 5.0  # open issues are re-read at most this often per process
_cache: Tuple[float, Dict[str, Tuple[int, str, str]]] = (0.0, {})


def forget_cache() -> None:
    """Re-read open issues on the next message (after opening or resolving one here)."""
    global _cache
    _cache = (0.0, {})


def open_issues(session: Session) -> Dict[str, Tuple[int, str, str]]:
    """root cause -> (id, text_nl, text_en) of the newest open known issue, cached briefly."""
    global _cache
    loaded_at, issues = _cache
    if time.monotonic() - loaded_at < CACHE_SECONDS:
        return issues
    rows = session.execute(
        select(KnownIssue.root_cause, KnownIssue.id, KnownIssue.text_nl, KnownIssue.text_en)
        .where(KnownIssue.status == KnownIssueStatus.open).order_by(KnownIssue.id)
    ).all()
    issues = {root_cause: (issue_id, nl, en) for root_cause, issue_id, nl, en in rows}
    _cache = (time.monotonic(), issues)
    return issues


def known_issue_reply(session: Session, intent: Optional[str], language: Optional[str],
                      taxonomy: Taxonomy) -> Optional[List[Dict[str, Any]]]:
    """The known issue's text and the "tell me when it's fixed" offer, if one matches ``intent``."""
    if not intent:
        return None
    root_cause = taxonomy.by_intent.get(intent)
    issues = open_issues(session)
    if root_cause is None or root_cause not in issues:
        return None
    issue_id, text_nl, text_en = issues[root_cause]
    lang = "en" if language == "en" else "nl"
    return [
        {"text": text_en if lang == "en" else text_nl},
        {"text": customer_text("known_issue_offer", lang),
         "buttons": [
             {"title": customer_text("known_issue_yes", lang),
              "payload": button_payload("subscribe", known_issue=issue_id, answer="yes")},
             {"title": customer_text("known_issue_no", lang),
              "payload": button_payload("subscribe", known_issue=issue_id, answer="no")},
         ]},
    ]


def subscribe(session: Session, job: Any, args: Dict[str, Any]) -> bool:
    """The customer's answer to the offer: "yes" subscribes them (once), "no" is thanked."""
    conversation = session.get(Conversation, job.conversation_id)
    language = conversation.language or job.language_hint
    issue_id = args.get("known_issue")
    issue = session.get(KnownIssue, issue_id) if isinstance(issue_id, int) else None
    if issue is None:
        logger.warning("subscribe: unknown known issue %r", issue_id)
        return False
    if args.get("answer") != "yes":
        key, text = f"subscribe:{job.message_id}", customer_text("known_issue_declined", language)
    elif issue.status != KnownIssueStatus.open:
        key, text = f"subscribe:{job.message_id}", customer_text("known_issue_already_fixed", language)
    else:
        exists = session.execute(select(KnownIssueSubscription.id).where(
            KnownIssueSubscription.known_issue_id == issue.id,
            KnownIssueSubscription.customer_id == conversation.customer_id)).scalar_one_or_none()
        if exists is None:
            # A double click racing this one makes the unique key refuse the second insert: the
            # whole unit of work then fails and the worker retries it, finding the subscription.
            session.add(KnownIssueSubscription(known_issue_id=issue.id, customer_id=conversation.customer_id,
                                               identity_id=conversation.identity_id, subscribed_at=utcnow()))
        key, text = f"subscribe:{job.message_id}", customer_text("known_issue_subscribed", language)
        enqueue(session, key=key, channel=job.channel, recipient=job.recipient, payload={"text": text},
                source="bot", conversation_id=conversation.id, purpose=Purpose.notice)
        if not may_contact(session, conversation.customer_id):
            # Subscribing is consent for this one announcement; ask once more for the general opt-in.
            enqueue(session, key=f"{key}:opt_in", channel=job.channel, recipient=job.recipient,
                    payload=opt_in_offer(language), source="bot", conversation_id=conversation.id,
                    purpose=Purpose.notice)
        return True
    enqueue(session, key=key, channel=job.channel, recipient=job.recipient, payload={"text": text},
            source="bot", conversation_id=conversation.id, purpose=Purpose.notice)
    return True


# ------------------------------------------------------------------ managing known issues (console, API)

MAX_TITLE = 200
MAX_TEXT = 2000


def _required(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"'{field}' is required", field=field)
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(f"'{field}' is longer than {limit} characters", field=field)
    return value


def open_known_issue(session: Session, user: Optional[Actor], root_cause: Optional[str], title: Optional[str],
                     text_nl: Optional[str], text_en: Optional[str],
                     taxonomy: Taxonomy) -> Dict[str, Any]:
    """Open a known issue for ``root_cause`` (409 when one is open already)."""
    if not isinstance(root_cause, str) or root_cause not in taxonomy:
        raise InvalidInput("choose a root cause from the taxonomy", field="root_cause")
    values = {"title": _required(title, "title", MAX_TITLE), "text_nl": _required(text_nl, "text_nl", MAX_TEXT),
              "text_en": _required(text_en, "text_en", MAX_TEXT)}
    existing = session.execute(select(KnownIssue.id).where(
        KnownIssue.root_cause == root_cause, KnownIssue.status == KnownIssueStatus.open)).scalar_one_or_none()
    if existing is not None:
        raise Conflict(f"known issue {existing} is already open for this root cause; resolve it first",
                       known_issue_id=existing)
    issue = KnownIssue(root_cause=root_cause, status=KnownIssueStatus.open, opened_by=getattr(user, "id", None),
                       opened_at=utcnow(), **values)
    session.add(issue)
    try:
        # No SAVEPOINT (pysqlite would commit it on its own): a refused insert fails the whole
        # unit of work, which the caller's transaction rolls back; nothing else was written.
        session.flush()
    except IntegrityError:  # opened concurrently: the partial unique index said no
        raise Conflict("a known issue is already open for this root cause; resolve it first") from None
    audit.record(session, getattr(user, "id", None), "known_issue.open", "known_issue", issue.id,
                 {"root_cause": root_cause, "title": values["title"]})
    emit(session, KnownIssuesChanged(issue.id))
    return _summary(session, issue, taxonomy)


def _matching_contacts(session: Session, issue: KnownIssue) -> int:
    query = select(func.count(Contact.id)).where(Contact.root_cause == issue.root_cause,
                                                  Contact.started_at >= issue.opened_at)
    if issue.resolved_at is not None:
        query = query.where(Contact.started_at <= issue.resolved_at)
    return session.execute(query).scalar_one()


def _summary(session: Session, issue: KnownIssue, taxonomy: Taxonomy,
             subscribers: Optional[int] = None) -> Dict[str, Any]:
    cause = taxonomy.get(issue.root_cause)
    if subscribers is None:
        subscribers = session.execute(select(func.count(KnownIssueSubscription.id)).where(
            KnownIssueSubscription.known_issue_id == issue.id)).scalar_one()
    return {
        "id": issue.id, "root_cause": issue.root_cause,
        "root_cause_title": cause.title("en") if cause else issue.root_cause,
        "title": issue.title, "text_nl": issue.text_nl, "text_en": issue.text_en,
        "fix_text_nl": issue.fix_text_nl, "fix_text_en": issue.fix_text_en,
        "status": issue.status.value, "opened_at": issue.opened_at.isoformat(),
        "resolved_at": issue.resolved_at.isoformat() if issue.resolved_at else None,
        "subscribers": subscribers, "matching_contacts": _matching_contacts(session, issue),
    }


def list_known_issues(session: Session, taxonomy: Taxonomy) -> Dict[str, List[Dict[str, Any]]]:
    """Open issues (newest first) and resolved ones (most recently resolved first)."""
    counts = dict(session.execute(select(KnownIssueSubscription.known_issue_id, func.count(KnownIssueSubscription.id))
                                  .group_by(KnownIssueSubscription.known_issue_id)).all())
    issues = session.execute(select(KnownIssue).order_by(KnownIssue.id.desc())).scalars().all()
    rows = [_summary(session, issue, taxonomy, counts.get(issue.id, 0)) for issue in issues]
    return {"open": [r for r in rows if r["status"] == "open"],
            "resolved": sorted((r for r in rows if r["status"] == "resolved"),
                               key=lambda r: r["resolved_at"] or "", reverse=True)}


def known_issue_detail(session: Session, issue_id: int, taxonomy: Taxonomy) -> Dict[str, Any]:
    """One known issue with who opened/resolved it and its fix announcement's progress or report."""
    issue = session.get(KnownIssue, issue_id)
    if issue is None:
        raise NotFound(f"no known issue {issue_id}")
    detail = _summary(session, issue, taxonomy)
    names = dict(session.execute(select(User.id, User.display_name).where(
        User.id.in_([i for i in (issue.opened_by, issue.resolved_by) if i is not None]))).all())
    detail["opened_by"] = names.get(issue.opened_by)
    detail["resolved_by"] = names.get(issue.resolved_by)
    detail["opted_in_contacts"] = session.execute(
        select(func.count(func.distinct(Contact.customer_id)))
        .join(OptIn, OptIn.customer_id == Contact.customer_id)
        .where(Contact.root_cause == issue.root_cause, OptIn.proactive.is_(True))).scalar_one()
    broadcast_id = broadcasts.latest_broadcast(session, issue.id)
    detail["broadcast"] = broadcasts.report(session, broadcast_id) if broadcast_id is not None else None
    return detail
