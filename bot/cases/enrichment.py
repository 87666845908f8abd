"""Adds what needs the network to a case after it opened: the CRM profile and Rasa's slots.

A case is committed first (so it opens even when the CRM is down); :func:`enrich` then asks
the CRM adapter for the linked customer's profile within its timeout and Rasa for the
tracker's slots, and stores both. ``crm_status`` ends as ``ok``, ``not_found``,
``unavailable`` (the console shows "CRM unavailable") or ``not_linked`` (no CRM customer
linked to this customer yet: the agent can link one). Cases left ``pending`` by a crash are
picked up by :func:`pending_cases` at start-up.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote

import aiohttp
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.customers.crm.base import CrmAdapter, profile_within
from bot.store.database import Store
from bot.store.models import Case, Conversation, Customer

logger = logging.getLogger(__name__)


def _refs(session: Session, case_id: int) -> Optional[Tuple[Optional[str], str]]:
    row = session.execute(
        select(Customer.crm_ref, Conversation.rasa_sender_id)
        .select_from(Case)
        .join(Conversation, Conversation.id == Case.conversation_id)
        .join(Customer, Customer.id == Case.customer_id)
        .where(Case.id == case_id)
    ).one_or_none()
    return (row[0], row[1]) if row is not None else None


def _save(session: Session, case_id: int, status: str, profile: Optional[Dict[str, Any]],
          slots: Optional[Dict[str, Any]]) -> None:
    case = session.get(Case, case_id)
    if case is not None:
        case.crm_status = status
        case.crm_profile = profile
        if slots is not None:
            case.slots = slots


def pending_cases(session: Session, limit: int = 200) -> List[int]:
    """Cases whose CRM profile was never fetched (e.g. the service stopped meanwhile)."""
    return list(session.execute(
        select(Case.id).where(Case.crm_status == "pending").order_by(Case.id).limit(limit)
    ).scalars())


async def fetch_slots(rasa_url: str, sender: str, timeout_seconds: float = 3.0) -> Optional[Dict[str, Any]]:
    """The tracker's slots (``None`` when Rasa cannot be asked right now)."""
    url = f"{rasa_url.rstrip('/')}/conversations/{quote(sender, safe='')}/tracker?include_events=NONE"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_seconds)) as http:
            async with http.get(url) as response:
                if response.status != 200:
                    return None
                data = await response.json()
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None
    slots = data.get("slots") if isinstance(data, dict) else None
    return {k: v for k, v in (slots or {}).items() if v is not None} if isinstance(slots, dict) else None


async def enrich(store: Store, case_id: int, crm: Optional[CrmAdapter], rasa_url: Optional[str],
                 crm_timeout_seconds: float) -> str:
    """Fetch and store the case's CRM profile and slots; returns the CRM status."""
    refs = await store.run(_refs, case_id)
    if refs is None:
        return "missing"
    crm_ref, sender = refs
    if crm is None:
        status, profile = "unavailable", None
    elif not crm_ref:
        status, profile = "not_linked", None
    else:
        status, profile = await profile_within(crm, crm_ref, crm_timeout_seconds)
    slots = await fetch_slots(rasa_url, sender) if rasa_url else None
    await store.run(_save, case_id, status, profile, slots)
    logger.info("case %s: CRM %s", case_id, status)
    return status
