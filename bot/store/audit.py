"""The audit log: who did what, when."""
from __future__ import annotations

from typing import Any, Dict, Optional

from sqlalchemy.orm import Session

from bot.store.models import AuditEntry


def record(
    session: Session,
    actor_id: Optional[int],
    action: str,
    target_type: str,
    target_id: Optional[int],
    details: Optional[Dict[str, Any]] = None,
) -> AuditEntry:
    """Add an audit entry in the caller's transaction."""
    entry = AuditEntry(actor_id=actor_id, action=action, target_type=target_type,
                       target_id=target_id, details=details or {})
    session.add(entry)
    return entry
