"""Display helpers of the console: labels and sentences built from what the domain returns.

No rules of the domain live here, only how its answers read to an agent: a conversation's
channel and visibility ("facebook · public comment"), an outbound message's delivery
("delivered · sent as template reply_24h"), the messaging window of a private conversation
("whatsapp window open until 14 Mar 14:32 (in 3h 10m)"), a personal-data refusal.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Dict, List, Mapping, Optional

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.errors import WebcareError
from bot.pipeline.messaging_window import HUMAN_AGENT_TAG, TAG
from bot.privacy.personal_data import PersonalDataInPublic
from bot.store.models import Case, utcnow
from bot.web.keys import CONNECTORS_KEY
from bot.web.windows import window_state

VISIBILITY_LABELS = {"public": "public comment", "private": "private"}
DELIVERY_LABELS = {"queued": "queued", "sent": "sent", "delivered": "delivered", "read": "read",
                   "failed": "failed", "needs_template": "needs a template"}
OVERRIDE_LABEL = "I know this is public and mean to publish it"


def duration(seconds: Optional[float]) -> str:
    """``75`` → ``1m 15s``; ``3700`` → ``1h 01m``."""
    seconds = int(max(0, seconds or 0))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def visibility_label(visibility: Optional[str]) -> str:
    """``public`` → ``public comment``; ``private`` (or unknown: an old snapshot) → ``private``."""
    return VISIBILITY_LABELS.get(visibility or "private", str(visibility))


def channel_label(channel: Optional[str], visibility: Optional[str]) -> str:
    """``facebook · public comment``, ``whatsapp · private``."""
    return f"{channel or 'unknown channel'} · {visibility_label(visibility)}"


def delivery_label(entry: Mapping[str, Any]) -> str:
    """How an outbound message went out: its status (with the error or the reason it is held)
    and, when not as queued, how (``sent as template X``, ``with HUMAN_AGENT tag``)."""
    status = entry.get("status") or ""
    error = entry.get("error")
    parts = [DELIVERY_LABELS.get(status, status.replace("_", " "))] if status else []
    if error and status in ("failed", "needs_template"):
        # the reason a message is held already starts "needs a template: ..."
        parts[0] = error if error.lower().startswith(parts[0].lower()) else f"{parts[0]}: {error}"
    elif error and status == "queued":
        parts.append(f"retrying after: {error}")
    sent_as = entry.get("sent_as")
    if sent_as == TAG:
        parts.append(f"with {HUMAN_AGENT_TAG} tag")
    elif sent_as:
        parts.append(f"sent as template {sent_as}")
    return " · ".join(p for p in parts if p)


def safe_url(value: Any) -> Optional[str]:
    """A link the console may show (http/https only: a post's permalink comes from outside)."""
    if isinstance(value, str) and value.startswith(("https://", "http://")) and '"' not in value:
        return value
    return None


def refusal(error: WebcareError, action: str, **extra: Any) -> Optional[Dict[str, Any]]:
    """A personal-data refusal, for the form that made it (None for any other error)."""
    if not isinstance(error, PersonalDataInPublic):
        return None
    return {"action": action, "reason": error.reason, "findings": list(error.details.get("findings") or []),
            **extra}


def case_of(session: Session, conversation_id: Optional[int]) -> Optional[int]:
    """The newest case of a conversation (None: none), to link a moved conversation to it."""
    if conversation_id is None:
        return None
    return session.execute(select(Case.id).where(Case.conversation_id == conversation_id)
                           .order_by(Case.id.desc()).limit(1)).scalar()


def _at(value: Optional[str]) -> Optional[dt.datetime]:
    return dt.datetime.fromisoformat(value) if value else None


def window_view(app: web.Application, channel: str, visibility: str, last_customer_message_at: Optional[str],
                local_time: Callable[[Optional[str]], str], *, agent_reply: bool,
                now: Optional[dt.datetime] = None) -> Optional[Dict[str, Any]]:
    """The messaging window of a private conversation in words (None: the channel has none).

    ``agent_reply``: the page's reply is typed by an agent (a case), so Meta's HUMAN_AGENT tag
    applies; a draft goes out as the bot's answer.
    """
    now = now or utcnow()
    state = window_state(app, channel, visibility, last_customer_message_at, now=now)
    if state is None:
        return None
    connector = app[CONNECTORS_KEY].get(channel)
    template = connector.template_for("answer") if connector is not None else None
    closes_at, human_until = _at(state["closes_at"]), _at(state["human_agent_until"])
    lines: List[str] = []
    if state["open"] and closes_at is not None:
        headline = (f"{channel} window open until {local_time(state['closes_at'])} "
                    f"(in {duration((closes_at - now).total_seconds())})")
    elif closes_at is not None:
        headline = f"{channel} window closed since {local_time(state['closes_at'])}"
    else:
        headline = f"{channel} window closed: the customer has not written on this channel"
    tag_open = agent_reply and state["human_agent_open"] and human_until is not None
    if state["open"]:
        if tag_open:
            lines.append(f"after it closes, an agent's reply may still go out with Meta's {HUMAN_AGENT_TAG} tag "
                         f"until {local_time(state['human_agent_until'])}")
    else:
        later = ""
        if tag_open:
            lines.append(f"an agent's reply may still go out with Meta's {HUMAN_AGENT_TAG} tag until "
                         f"{local_time(state['human_agent_until'])} "
                         f"(in {duration((human_until - now).total_seconds())})")
            later = "after that, "
        if template is not None:
            lines.append(f"{later}a reply goes out as template {template.name}")
        else:
            lines.append(f"{later}a reply needs a template (none configured) and is held, not sent")
    return {**state, "channel": channel, "headline": headline, "lines": lines,
            "template": template.name if template is not None else None}
