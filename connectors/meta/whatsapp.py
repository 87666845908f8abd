"""WhatsApp Cloud API connector (Meta's Graph API; webhook object ``whatsapp_business_account``).

We parse Meta's webhooks with our own small dataclasses (:mod:`connectors.meta.whatsapp_types`)
rather than the ``pywa`` library: pywa 4.x requires ``contacts[].user_id`` (the business-scoped
user id, BSUID), which Meta's documented examples lack (a KeyError on each of them), and pywa
3.x does not know BSUIDs at all.

Inbound (``POST /webhooks/<name>``, verified by :class:`~connectors.meta.webhook.MetaConnector`):
each change with field ``messages`` for our ``phone_number_id`` carries customer messages and
statuses of what we sent. The customer's address is their phone number (``wa_id``/``from``),
or their BSUID when Meta leaves the number out (users with a username, from mid-2026); both are
kept in the metadata when present. Kinds: a text is ``text``; a pressed reply button, list row or
template quick reply is ``button`` with our payload as its text; an image, voice message, audio,
video, document, sticker, location or contact card is ``attachment`` (the caption or ``[photo]``
as its text; Meta's media id in the metadata); a reaction is ``reaction`` (logged for the agent);
an edit is ``edit`` with the new text; a deleted message ``deleted``; anything else (Meta's
``unsupported`` type, types newer than this code) is an ``unsupported`` attachment, so an agent
sees it: no customer message is dropped. Statuses become delivery receipts (sent, delivered,
read, failed with Meta's error). Other fields (template reviews, account updates) and changes
for another business number are ignored with a 200.

Outbound (``POST /<phone_number_id>/messages``): plain text (WhatsApp formatting is not
interpreted by us: no parse mode), split over 4096 characters; up to 3 buttons as reply buttons,
4 to 10 as a list (more: the first 10); an image by link; a template (outside the 24-hour window,
decided by the dispatcher) with its positional body parameters. A long text with buttons goes
out as a plain message and then the buttons with its last paragraph. Parts already sent are not
sent again when a later part is retried.

Options (besides :class:`MetaConnector`'s): ``phone_number_id`` (required), ``rate_limit_per_second``
(default 20), ``templates``: ``{purpose: {name, languages: {nl: nl, en: en_US} (or language: nl),
parameters: [text, customer_name]}}`` for the purposes answer, ack, handover, notice, csat and
broadcast.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from connectors.base import (
    Capabilities,
    ConnectorError,
    DELIVERY_STATES,
    DeliveryError,
    DeliveryUpdate,
    Ignored,
    InboundMessage,
    MessagingWindow,
    SendContext,
    SendProgress,
    SendResult,
    TemplateSpec,
)
from connectors.meta.graph import WINDOW_CLOSED
from connectors.meta.webhook import Event, MetaConnector
from connectors.meta.whatsapp_types import MEDIA_TYPES, WaChange, WaContact, WaMessage, WaStatus
from connectors.telegram import split_text

logger = logging.getLogger(__name__)

MAX_TEXT_LENGTH = 4096
MAX_BODY_LENGTH = 1024  # the body of an interactive message
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_BUTTON_ID = 256
MAX_ROWS = 10
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
MAX_ROW_ID = 200
DEFAULT_RATE_LIMIT = 20.0

TEMPLATE_PURPOSES = ("answer", "ack", "handover", "notice", "csat", "broadcast")
TEMPLATE_PARAMETERS = ("text", "customer_name")
TEMPLATE_KEYS = ("name", "languages", "language", "parameters")
TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(_[A-Za-z0-9]{2,4})?")

LIST_BUTTON = {"nl": "Kies", "en": "Choose"}
BUTTONS_PROMPT = {"nl": "Maak een keuze:", "en": "Choose an option:"}
# (what webcare calls the attachment, the text a message without caption gets)
ATTACHMENTS = {"image": ("photo", "[photo]"), "audio": ("audio", "[audio]"), "video": ("video", "[video]"),
               "document": ("document", "[document]"), "sticker": ("sticker", "[sticker]")}


class WhatsAppConnector(MetaConnector):
    """The WhatsApp Business Platform's Cloud API, for one business phone number."""

    webhook_object = "whatsapp_business_account"
    env_prefix = "WHATSAPP"

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        self.phone_number_id = _phone_number_id(name, options.get("phone_number_id"))
        try:
            rate = float(options.get("rate_limit_per_second", DEFAULT_RATE_LIMIT))
        except (TypeError, ValueError):
            raise ConnectorError(f"channels.{name}.rate_limit_per_second must be a number") from None
        if not rate > 0:
            raise ConnectorError(f"channels.{name}.rate_limit_per_second must be more than 0")
        self.templates = _templates(name, options.get("templates"))
        super().__init__(name, options)
        self.capabilities = Capabilities(
            max_text_length=MAX_TEXT_LENGTH, buttons=True, rate_limit_per_second=rate,
            window=MessagingWindow(free_form_hours=24, human_agent_hours=None))
        # Multi-part sends: how many parts of an idempotency key went out, and the last id, so
        # a retry (after a rate limit on part 2, say) does not send part 1 again. In memory.
        self._progress = SendProgress()

    def template_for(self, purpose: str) -> Optional[TemplateSpec]:
        return self.templates.get(purpose)

    # ------------------------------------------------------------ inbound

    def events(self, entry: Dict[str, Any]) -> Iterable[Event]:
        changes = entry.get("changes")
        if not isinstance(changes, list):
            raise ValueError("entry.changes must be a list")
        for raw in changes:
            if not isinstance(raw, dict):
                yield Ignored("malformed change: not an object")
                continue
            try:
                change = WaChange.de_json(raw)
            except (KeyError, TypeError, ValueError, OverflowError) as exc:
                yield Ignored(f"malformed change: {exc}")
                continue
            if change.field != "messages":
                yield Ignored(f"field {change.field or '(none)'}")
                continue
            if change.phone_number_id != self.phone_number_id:
                yield Ignored("another phone number")
                continue
            for data in change.messages:
                if isinstance(data, dict) and data.get("type") in SYSTEM_TYPES:
                    # The customer changed number or id, or opened the chat: nothing to answer.
                    yield Ignored(f"{data['type']} message")
                    continue
                try:
                    try:
                        message = WaMessage.de_json(data)
                    except (KeyError, TypeError, ValueError, OverflowError) as exc:
                        # Its body is not what we know: still a customer wrote, so an agent sees it.
                        logger.warning("%s: message %r not understood (%s); stored as unsupported",
                                       self.name, data.get("id"), exc)
                        message = WaMessage.unreadable(data, str(exc))
                    yield self.inbound(change, message)
                except (KeyError, TypeError, ValueError, OverflowError) as exc:
                    yield Ignored(f"malformed message: {exc}")
            for data in change.statuses:
                try:
                    yield self.receipt(WaStatus.de_json(data))
                except (KeyError, TypeError, ValueError, OverflowError) as exc:
                    yield Ignored(f"malformed status: {exc}")

    def inbound(self, change: WaChange, message: WaMessage) -> InboundMessage:
        """``message`` (from ``change``) in webcare's form."""
        contact: Optional[WaContact] = change.contact_for(message)
        wa_id = message.sender or (contact.wa_id if contact else None)
        bsuid = message.sender_user_id or (contact.user_id if contact else None)
        address = wa_id or bsuid
        if not address:
            raise ValueError("message without a sender (no from, wa_id or user_id)")
        metadata: Dict[str, Any] = {"whatsapp_message_id": message.id}
        if wa_id:
            metadata["wa_id"] = wa_id
        if bsuid:
            metadata["bsuid"] = bsuid
        if message.context_id and message.context_from in (None, change.display_phone_number):
            metadata["context_id"] = message.context_id
        kind, text, details = describe(message)
        metadata.update(details)
        return InboundMessage(
            channel=self.name,
            channel_message_id=message.id,
            sender_id=address,
            text=text,
            sender_name=contact.name if contact else None,
            language_hint=None,  # WhatsApp says nothing of the customer's language
            kind=kind,
            metadata=metadata,
        )

    def receipt(self, status: WaStatus) -> Event:
        if status.status not in DELIVERY_STATES:
            return Ignored(f"status {status.status}")
        failed = status.status == "failed"
        return DeliveryUpdate(channel=self.name, status=status.status, channel_message_id=status.id,
                              recipient=status.recipient_id, at=status.timestamp,
                              error=status.error() if failed else None,
                              needs_template=failed and any(e.code in WINDOW_CLOSED for e in status.errors))

    # ------------------------------------------------------------ outbound

    async def send(self, recipient: str, payload: Dict[str, Any], idempotency_key: str) -> SendResult:
        return await self.deliver(recipient, payload, idempotency_key, SendContext())

    async def deliver(self, recipient: str, payload: Dict[str, Any], idempotency_key: str,
                      context: SendContext) -> SendResult:
        steps = self.steps(payload, context)
        address = {"recipient": recipient} if "." in recipient else {"to": recipient}
        done, last_id = self._progress.get(idempotency_key)
        for index in range(done, len(steps)):
            body = {"messaging_product": "whatsapp", "recipient_type": "individual", **address, **steps[index]}
            try:
                answer = await self.graph.post(f"{self.phone_number_id}/messages", body)
            except DeliveryError:
                if index > 0:
                    self._progress.remember(idempotency_key, index, last_id)
                raise
            last_id = _message_id(answer) or last_id
        self._progress.forget(idempotency_key)
        return SendResult(last_id)

    def steps(self, payload: Dict[str, Any], context: SendContext) -> List[Dict[str, Any]]:
        """The messages (Graph API bodies without the recipient) one outbox payload becomes."""
        template = payload.get("template")
        if template is not None:
            return [_template_message(template)]
        text = payload.get("text")
        if text is not None and not isinstance(text, str):
            raise DeliveryError("'text' must be a string", permanent=True)
        text = (text or "").strip()
        steps: List[Dict[str, Any]] = []
        image = payload.get("image")
        if isinstance(image, str) and image:
            steps.append({"type": "image", "image": {"link": image}})
        buttons, links = _buttons(payload.get("buttons"))
        if links:  # reply buttons cannot open a URL: the links go in the text
            text = "\n".join(filter(None, [text, *(f"{title}: {url}" for title, url in links)]))
        if buttons:
            if not text:
                raise DeliveryError("buttons need a text to go with them", permanent=True)
            head, body = _button_body(text, context.language)
            steps += [_text_message(part) for part in split_text(head, MAX_TEXT_LENGTH)]
            steps.append(_interactive(body, buttons, context.language, self.name))
        else:
            steps += [_text_message(part) for part in split_text(text, MAX_TEXT_LENGTH)]
        if not steps:
            raise DeliveryError("nothing to send: the payload has no text", permanent=True)
        return steps



# ---------------------------------------------------------------- inbound helpers

SYSTEM_TYPES = frozenset({"system", "request_welcome"})


def describe(message: WaMessage) -> Tuple[str, Optional[str], Dict[str, Any]]:
    """``(kind, text, metadata)`` of a customer message."""
    kind = message.type
    if kind == "text":
        if message.text is None:
            raise ValueError("a text message without text.body")
        return "text", message.text, {}
    if message.reply is not None:  # interactive button_reply / list_reply, template quick reply
        details: Dict[str, Any] = {"button_title": message.reply.title}
        if message.reply.description:
            details["button_description"] = message.reply.description
        return "button", message.reply.id, details
    if kind in MEDIA_TYPES and message.media is not None:
        media = message.media
        attachment, label = ATTACHMENTS[kind]
        if kind == "audio" and media.voice:
            attachment, label = "voice", "[voice message]"
        if kind == "document" and media.filename:
            label = f"[document: {media.filename}]"
        details = {"attachment": attachment, "media_id": media.id}
        for key, value in (("mime_type", media.mime_type), ("file_name", media.filename),
                           ("sha256", media.sha256)):
            if value is not None:
                details[key] = value
        caption = media.caption if media.caption and media.caption.strip() else None
        return "attachment", caption or label, details
    if kind == "location" and message.location is not None:
        where = message.location
        details = {"attachment": "location", "latitude": where.latitude, "longitude": where.longitude}
        if where.name:
            details["name"] = where.name
        if where.address:
            details["address"] = where.address
        label = where.name or where.address
        return "attachment", f"[location: {label}]" if label else "[location]", details
    if kind == "contacts" and message.shared_contacts:
        cards = [{"name": c.name, "phones": list(c.phones)} for c in message.shared_contacts]
        names = ", ".join(c.name for c in message.shared_contacts if c.name)
        return "attachment", f"[contact: {names}]" if names else "[contact]", {"attachment": "contact",
                                                                               "contacts": cards}
    if kind == "reaction":
        return "reaction", message.emoji, {"reacted_to": message.reacted_to, "removed": message.emoji is None}
    if kind == "edit" and message.edited is not None:
        edited_kind, text, details = describe(message.edited)
        return "edit", text, {"original_message_id": message.original_message_id,
                              "edited_kind": edited_kind, **details}
    if kind == "revoke":
        return "deleted", None, {"original_message_id": message.original_message_id}
    details = {"attachment": "unsupported",
               "whatsapp_type": f"{kind}:{message.subtype}" if message.subtype else kind}
    if message.errors:
        details["errors"] = [error.describe() for error in message.errors]
    return "attachment", "[unsupported message]", details


# ---------------------------------------------------------------- outbound helpers


def _message_id(answer: Dict[str, Any]) -> Optional[str]:
    messages = answer.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict) and messages[0].get("id"):
        return str(messages[0]["id"])
    logger.warning("WhatsApp answered a send without a message id: %s", str(answer)[:200])
    return None


def _text_message(text: str) -> Dict[str, Any]:
    return {"type": "text", "text": {"preview_url": False, "body": text}}


def _template_message(template: Any) -> Dict[str, Any]:
    if not isinstance(template, dict) or not template.get("name") or not template.get("language"):
        raise DeliveryError("a template payload needs a name and a language", permanent=True)
    body: Dict[str, Any] = {"name": str(template["name"]), "language": {"code": str(template["language"])}}
    parameters = template.get("parameters") or []
    if parameters:
        body["components"] = [{"type": "body", "parameters": [
            {"type": "text", "text": str(value)} for value in parameters]}]
    return {"type": "template", "template": body}


def _buttons(buttons: Any) -> Tuple[List[Tuple[str, str]], List[Tuple[str, str]]]:
    """Rasa buttons as ``(payloads and titles, links)``: ``[(title, payload)], [(title, url)]``."""
    replies: List[Tuple[str, str]] = []
    links: List[Tuple[str, str]] = []
    for button in buttons if isinstance(buttons, list) else []:
        if not isinstance(button, dict):
            continue
        title = " ".join(str(button.get("title") or button.get("payload") or "").split())
        if not title:
            continue
        if isinstance(button.get("url"), str) and button["url"]:
            links.append((title, button["url"]))
        else:
            replies.append((title, str(button.get("payload") or title)))
    return replies, links


def _button_body(text: str, language: Optional[str]) -> Tuple[str, str]:
    """``(plain text to send first, the interactive body)`` for a text with buttons."""
    if len(text) <= MAX_BODY_LENGTH:
        return "", text
    head, _, last = text.rpartition("\n\n")
    if head.strip() and last.strip() and len(last.strip()) <= MAX_BODY_LENGTH:
        return head.strip(), last.strip()
    return text, BUTTONS_PROMPT.get(language or "nl", BUTTONS_PROMPT["nl"])


def _interactive(body: str, buttons: List[Tuple[str, str]], language: Optional[str], channel: str) -> Dict[str, Any]:
    if len(buttons) <= MAX_BUTTONS:
        titles = _unique([_truncate(title, MAX_BUTTON_TITLE) for title, _ in buttons], MAX_BUTTON_TITLE)
        ids = _unique([_button_id(payload, title, MAX_BUTTON_ID) for title, payload in buttons], MAX_BUTTON_ID)
        return {"type": "interactive", "interactive": {
            "type": "button", "body": {"text": body},
            "action": {"buttons": [{"type": "reply", "reply": {"id": id_, "title": title}}
                                   for id_, title in zip(ids, titles)]}}}
    if len(buttons) > MAX_ROWS:
        logger.warning("%s: %d buttons; WhatsApp lists hold %d, the rest are left out", channel, len(buttons),
                       MAX_ROWS)
        buttons = buttons[:MAX_ROWS]
    rows = []
    ids = _unique([_button_id(payload, title, MAX_ROW_ID) for title, payload in buttons], MAX_ROW_ID)
    titles = [_row_title(title) for title, _ in buttons]
    unique_titles = _unique([title for title, _ in titles], MAX_ROW_TITLE)
    for id_, title, (_, description) in zip(ids, unique_titles, titles):
        row = {"id": id_, "title": title}
        if description:
            row["description"] = description
        rows.append(row)
    return {"type": "interactive", "interactive": {
        "type": "list", "body": {"text": body},
        "action": {"button": LIST_BUTTON.get(language or "nl", LIST_BUTTON["nl"]),
                   "sections": [{"rows": rows}]}}}


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _button_id(payload: str, title: str, limit: int) -> str:
    """Our payload, or the title when the payload is too long for the id (as Telegram does)."""
    return payload if len(payload) <= limit else title[:limit]


def _row_title(title: str) -> Tuple[str, Optional[str]]:
    """A list row's title (24 characters) and the rest of a longer one as its description."""
    if len(title) <= MAX_ROW_TITLE:
        return title, None
    cut = title.rfind(" ", 0, MAX_ROW_TITLE + 1)
    if cut > MAX_ROW_TITLE // 2:
        head, rest = title[:cut], title[cut + 1:]
    else:
        head, rest = title[:MAX_ROW_TITLE - 1] + "…", title[MAX_ROW_TITLE - 1:]
    return head, _truncate(rest.strip(), MAX_ROW_DESCRIPTION) or None


def _unique(values: List[str], limit: int) -> List[str]:
    """``values`` with repeats numbered (``Ja``, ``Ja 2``), each within ``limit`` characters."""
    seen: set = set()
    result = []
    for value in values:
        candidate, number = value, 1
        while candidate in seen:
            number += 1
            suffix = f" {number}"
            candidate = value[:limit - len(suffix)] + suffix
        seen.add(candidate)
        result.append(candidate)
    return result


# ---------------------------------------------------------------- options


def _phone_number_id(name: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip().isdigit():
        raise ConnectorError(
            f"channels.{name}.phone_number_id is required: the business phone number's id from Meta's "
            f"WhatsApp Manager (API setup), digits only, not the phone number itself"
            + (f"; got {value!r}" if value is not None else ""))
    return value.strip()


def _templates(name: str, section: Any) -> Dict[str, TemplateSpec]:
    if section is None:
        return {}
    where = f"channels.{name}.templates"
    if not isinstance(section, Mapping):
        raise ConnectorError(f"{where} must be a mapping of purpose to template")
    templates: Dict[str, TemplateSpec] = {}
    for purpose, spec in section.items():
        key = f"{where}.{purpose}"
        if purpose not in TEMPLATE_PURPOSES:
            raise ConnectorError(f"{key}: unknown purpose; templates are for {', '.join(TEMPLATE_PURPOSES)}")
        if not isinstance(spec, Mapping):
            raise ConnectorError(f"{key} must be a mapping with name, languages and parameters")
        unknown = sorted(str(k) for k in spec if k not in TEMPLATE_KEYS)
        if unknown:
            raise ConnectorError(f"{key}.{unknown[0]}: unknown key (allowed: {', '.join(TEMPLATE_KEYS)})")
        template = spec.get("name")
        if not isinstance(template, str) or not TEMPLATE_NAME.fullmatch(template):
            raise ConnectorError(f"{key}.name must be the approved template's name "
                                 f"(lowercase letters, digits and '_'), not {template!r}")
        templates[str(purpose)] = TemplateSpec(template, _languages(key, spec),
                                               _parameters(key, spec.get("parameters", ["text"])))
    return templates


def _languages(key: str, spec: Mapping[str, Any]) -> Tuple[Tuple[str, str], ...]:
    if ("languages" in spec) == ("language" in spec):
        raise ConnectorError(f"{key}: give either languages ({{nl: nl, en: en_US}}) or language (nl)")
    if "language" in spec:
        code = spec["language"]
        if not isinstance(code, str) or not LANGUAGE_CODE.fullmatch(code):
            raise ConnectorError(f"{key}.language must be a template language code like nl or en_US, not {code!r}")
        return ((code.split("_")[0].lower(), code),)
    languages = spec["languages"]
    if not isinstance(languages, Mapping) or not languages:
        raise ConnectorError(f"{key}.languages must map our language codes to the template's ({{nl: nl, en: en_US}})")
    pairs = []
    for ours, theirs in languages.items():
        if not isinstance(ours, str) or not re.fullmatch(r"[a-z]{2,3}", ours):
            raise ConnectorError(f"{key}.languages: {ours!r} is not a language code like nl or en")
        if not isinstance(theirs, str) or not LANGUAGE_CODE.fullmatch(theirs):
            raise ConnectorError(f"{key}.languages.{ours} must be a template language code like nl or en_US, "
                                 f"not {theirs!r}")
        pairs.append((ours, theirs))
    return tuple(pairs)


def _parameters(key: str, parameters: Any) -> Tuple[str, ...]:
    if not isinstance(parameters, list):
        raise ConnectorError(f"{key}.parameters must be a list ({', '.join(TEMPLATE_PARAMETERS)})")
    for parameter in parameters:
        if parameter not in TEMPLATE_PARAMETERS:
            raise ConnectorError(f"{key}.parameters: {parameter!r} is not one of {', '.join(TEMPLATE_PARAMETERS)}")
    return tuple(parameters)
