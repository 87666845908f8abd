"""Real rasa_sdk trackers, built the way the action server builds them from a request."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from rasa_sdk import Tracker


def make_tracker(
    slots: Optional[Dict[str, Any]] = None,
    latest_message: Optional[Dict[str, Any]] = None,
    events: Optional[List[Dict[str, Any]]] = None,
) -> Tracker:
    """A real ``rasa_sdk.Tracker`` as the action server builds it from a request."""
    return Tracker(
        sender_id="test-conversation",
        slots=dict(slots or {}),
        latest_message=dict(latest_message or {}),
        events=list(events or []),
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )
