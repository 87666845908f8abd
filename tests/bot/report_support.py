"""A hand-made set of contacts whose every report figure is known (see EXPECTED in the tests).

Period under test: 2026-03-02 .. 2026-03-09 (end excluded; local dates, Europe/Amsterdam);
its previous period: 2026-02-23 .. 2026-03-02. The week of the weekly digest sent on Monday
2026-03-09 is the same period.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Optional
from zoneinfo import ZoneInfo

from bot.reporting.recurring_issues import Period
from bot.store.models import Case, ChannelIdentity, Contact, Conversation, Customer

ZONE = ZoneInfo("Europe/Amsterdam")
PERIOD = Period(dt.datetime(2026, 3, 2, tzinfo=ZONE), dt.datetime(2026, 3, 9, tzinfo=ZONE))
DIGEST_DAY = dt.date(2026, 3, 9)


def at(day: int, hour: int = 10, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=dt.timezone.utc)


def seed_contacts(session: Any) -> Dict[str, Any]:
    """Customers A–E and their contacts; returns ids by name."""
    ids: Dict[str, Any] = {}
    conversations: Dict[str, int] = {}
    for name in "ABCDE":
        customer = Customer(display_name=f"Klant {name}", language="nl", flags=[])
        session.add(customer)
        session.flush()
        identity = ChannelIdentity(customer_id=customer.id, channel="telegram", external_id=f"ext-{name}-{customer.id}")
        session.add(identity)
        session.flush()
        conversation = Conversation(customer_id=customer.id, identity_id=identity.id, channel="telegram",
                                    rasa_sender_id=f"telegram:ext-{name}-{customer.id}")
        session.add(conversation)
        session.flush()
        ids[name] = customer.id
        conversations[name] = conversation.id
    case = Case(conversation_id=conversations["A"], customer_id=ids["A"], trigger="complaint")
    session.add(case)
    session.flush()
    ids["case"] = case.id

    def add(key: str, who: str, when: dt.datetime, root_cause: Optional[str], handled_by: str, channel: str,
            frt: Optional[float], aht: Optional[float], repeated: bool = False, asked: bool = False,
            score: Optional[int] = None, comment: Optional[str] = None, case_id: Optional[int] = None) -> None:
        contact = Contact(
            conversation_id=conversations[who], customer_id=ids[who], channel=channel, language="nl",
            started_at=when, ended_at=when + dt.timedelta(seconds=aht or 10), customer_messages=2,
            root_cause=root_cause, root_cause_source="bot" if handled_by == "bot" else "agent",
            handled_by=handled_by, case_id=case_id, first_response_seconds=frt, handling_seconds=aht,
            repeated=repeated, csat_asked_at=when + dt.timedelta(hours=1) if asked else None,
            csat_score=score, csat_comment=comment,
            csat_answered_at=when + dt.timedelta(hours=1, minutes=2) if score is not None else None)
        session.add(contact)
        session.flush()
        ids[key] = contact.id

    # current period -----------------------------------------------------------------------
    # billing_amount: 4 contacts, customers A, B, C; A came back (c1 repeated by c2); B's repeat
    # (c3 -> c3b) falls after the period's end, but c3's flag counts.
    add("c1", "A", at(2), "billing_amount", "bot", "telegram", 2, 100, repeated=True, asked=True, score=2,
        comment="Weer een te hoge rekening")
    add("c2", "A", at(4), "billing_amount", "human", "telegram", 60, 600, asked=True, case_id=case.id)
    add("c3", "B", at(8, 12), "billing_amount", "bot", "webchat", 4, 200, repeated=True, asked=True, score=4)
    add("c4", "C", at(5), "billing_amount", "human", "webchat", 120, 900)
    # outage: 2 contacts of D
    add("o1", "D", at(3), "outage", "bot", "telegram", 1, 50, asked=True, score=5, comment="Snel verholpen")
    add("o2", "D", at(6), "outage", "bot", "webchat", 3, 70)
    # no root cause
    add("n1", "E", at(7), None, "human", "webhook", None, 30)
    # previous period ------------------------------------------------------------------------
    add("p1", "C", at(24, month=2), "billing_amount", "bot", "telegram", 5, 100)
    add("p2", "C", at(25, month=2), "billing_amount", "bot", "telegram", 5, 100)
    for i, day in enumerate((23, 24, 26, 28)):
        add(f"po{i}", "D", at(day, month=2), "outage", "bot", "telegram", 1, 10)
    add("pm", "E", at(27, month=2), "moving", "human", "webchat", 30, 300)
    # outside both periods -------------------------------------------------------------------
    add("c3b", "B", at(10), "billing_amount", "human", "webchat", 30, 300)  # after the end
    add("old", "A", at(20, month=2), "billing_amount", "bot", "telegram", 1, 10)  # before the previous period
    return ids
