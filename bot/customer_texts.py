"""What the service itself says to customers (not Rasa), in their language."""
from __future__ import annotations

from typing import Optional

TEXTS = {
    "handed_to_agent": {
        "nl": "Ik heb je vraag doorgezet naar een collega. Die leest je hele gesprek mee, "
              "dus je hoeft niets te herhalen. Je hoort zo snel mogelijk van ons.",
        "en": "I've passed your question on to a colleague, who can see our whole conversation, "
              "so there's no need to repeat anything. You'll hear from us as soon as possible.",
    },
    "message_too_long": {
        "nl": "Je bericht is erg lang, dus ik heb alleen het begin gelezen. Een collega kijkt "
              "mee als er iets ontbreekt.",
        "en": "Your message is very long, so I've only read the beginning. A colleague will "
              "take a look if anything is missing.",
    },
    "attachment_received": {
        "nl": "Dank je, ik heb je {kind} ontvangen en doorgezet naar een collega die ernaar kijkt.",
        "en": "Thanks, I've received your {kind} and passed it on to a colleague who will look at it.",
    },
}

DEFAULT_LANGUAGE = "nl"


def customer_text(key: str, language: Optional[str], **values: str) -> str:
    """The text ``key`` in ``language`` (Dutch when unknown), with ``values`` filled in."""
    variants = TEXTS[key]
    text = variants.get(language or DEFAULT_LANGUAGE) or variants[DEFAULT_LANGUAGE]
    return text.format(**values) if values else text
