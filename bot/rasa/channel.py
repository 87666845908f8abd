"""The one Rasa channel webcare talks to (runs inside the Rasa server).

``POST /webhooks/webcare/webhook`` with ``{"sender", "text", "message_id", "metadata"}``
answers, in one call, with the bot's messages *and* the parse result, plus the responses of
the next-ranked intents as alternatives for the agent::

    {"messages": [{"text": ..., "buttons": [...]}, {"custom": {...}}],
     "parse": {"intent": {...}, "intent_ranking": [...], "entities": [...], "language": {...}},
     "alternatives": [{"intent": "refund_status", "confidence": 0.12,
                       "messages": [{"text": ...}]}]}

Enable it in ``credentials.yml`` under ``bot.rasa.channel.WebcareInput``. An alternative for
intent X is the domain response ``utter_X``, rendered in the conversation's language.
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text, Tuple

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from rasa.shared.core.events import BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)

FALLBACK_INTENT = "nlu_fallback"
MESSAGE_KEYS = ("text", "buttons", "image", "attachment", "quick_replies", "custom", "elements")


class WebcareInput(InputChannel):
    """Rasa input channel for the webcare service."""

    def __init__(self, max_alternatives: int = 3, language_slot: str = "language") -> None:
        self.max_alternatives = max_alternatives
        self.language_slot = language_slot

    @classmethod
    def name(cls) -> Text:
        return "webcare"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "WebcareInput":
        credentials = credentials or {}
        return cls(
            max_alternatives=int(credentials.get("max_alternatives", 3)),
            language_slot=str(credentials.get("language_slot", "language")),
        )

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Blueprint:
        hook = Blueprint("webcare_webhook", __name__)

        @hook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @hook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            body = request.json if isinstance(request.json, dict) else None
            if body is None or not isinstance(body.get("sender"), str) or not isinstance(body.get("text"), str):
                return response.json(
                    {"error": "bad_request", "reason": "expected JSON with string 'sender' and 'text'"},
                    status=400,
                )
            metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
            agent = request.app.ctx.agent
            if agent is None or not agent.is_ready():
                return response.json({"error": "unavailable", "reason": "no model loaded"}, status=503)
            message_id = str(body["message_id"]) if body.get("message_id") is not None else None

            if message_id is not None:
                # Idempotent: a message Rasa already handled (the service retried it after a
                # timeout, or another replica took over after a crash) is not handled again;
                # the first answer is returned as it was.
                earlier = await _earlier_answer(agent, body["sender"], message_id)
                if earlier is not None:
                    messages, parse = earlier
                    logger.info("message %s of %s was handled before; answer replayed", message_id, body["sender"])
                    alternatives = await self._alternatives(agent, body["sender"], parse, metadata)
                    return response.json({"messages": messages, "parse": _parse_summary(parse),
                                          "alternatives": alternatives, "replayed": True})

            collector = CollectingOutputChannel()
            user_message = UserMessage(
                body["text"], collector, body["sender"], input_channel=self.name(),
                metadata=metadata, message_id=message_id,
            )
            # Parse once here, hand the result to Rasa, and return it to the service.
            parse = await agent.processor.parse_message(user_message)
            user_message.parse_data = parse
            # The agent captured above handles it too (what Rasa's on_new_message does with the
            # app's agent of the moment): a model swapped in meanwhile (PUT /model) never gets
            # a message half-parsed by the model before it.
            await agent.handle_message(user_message)
            alternatives = await self._alternatives(agent, body["sender"], parse, metadata)
            return response.json(
                {
                    "messages": [_clean(m) for m in collector.messages],
                    "parse": _parse_summary(parse),
                    "alternatives": alternatives,
                }
            )

        return hook

    async def _alternatives(
        self, agent: Any, sender: str, parse: Dict[str, Any], metadata: Dict[str, Any]
    ) -> List[Dict[str, Any]]:
        top = (parse.get("intent") or {}).get("name")
        language = (parse.get("language") or {}).get("name") or metadata.get("conversation_language")
        tracker = DialogueStateTracker.from_events(sender, [], agent.domain.slots)
        if language and self.language_slot in tracker.slots:
            tracker.update(SlotSet(self.language_slot, language))
        alternatives: List[Dict[str, Any]] = []
        for ranked in parse.get("intent_ranking") or []:
            intent = ranked.get("name")
            if intent in (top, FALLBACK_INTENT) or len(alternatives) >= self.max_alternatives:
                continue
            utter = f"utter_{intent}"
            if utter not in agent.domain.responses:
                continue
            rendered = await agent.nlg.generate(utter, tracker, self.name())
            if rendered:
                alternatives.append(
                    {"intent": intent, "confidence": ranked.get("confidence"), "messages": [_clean(rendered)]}
                )
        return alternatives


async def _earlier_answer(agent: Any, sender: str, message_id: str) -> Optional[Tuple[List[Dict[str, Any]], Dict[str, Any]]]:
    """The bot's messages and the parse of ``message_id`` if the tracker already holds it."""
    tracker = await agent.tracker_store.retrieve(sender)
    if tracker is None:
        return None
    events = list(tracker.events)
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if isinstance(event, UserUttered) and event.message_id == message_id:
            messages = []
            for later in events[index + 1:]:
                if isinstance(later, UserUttered):
                    break
                if isinstance(later, BotUttered):
                    messages.append(_clean({"text": later.text, **(later.data or {})}))
            return messages, dict(event.parse_data or {})
    return None


def _clean(message: Dict[str, Any]) -> Dict[str, Any]:
    return {k: message[k] for k in MESSAGE_KEYS if message.get(k)}


def _parse_summary(parse: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "text": parse.get("text"),
        "intent": parse.get("intent"),
        "intent_ranking": parse.get("intent_ranking") or [],
        "entities": parse.get("entities") or [],
        "language": parse.get("language"),
    }
