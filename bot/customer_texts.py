"""What the service itself says to customers (not Rasa), in their language."""
from __future__ import annotations

from typing import Optional

TEXTS = {
    "moved_to_private_public": {
        "nl": "We sturen je een DM, dan kijken we er samen naar.",
        "en": "We've sent you a DM so we can look into this together.",
    },
    "moved_to_private_private": {
        "nl": "Hoi! Je reageerde onder ons bericht. Hier kunnen we je persoonlijk helpen: wat is er precies aan de hand?",
        "en": "Hi! You commented on our post. Here we can help you personally: what exactly is going on?",
    },
    "handed_to_agent": {
        "nl": "Ik heb je vraag doorgezet naar een collega. Die leest je hele gesprek mee, "
              "dus je hoeft niets te herhalen. Je hoort zo snel mogelijk van ons.",
        "en": "I've passed your question on to a colleague, who can see our whole conversation, "
              "so there's no need to repeat anything. You'll hear from us as soon as possible.",
    },
    "handover_wait": {
        "nl": "Een collega neemt het gesprek van me over en ziet alles wat je al schreef, dus je "
              "hoeft niets te herhalen. De verwachte wachttijd is nu ongeveer {minutes} minuten.",
        "en": "A colleague is taking over from me and can see everything you wrote, so there's no "
              "need to repeat anything. The expected waiting time is about {minutes} minutes.",
    },
    "handover_closed": {
        "nl": "Een collega neemt het gesprek van me over. We zijn nu gesloten; {day} om {time} zijn "
              "we er weer. Je bericht blijft bewaard en je hoeft niets te herhalen.",
        "en": "A colleague will take over from me. We're closed right now and back {day} at {time}. "
              "Your message is kept, so there's no need to repeat anything.",
    },
    "handover_closed_unknown": {
        "nl": "Een collega neemt het gesprek van me over zodra we weer open zijn. Je bericht blijft "
              "bewaard en je hoeft niets te herhalen.",
        "en": "A colleague will take over from me as soon as we're open again. Your message is kept, "
              "so there's no need to repeat anything.",
    },
    "identify_found": {
        "nl": "Dank je, ik heb je gegevens gevonden. Een collega bevestigt ze en koppelt dit gesprek "
              "eraan; daarna zien mijn collega's je hele geschiedenis bij ons, op elk kanaal.",
        "en": "Thanks, I've found your details. A colleague will confirm them and link this chat; "
              "after that my colleagues can see your whole history with us, on every channel.",
    },
    "identify_not_found": {
        "nl": "Ik kan geen klant vinden met deze gegevens. Kijk je het nog even na? Je klantnummer "
              "staat op je jaarnota en in de app.",
        "en": "I can't find a customer with these details. Could you check them? Your customer "
              "number is on your annual statement and in the app.",
    },
    "identify_unavailable": {
        "nl": "Ik kan je gegevens nu even niet opzoeken. Een collega koppelt ze later voor je; je "
              "hoeft niets opnieuw te sturen.",
        "en": "I can't look up your details right now. A colleague will link them for you later; "
              "there's no need to send them again.",
    },
    "opted_out": {
        "nl": "Je bent afgemeld: we sturen je geen berichten meer uit onszelf. Je kunt ons altijd "
              "gewoon een vraag stellen.",
        "en": "You're unsubscribed: we won't send you messages on our own initiative any more. You "
              "can still ask us anything, any time.",
    },
    "known_issue_offer": {
        "nl": "Zal ik je een bericht sturen zodra het is opgelost?",
        "en": "Shall I send you a message as soon as it's fixed?",
    },
    "known_issue_yes": {"nl": "Ja, graag", "en": "Yes, please"},
    "known_issue_no": {"nl": "Nee, dank je", "en": "No, thanks"},
    "known_issue_subscribed": {
        "nl": "Afgesproken: je hoort het van ons zodra het is opgelost. Wil je toch geen bericht? "
              "Stuur dan \"stop\".",
        "en": "Will do: you'll hear from us as soon as it's fixed. Changed your mind? Send \"stop\".",
    },
    "known_issue_declined": {
        "nl": "Prima, dan stuur ik je niets. Kan ik je nog ergens anders mee helpen?",
        "en": "All right, I won't send you anything. Is there anything else I can help with?",
    },
    "known_issue_already_fixed": {
        "nl": "Goed nieuws: dit probleem is inmiddels opgelost.",
        "en": "Good news: this problem has been fixed in the meantime.",
    },
    "opt_in_offer": {
        "nl": "Mogen we je voortaan ook een bericht sturen over storingen en oplossingen die jou "
              "raken? Je kunt je altijd afmelden met \"stop\".",
        "en": "May we also message you in future about outages and fixes that affect you? You can "
              "always opt out by sending \"stop\".",
    },
    "opt_in_yes": {"nl": "Ja, dat mag", "en": "Yes, that's fine"},
    "opt_in_no": {"nl": "Nee, liever niet", "en": "No, thanks"},
    "opted_in": {
        "nl": "Genoteerd: we laten het je weten bij storingen en oplossingen die jou raken. Stuur "
              "\"stop\" als je dat niet meer wilt.",
        "en": "Noted: we'll let you know about outages and fixes that affect you. Send \"stop\" if "
              "you no longer want that.",
    },
    "opt_in_declined": {
        "nl": "Prima, dan sturen we je verder niets uit onszelf.",
        "en": "All right, we won't send you anything else on our own initiative.",
    },
    "csat_question": {
        "nl": "Hoe tevreden ben je over de hulp die je kreeg? Geef een cijfer van 1 (slecht) tot 5 (heel goed).",
        "en": "How satisfied are you with the help you got? Rate it from 1 (poor) to 5 (very good).",
    },
    "csat_thanks": {
        "nl": "Dank je voor je beoordeling! Wil je nog iets toelichten? Typ het gerust, dan lezen we het.",
        "en": "Thanks for rating us! Anything you'd like to add? Just type it and we'll read it.",
    },
    "csat_comment_thanks": {
        "nl": "Dank je, je toelichting is doorgegeven.",
        "en": "Thank you, your comment has been passed on.",
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
