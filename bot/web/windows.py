"""The messaging window of a conversation, as the console shows it to an agent."""
from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Optional

from aiohttp import web

from bot.pipeline.messaging_window import closes_at
from bot.store.models import utcnow
from bot.web.keys import CONNECTORS_KEY


def window_state(app: web.Application, channel: str, visibility: str, last_customer_message_at: Optional[str],
                 now: Optional[dt.datetime] = None) -> Optional[Dict[str, Any]]:
    """``{"open", "closes_at", "human_agent_until", "template_purposes"}`` for a private
    conversation on a channel with a window; None where no window applies."""
    connector = app[CONNECTORS_KEY].get(channel)
    window = connector.capabilities.window if connector is not None else None
    if window is None or visibility == "public":
        return None
    now = now or utcnow()
    last = dt.datetime.fromisoformat(last_customer_message_at) if last_customer_message_at else None
    closing = closes_at(window, last)
    human = closes_at(window, last, human=True)
    purposes = [p for p in ("answer", "csat", "broadcast", "notice") if connector.template_for(p) is not None]
    return {
        "open": closing is not None and now < closing,
        "closes_at": closing.isoformat() if closing else None,
        "human_agent_until": human.isoformat() if human else None,
        "human_agent_open": human is not None and now < human,
        "template_purposes": purposes,
    }
