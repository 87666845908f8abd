"""Agents' corrections as Rasa NLU training data (``webcare export-feedback``).

A draft whose agent picked an alternative (its intent) or sent an edited reply with a
corrected intent labels the customer's message: the export writes those examples as Rasa NLU
YAML (version "3.1"), one ``nlu:`` block per (intent, language), with ``metadata: {lang: ..}``
when the conversation's language is known — ready to merge into ``data/nlu/``.
"""
from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.store.models import Conversation, Draft, DraftStatus, Message

# Rasa reads "[text](entity)", "[text]{...}" and "[text][...]" as entity annotations; a customer's
# literal brackets must not turn into one.
_ANNOTATION = re.compile(r"\]([(\[{])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class FeedbackExample:
    text: str
    intent: str
    lang: Optional[str]
    draft_id: int


def parse_since(value: Optional[str]) -> Optional[dt.datetime]:
    """``YYYY-MM-DD`` → that day's start in UTC; ``ValueError`` with a clear message otherwise."""
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--since must be a date like 2024-05-31, not {value!r}") from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


def example_text(text: str) -> str:
    """One line, no control characters, no accidental entity annotation."""
    text = _CONTROL.sub(" ", text)
    text = " ".join(text.split())
    return _ANNOTATION.sub(r"] \1", text)


def collect(session: Session, since: Optional[dt.datetime] = None) -> List[FeedbackExample]:
    """The labelled customer messages: picked drafts, and edited drafts with a corrected intent."""
    query = (
        select(Draft.id, Draft.corrected_intent, Message.text, Conversation.language, Message.language_hint)
        .join(Message, Message.id == Draft.inbound_message_id)
        .join(Conversation, Conversation.id == Draft.conversation_id)
        .where(Draft.status.in_([DraftStatus.picked, DraftStatus.edited]),
               Draft.corrected_intent.isnot(None))
        .order_by(Draft.decided_at, Draft.id)
    )
    if since is not None:
        query = query.where(Draft.decided_at >= since)
    examples: List[FeedbackExample] = []
    seen = set()
    for draft_id, intent, text, language, hint in session.execute(query):
        if not text or not intent or not intent.strip():
            continue
        clean = example_text(text)
        if not clean:
            continue
        lang = (language or hint or None)
        key = (intent, lang, clean.casefold())
        if key in seen:
            continue
        seen.add(key)
        examples.append(FeedbackExample(clean, intent.strip(), lang, draft_id))
    return examples


EXPORT_HEADER = ("# Intent corrections made by agents in the webcare console (webcare export-feedback).\n"
                 "# Review, then merge into data/nlu/.\n")


def to_nlu_yaml(examples: Sequence[FeedbackExample], header: str = EXPORT_HEADER) -> str:
    """Rasa NLU YAML, one block per (intent, lang), intents in alphabetical order, after
    ``header`` (comment lines)."""
    blocks: Dict[Tuple[str, str], List[str]] = defaultdict(list)
    for example in examples:
        blocks[(example.intent, example.lang or "")].append(example.text)
    nlu: List[Dict[str, Any]] = []
    for (intent, lang), texts in sorted(blocks.items()):
        block: Dict[str, Any] = {"intent": intent}
        if lang:
            block["metadata"] = {"lang": lang}
        block["examples"] = "".join(f"- {text}\n" for text in texts)
        nlu.append(block)
    body = yaml.dump({"nlu": nlu}, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=10**6)
    return header + 'version: "3.1"\n' + body


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the examples) as literal blocks, like the files in data/nlu/."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def export(session: Session, since: Optional[dt.datetime] = None) -> Tuple[str, int]:
    """The YAML and the number of examples."""
    examples = collect(session, since)
    return to_nlu_yaml(examples), len(examples)
