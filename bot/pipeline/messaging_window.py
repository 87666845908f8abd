"""Messaging windows: what may go out on a channel that limits free-form messages.

WhatsApp and Messenger allow a free-form message only within 24 hours of the customer's last
message; Messenger lets a person's reply out with the ``HUMAN_AGENT`` tag up to 7 days. The
connector declares its window (:class:`connectors.base.MessagingWindow`) and its templates;
the dispatcher asks :func:`decide` right before each send:

- no window (Telegram, web chat), or a public reply (a comment has no window) → send as is;
- the window is open → send as is;
- closed, a text an agent typed (a reply, an edited draft), and the human-agent window is
  open → send with the tag;
- closed, and a template is configured for the message's purpose → send the template, its
  parameters filled from the message;
- closed and no template → hold the item as ``needs_template`` (final, shown in the console),
  never a silent failure or a retry loop.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Dict, Optional

from connectors.base import MessagingWindow, SendContext, TemplateSpec

SEND = "send"
TAG = "tag"
TEMPLATE = "template"
HOLD = "hold"

HUMAN_AGENT_TAG = "HUMAN_AGENT"
MAX_PARAMETER_CHARS = 1024  # WhatsApp: a body parameter's text
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class WindowDecision:
    """How one outbound message goes out: ``action`` is send, tag, template or hold."""

    action: str
    payload: Dict[str, Any]
    reason: str


def closes_at(window: Optional[MessagingWindow], last_customer_message: Optional[dt.datetime],
              human: bool = False) -> Optional[dt.datetime]:
    """When free-form messages (``human``: a person's tagged reply) stop being allowed; None:
    never (no window) or already closed for good (the customer never wrote)."""
    if window is None or last_customer_message is None:
        return None
    hours = window.human_agent_hours if human else window.free_form_hours
    if hours is None:
        return None
    return last_customer_message + dt.timedelta(hours=hours) - dt.timedelta(minutes=window.margin_minutes)


def decide(
    window: Optional[MessagingWindow],
    payload: Dict[str, Any],
    context: SendContext,
    last_customer_message: Optional[dt.datetime],
    template: Optional[TemplateSpec],
    now: dt.datetime,
) -> WindowDecision:
    """What to send now for ``payload`` (see the module's rules)."""
    if window is None:
        return WindowDecision(SEND, payload, "the channel has no messaging window")
    if context.visibility == "public":
        return WindowDecision(SEND, payload, "a public reply has no messaging window")
    if payload.get("private_reply_to"):
        return WindowDecision(SEND, payload, "a private reply to a comment (the platform allows one, within 7 days)")
    if payload.get("action"):
        return WindowDecision(SEND, payload, "a moderation action (hide a comment) has no window")
    closing = closes_at(window, last_customer_message)
    if closing is not None and now < closing:
        return WindowDecision(SEND, payload, f"inside the window (until {closing:%Y-%m-%d %H:%M} UTC)")
    if (context.typed_by_person or context.source == "agent") and window.human_agent_hours is not None:
        human_closing = closes_at(window, last_customer_message, human=True)
        if human_closing is not None and now < human_closing:
            return WindowDecision(TAG, {**payload, "tag": HUMAN_AGENT_TAG},
                                  f"an agent's reply with the {HUMAN_AGENT_TAG} tag "
                                  f"(until {human_closing:%Y-%m-%d %H:%M} UTC)")
    since = ("the customer never wrote on this channel" if last_customer_message is None
             else f"the customer's last message was at {last_customer_message:%Y-%m-%d %H:%M} UTC")
    if template is not None:
        return WindowDecision(TEMPLATE, template_payload(template, payload, context),
                              f"outside the window ({since}): template {template.name!r}")
    return WindowDecision(HOLD, payload, f"needs a template: outside the {window.free_form_hours:g}-hour window "
                                         f"({since}) and no template is configured for {context.purpose!r} messages")


def template_payload(template: TemplateSpec, payload: Dict[str, Any], context: SendContext) -> Dict[str, Any]:
    """``payload`` as the template message: its language picked by the customer's, its body
    parameters filled from the message (one line each: templates refuse new lines and tabs)."""
    values = {"text": payload.get("text") or "", "customer_name": context.customer_name or ""}
    parameters = [_parameter(values.get(name, "")) for name in template.parameters]
    return {
        "template": {"name": template.name, "language": template.language_for(context.language),
                     "parameters": parameters},
        "text": payload.get("text"),  # what the customer reads, for the history
    }


def _parameter(value: str) -> str:
    flat = _SPACES.sub(" ", value).strip() or "-"
    return flat if len(flat) <= MAX_PARAMETER_CHARS else flat[:MAX_PARAMETER_CHARS - 1] + "…"
