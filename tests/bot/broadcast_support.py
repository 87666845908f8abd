"""Shared set-up for the known-issue, opt-in and broadcast tests: a real SQLite store, customers
on a signed-webhook channel, and a real rate-limited platform on loopback."""
from __future__ import annotations

import datetime as dt
import itertools
from typing import Any, Dict, List, Optional

from sqlalchemy import select

from bot.outreach.broadcasts import Broadcaster
from bot.pipeline.dispatcher import Dispatcher
from bot.store.database import Store
from bot.store.models import (
    ChannelIdentity,
    Contact,
    Conversation,
    Customer,
    KnownIssue,
    KnownIssueStatus,
    KnownIssueSubscription,
    Mode,
    OptIn,
    utcnow,
)

SECRET = "broadcast-test-secret"
CHANNEL = "hook"
_ids = itertools.count(1)


def add_customer(store: Store, *, language: str = "nl", subscribe_to: Optional[int] = None,
                 contacted_about: Optional[str] = None, contacted_days_ago: float = 1.0,
                 opt_in: Optional[bool] = None, opt_in_source: str = "button") -> Dict[str, Any]:
    """A customer with one identity and conversation on the hook channel, and what they did."""
    def unit(session: Any) -> Dict[str, Any]:
        n = next(_ids)
        external = f"cust-{n}"
        customer = Customer(display_name=f"Customer {n}", language=language, flags=[])
        session.add(customer)
        session.flush()
        identity = ChannelIdentity(customer_id=customer.id, channel=CHANNEL, external_id=external)
        session.add(identity)
        session.flush()
        conversation = Conversation(customer_id=customer.id, identity_id=identity.id, channel=CHANNEL,
                                    rasa_sender_id=f"{CHANNEL}:{external}", mode=Mode.bot, language=language,
                                    last_message_at=utcnow())
        session.add(conversation)
        session.flush()
        if subscribe_to is not None:
            session.add(KnownIssueSubscription(known_issue_id=subscribe_to, customer_id=customer.id,
                                               identity_id=identity.id))
        if contacted_about is not None:
            started = utcnow() - dt.timedelta(days=contacted_days_ago)
            session.add(Contact(conversation_id=conversation.id, customer_id=customer.id, channel=CHANNEL,
                                language=language, started_at=started, ended_at=started, customer_messages=1,
                                root_cause=contacted_about, root_cause_source="bot", handled_by="bot"))
        if opt_in is not None:
            session.add(OptIn(customer_id=customer.id, proactive=opt_in, source=opt_in_source))
        return {"customer_id": customer.id, "recipient": external, "conversation_id": conversation.id}
    return store.transaction(unit)


def open_issue(store: Store, root_cause: str = "billing_amount") -> int:
    def unit(session: Any) -> int:
        issue = KnownIssue(root_cause=root_cause, title="Bills too high", text_nl="We weten ervan: de rekening klopt niet.",
                           text_en="We know: the bill is wrong.", status=KnownIssueStatus.open)
        session.add(issue)
        session.flush()
        return issue.id
    return store.transaction(unit)


def rows(store: Store, model: Any) -> List[Any]:
    return store.transaction(lambda s: s.execute(select(model).order_by(model.id)).scalars().all())


async def run_until_done(store: Store, broadcaster: Broadcaster, dispatcher: Dispatcher,
                         timeout: float = 20.0) -> None:
    """Run the broadcaster and the dispatcher until no broadcast is sending any more."""
    import asyncio

    from bot.events import OutboxQueued
    from bot.outreach.broadcasts import active_broadcasts

    store.events.subscribe(OutboxQueued, lambda _: dispatcher.wake())  # as bot.service wires it
    tasks = [asyncio.create_task(broadcaster.run()), asyncio.create_task(dispatcher.run())]
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await store.run(active_broadcasts):
            assert loop.time() < deadline, "the broadcast did not finish in time"
            await asyncio.sleep(0.05)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
