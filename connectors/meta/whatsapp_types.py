"""The WhatsApp Cloud API webhook objects webcare reads, as small frozen dataclasses.

Each is built by a ``de_json`` classmethod from the JSON Meta sends (the shapes of
``tests/connectors/meta/payloads/whatsapp``) and raises ``ValueError`` / ``TypeError`` on a
field of the wrong type, so the connector can skip one malformed event and keep the others.
Only the fields webcare uses are kept; ids stay strings, timestamps become aware UTC datetimes.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from connectors.meta.webhook import id_field, text_field


def _object(value: Any, where: str) -> Dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{where} must be an object")
    return value


def _objects(value: Any, where: str) -> List[Dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise TypeError(f"{where} must be a list of objects")
    return value


def _optional_id(value: Any, where: str) -> Optional[str]:
    return None if value is None or value == "" else id_field(value, where)


def _number(value: Any, where: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where} must be a number")
    return float(value)


def timestamp(value: Any, where: str) -> Optional[dt.datetime]:
    """Meta's unix timestamp (a string of digits, sometimes a number) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).isdigit():
        raise ValueError(f"{where} must be a unix timestamp")
    return dt.datetime.fromtimestamp(int(value), tz=dt.timezone.utc)


@dataclass(frozen=True)
class WaError:
    """One of the ``errors`` of a failed status or an unsupported message."""

    code: Optional[int]
    title: Optional[str]
    message: Optional[str]
    details: Optional[str]

    @classmethod
    def de_json(cls, data: Mapping[str, Any]) -> "WaError":
        code = data.get("code")
        details = _object(data.get("error_data"), "errors[].error_data").get("details")
        return cls(code if isinstance(code, int) and not isinstance(code, bool) else None,
                   text_field(data.get("title"), "errors[].title"),
                   text_field(data.get("message"), "errors[].message"),
                   text_field(details, "errors[].error_data.details"))

    def describe(self) -> str:
        """``code: title (details)``; the title, or the message when there is none."""
        code = str(self.code) if self.code is not None else "error"
        what = self.title or self.message or "unknown error"
        return f"{code}: {what}" + (f" ({self.details})" if self.details else "")


@dataclass(frozen=True)
class WaContact:
    """``value.contacts[]``: who sent the messages of a change (its profile name)."""

    wa_id: Optional[str]
    user_id: Optional[str]  # the business-scoped user id (BSUID)
    name: Optional[str]

    @classmethod
    def de_json(cls, data: Mapping[str, Any]) -> "WaContact":
        profile = _object(data.get("profile"), "contacts[].profile")
        return cls(_optional_id(data.get("wa_id"), "contacts[].wa_id"),
                   _optional_id(data.get("user_id"), "contacts[].user_id"),
                   text_field(profile.get("name"), "contacts[].profile.name"))


@dataclass(frozen=True)
class WaMedia:
    """An image, audio, video, document or sticker: Meta's media id and what it says of it."""

    id: str
    mime_type: Optional[str]
    sha256: Optional[str]
    caption: Optional[str]
    filename: Optional[str]
    voice: bool = False

    @classmethod
    def de_json(cls, data: Mapping[str, Any], kind: str) -> "WaMedia":
        voice = data.get("voice", False)
        if not isinstance(voice, bool):
            raise TypeError(f"{kind}.voice must be a boolean")
        return cls(id_field(data.get("id"), f"{kind}.id"),
                   text_field(data.get("mime_type"), f"{kind}.mime_type"),
                   text_field(data.get("sha256"), f"{kind}.sha256"),
                   text_field(data.get("caption"), f"{kind}.caption"),
                   text_field(data.get("filename"), f"{kind}.filename"),
                   voice)


@dataclass(frozen=True)
class WaLocation:
    latitude: Optional[float]
    longitude: Optional[float]
    name: Optional[str]
    address: Optional[str]

    @classmethod
    def de_json(cls, data: Mapping[str, Any]) -> "WaLocation":
        return cls(_number(data.get("latitude"), "location.latitude"),
                   _number(data.get("longitude"), "location.longitude"),
                   text_field(data.get("name"), "location.name"),
                   text_field(data.get("address"), "location.address"))


@dataclass(frozen=True)
class WaSharedContact:
    """A contact card the customer shared (``messages[].contacts[]``)."""

    name: Optional[str]
    phones: Tuple[str, ...]

    @classmethod
    def de_json(cls, data: Mapping[str, Any]) -> "WaSharedContact":
        name = _object(data.get("name"), "contacts[].name")
        phones = tuple(str(p.get("phone") or p.get("wa_id"))
                       for p in _objects(data.get("phones"), "contacts[].phones")
                       if p.get("phone") or p.get("wa_id"))
        formatted = text_field(name.get("formatted_name"), "contacts[].name.formatted_name")
        joined = " ".join(filter(None, (text_field(name.get("first_name"), "contacts[].name.first_name"),
                                        text_field(name.get("last_name"), "contacts[].name.last_name"))))
        return cls(formatted or joined or None, phones)


@dataclass(frozen=True)
class WaReply:
    """A pressed button: an interactive ``button_reply`` / ``list_reply``, or a template's
    quick reply (``button``): ``id`` is our payload, ``title`` what the customer saw."""

    id: str
    title: Optional[str]
    description: Optional[str] = None


MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")


@dataclass(frozen=True)
class WaMessage:
    """``value.messages[]``: one customer message, whatever its ``type``."""

    id: str
    type: str
    timestamp: Optional[dt.datetime]
    sender: Optional[str]  # ``from``: the customer's phone number (wa_id), when Meta gives it
    sender_user_id: Optional[str]  # ``from_user_id``: the BSUID, when Meta gives it
    context_id: Optional[str] = None  # the message this one replies to
    context_from: Optional[str] = None
    text: Optional[str] = None
    reply: Optional[WaReply] = None
    media: Optional[WaMedia] = None
    location: Optional[WaLocation] = None
    shared_contacts: Tuple[WaSharedContact, ...] = ()
    reacted_to: Optional[str] = None
    emoji: Optional[str] = None
    original_message_id: Optional[str] = None  # edit, revoke
    edited: Optional["WaMessage"] = None  # the new version of an edited message
    subtype: Optional[str] = None  # interactive.type, unsupported.type
    errors: Tuple[WaError, ...] = ()

    @classmethod
    def unreadable(cls, data: Mapping[str, Any], reason: str) -> "WaMessage":
        """What can be read of a message whose body :meth:`de_json` refused: its id and sender,
        as an ``unsupported`` message (so an agent still sees that the customer wrote)."""
        kind = data.get("type") if isinstance(data.get("type"), str) else "unknown"
        return cls(id=id_field(data.get("id"), "messages[].id"), type="unsupported", timestamp=None,
                   sender=_optional_id(data.get("from"), "messages[].from"),
                   sender_user_id=_optional_id(data.get("from_user_id"), "messages[].from_user_id"),
                   subtype=kind, errors=(WaError(None, None, f"unreadable {kind} message: {reason}", None),))

    @classmethod
    def de_json(cls, data: Mapping[str, Any], nested: bool = False) -> "WaMessage":
        kind = text_field(data.get("type"), "messages[].type") or "unsupported"
        body = _object(data.get(kind), f"messages[].{kind}") if kind in data and kind != "contacts" else {}
        context = _object(data.get("context"), "messages[].context")
        fields: Dict[str, Any] = {
            "id": "" if nested else id_field(data.get("id"), "messages[].id"),
            "type": kind,
            "timestamp": timestamp(data.get("timestamp"), "messages[].timestamp"),
            "sender": _optional_id(data.get("from"), "messages[].from"),
            "sender_user_id": _optional_id(data.get("from_user_id"), "messages[].from_user_id"),
            "context_id": _optional_id(context.get("id"), "messages[].context.id"),
            "context_from": _optional_id(context.get("from"), "messages[].context.from"),
            "errors": tuple(WaError.de_json(e) for e in _objects(data.get("errors"), "messages[].errors")),
        }
        if kind == "text":
            fields["text"] = text_field(body.get("body"), "text.body")
        elif kind == "interactive":
            fields["subtype"] = text_field(body.get("type"), "interactive.type")
            if fields["subtype"] in ("button_reply", "list_reply"):
                reply = _object(body.get(fields["subtype"]), f"interactive.{fields['subtype']}")
                fields["reply"] = WaReply(id_field(reply.get("id"), f"interactive.{fields['subtype']}.id"),
                                          text_field(reply.get("title"), "reply title"),
                                          text_field(reply.get("description"), "reply description"))
        elif kind == "button":
            payload = text_field(body.get("payload"), "button.payload")
            label = text_field(body.get("text"), "button.text")
            if payload or label:
                fields["reply"] = WaReply(payload or label or "", label)
        elif kind in MEDIA_TYPES:
            fields["media"] = WaMedia.de_json(body, kind)
            fields["text"] = fields["media"].caption
        elif kind == "location":
            fields["location"] = WaLocation.de_json(body)
        elif kind == "contacts":
            fields["shared_contacts"] = tuple(WaSharedContact.de_json(c)
                                              for c in _objects(data.get("contacts"), "messages[].contacts"))
        elif kind == "reaction":
            fields["reacted_to"] = _optional_id(body.get("message_id"), "reaction.message_id")
            fields["emoji"] = text_field(body.get("emoji"), "reaction.emoji") or None
        elif kind == "edit" and not nested:
            fields["original_message_id"] = _optional_id(body.get("original_message_id"),
                                                         "edit.original_message_id")
            fields["edited"] = WaMessage.de_json(_object(body.get("message"), "edit.message"), nested=True)
        elif kind == "revoke":
            fields["original_message_id"] = _optional_id(body.get("original_message_id"),
                                                         "revoke.original_message_id")
        elif kind == "unsupported":
            fields["subtype"] = text_field(body.get("type"), "unsupported.type")
        return cls(**fields)


@dataclass(frozen=True)
class WaStatus:
    """``value.statuses[]``: what became of a message we sent."""

    id: str
    status: str
    timestamp: Optional[dt.datetime]
    recipient_id: Optional[str]
    errors: Tuple[WaError, ...] = ()

    @classmethod
    def de_json(cls, data: Mapping[str, Any]) -> "WaStatus":
        status = text_field(data.get("status"), "statuses[].status")
        if not status:
            raise ValueError("statuses[].status is missing")
        return cls(id_field(data.get("id"), "statuses[].id"), status,
                   timestamp(data.get("timestamp"), "statuses[].timestamp"),
                   _optional_id(data.get("recipient_id") or data.get("recipient_user_id"), "statuses[].recipient_id"),
                   tuple(WaError.de_json(e) for e in _objects(data.get("errors"), "statuses[].errors")))

    def error(self) -> Optional[str]:
        return "; ".join(e.describe() for e in self.errors) or None


@dataclass(frozen=True)
class WaChange:
    """One ``entry[].changes[]``: its field, the business number it is for, and its
    contacts; the messages and statuses are kept raw, to be parsed one by one (a malformed
    one is skipped, the others are not)."""

    field: str
    phone_number_id: Optional[str]
    display_phone_number: Optional[str]
    contacts: Tuple[WaContact, ...]
    messages: Tuple[Dict[str, Any], ...]
    statuses: Tuple[Dict[str, Any], ...]

    @classmethod
    def de_json(cls, data: Mapping[str, Any]) -> "WaChange":
        value = _object(data.get("value"), "changes[].value")
        metadata = _object(value.get("metadata"), "value.metadata")
        return cls(text_field(data.get("field"), "changes[].field") or "",
                   _optional_id(metadata.get("phone_number_id"), "value.metadata.phone_number_id"),
                   _optional_id(metadata.get("display_phone_number"), "value.metadata.display_phone_number"),
                   tuple(WaContact.de_json(c) for c in _objects(value.get("contacts"), "value.contacts")),
                   tuple(_objects(value.get("messages"), "value.messages")),
                   tuple(_objects(value.get("statuses"), "value.statuses")))

    def contact_for(self, message: WaMessage) -> Optional[WaContact]:
        """The contact of ``message``'s sender (by wa_id or BSUID; the only one, if just one)."""
        for contact in self.contacts:
            if (message.sender and contact.wa_id == message.sender) or (
                    message.sender_user_id and contact.user_id == message.sender_user_id):
                return contact
        if len(self.contacts) == 1:
            only = self.contacts[0]
            if not (message.sender and only.wa_id) and not (message.sender_user_id and only.user_id):
                return only  # nothing to compare: the change's one contact
        return None
