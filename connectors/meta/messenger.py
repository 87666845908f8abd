"""Facebook Messenger with the Page's comments, and Instagram DMs with comments and mentions.

One connector per Meta webhook object, because Meta sends one object's events to one callback
URL: ``type: messenger`` takes the Page (``object: page``: Messenger DMs in
``entry[].messaging[]`` and the Page feed's comments in ``entry[].changes[]``), ``type:
instagram`` the Instagram professional account (``object: instagram``: DMs, and the
``comments`` / ``mentions`` changes). Payloads as Meta documents them are recorded under
``tests/connectors/meta/payloads/{messenger,instagram}``.

Inbound, private (a DM): text → ``text``; a quick reply or a postback → ``button`` with its
payload; attachments (image, video, audio, file, location, Instagram's story mention) →
``attachment`` (acknowledged, an agent answers); an Instagram story reply → ``attachment``
``story_reply`` with the customer's text, so it reaches an agent with the story it answers;
echoes of our own sends are ignored; delivery and read receipts move the outbox's delivery
status (a read watermark marks everything sent before it).

Inbound, public (a comment): a *public* conversation per commenter and post (``thread``): the
comment's id, parent and post in the metadata; an edit → ``edit``, a removal → ``deleted``
(logged for the agent, never answered again); the Page's or the account's own comments are
ignored. An Instagram mention (someone tagged us in a comment or caption elsewhere) is a
public ``attachment`` ``mention`` for an agent.

Outbound: a DM goes to ``POST /{page-or-account-id}/messages`` with ``messaging_type``
``RESPONSE`` (quick replies for buttons: at most 13, titles cut to 20 characters), or
``MESSAGE_TAG`` with ``HUMAN_AGENT`` when the dispatcher tagged an agent's late reply (needs
Meta's Human Agent permission); a reply in a public conversation goes under the customer's
comment (Facebook ``POST /{comment-id}/comments``, Instagram ``POST /{comment-id}/replies``);
``private_reply_to`` is Meta's private reply (``recipient: {comment_id}``), which answers with
the commenter's DM address; ``{"action": "hide"}`` hides a comment (Facebook ``is_hidden``,
Instagram ``hide``). Messenger and Instagram have no free-form templates for the closed
window here: outside it (and past 7 days for a person's reply) the item ends "needs a template".

Options (besides :class:`connectors.meta.webhook.MetaConnector`'s): Messenger ``page_id``,
Instagram ``account_id`` (required: the Page's / the Instagram professional account's id),
``rate_limit_per_second`` (default 20).
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from connectors.base import (
    Capabilities,
    ConnectorError,
    DeliveryError,
    DeliveryUpdate,
    Ignored,
    InboundMessage,
    MessagingWindow,
    SendContext,
    SendProgress,
    SendResult,
)
from connectors.meta.webhook import Event, MetaConnector, id_field, text_field
from connectors.telegram import split_text

logger = logging.getLogger(__name__)

MAX_QUICK_REPLIES = 13
MAX_QUICK_REPLY_TITLE = 20
MAX_PAYLOAD = 1000
WINDOW = MessagingWindow(free_form_hours=24, human_agent_hours=168)
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, OverflowError)
ATTACHMENT_KINDS = {"image": "photo", "video": "video", "audio": "audio", "file": "file", "location": "location",
                    "story_mention": "story_mention", "ig_reel": "video", "reel": "video", "share": "file"}


def _ms(value: Any) -> Optional[dt.datetime]:
    """Messaging timestamps are milliseconds since the epoch."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.timezone.utc)


def _dict(value: Any, where: str) -> Dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object")
    return value


@dataclass(frozen=True)
class Attachment:
    """One attachment of a DM: its type and URL (media) or coordinates (location)."""

    type: str
    url: Optional[str] = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def de_json(cls, data: Any) -> "Attachment":
        data = _dict(data, "an attachment")
        payload = _dict(data.get("payload"), "an attachment's payload")
        coordinates = _dict(payload.get("coordinates"), "coordinates")
        details = {k: coordinates[k] for k in ("lat", "long") if k in coordinates}
        return cls(str(text_field(data.get("type"), "attachment type") or "unknown"),
                   text_field(payload.get("url"), "attachment url"), details)


@dataclass(frozen=True)
class MessagingEvent:
    """One ``entry[].messaging[]`` event: a message, a postback, a receipt or an echo."""

    sender: str
    recipient: str
    timestamp: Optional[dt.datetime]
    mid: Optional[str] = None
    text: Optional[str] = None
    is_echo: bool = False
    quick_reply: Optional[str] = None
    postback_payload: Optional[str] = None
    postback_title: Optional[str] = None
    attachments: Tuple[Attachment, ...] = ()
    story: Optional[Mapping[str, Any]] = None  # Instagram: the story a message replies to
    reply_to_mid: Optional[str] = None
    delivered_mids: Tuple[str, ...] = ()
    read_watermark: Optional[dt.datetime] = None
    read_mid: Optional[str] = None
    other: Tuple[str, ...] = ()

    @classmethod
    def de_json(cls, data: Any) -> "MessagingEvent":
        data = _dict(data, "a messaging event")
        sender = id_field(_dict(data.get("sender"), "sender").get("id"), "sender.id")
        recipient = id_field(_dict(data.get("recipient"), "recipient").get("id"), "recipient.id")
        message = _dict(data.get("message"), "message")
        postback = _dict(data.get("postback"), "postback")
        delivery = _dict(data.get("delivery"), "delivery")
        read = _dict(data.get("read"), "read")
        reply_to = _dict(message.get("reply_to"), "reply_to")
        attachments = message.get("attachments") or []
        if not isinstance(attachments, list):
            raise ValueError("attachments must be a list")
        mids = delivery.get("mids") or []
        if not isinstance(mids, list):
            raise ValueError("delivery.mids must be a list")
        known = {"sender", "recipient", "timestamp", "message", "postback", "delivery", "read"}
        return cls(
            sender=sender, recipient=recipient, timestamp=_ms(data.get("timestamp")),
            mid=text_field(message.get("mid") or postback.get("mid"), "mid"),
            text=text_field(message.get("text"), "message.text"),
            is_echo=message.get("is_echo") is True,
            quick_reply=text_field(_dict(message.get("quick_reply"), "quick_reply").get("payload"), "quick reply"),
            postback_payload=text_field(postback.get("payload"), "postback.payload"),
            postback_title=text_field(postback.get("title"), "postback.title"),
            attachments=tuple(Attachment.de_json(a) for a in attachments),
            story=_dict(reply_to.get("story"), "reply_to.story") or None,
            reply_to_mid=text_field(reply_to.get("mid"), "reply_to.mid"),
            delivered_mids=tuple(id_field(m, "delivery.mids[]") for m in mids),
            read_watermark=_ms(read.get("watermark")),
            read_mid=text_field(read.get("mid"), "read.mid"),
            other=tuple(sorted(set(data) - known)),
        )


@dataclass(frozen=True)
class Comment:
    """A comment from a feed (Facebook) or ``comments`` (Instagram) change."""

    comment_id: str
    post_id: str  # the post / media it is under: the public conversation's thread
    author_id: str
    author_name: Optional[str]
    text: Optional[str]
    verb: str  # add | edited | remove
    parent_id: Optional[str]
    created: Optional[dt.datetime]
    post: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_feed(cls, value: Dict[str, Any]) -> "Comment":
        author = _dict(value.get("from"), "from")
        created = value.get("created_time")
        return cls(
            comment_id=id_field(value.get("comment_id"), "comment_id"),
            post_id=id_field(value.get("post_id"), "post_id"),
            author_id=id_field(author.get("id"), "from.id"),
            author_name=text_field(author.get("name"), "from.name"),
            text=text_field(value.get("message"), "message"),
            verb=str(text_field(value.get("verb"), "verb") or "add"),
            parent_id=text_field(value.get("parent_id"), "parent_id"),
            created=(dt.datetime.fromtimestamp(created, tz=dt.timezone.utc)
                     if isinstance(created, (int, float)) and not isinstance(created, bool) else None),
            post={k: v for k, v in _dict(value.get("post"), "post").items()
                  if k in ("id", "permalink_url", "status_type", "updated_time")},
        )

    @classmethod
    def from_instagram(cls, value: Dict[str, Any], time: Any) -> "Comment":
        author = _dict(value.get("from"), "from")
        media = _dict(value.get("media"), "media")
        return cls(
            comment_id=id_field(value.get("id") or value.get("comment_id"), "id"),
            post_id=id_field(media.get("id"), "media.id"),
            author_id=id_field(author.get("id"), "from.id"),
            author_name=text_field(author.get("username"), "from.username"),
            text=text_field(value.get("text"), "text"),
            verb="add",
            parent_id=text_field(value.get("parent_id"), "parent_id"),
            created=(dt.datetime.fromtimestamp(time, tz=dt.timezone.utc)
                     if isinstance(time, (int, float)) and not isinstance(time, bool) else None),
            post={"id": media.get("id"), "media_product_type": media.get("media_product_type")},
        )


class MessengerConnector(MetaConnector):
    """A Facebook Page: Messenger DMs and the comments under the Page's posts."""

    webhook_object = "page"
    env_prefix = "MESSENGER"
    account_option = "page_id"
    comment_reply_edge = "comments"
    hide_field = "is_hidden"
    max_text_length = 2000

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        super().__init__(name, options)
        account = options.get(self.account_option)
        if isinstance(account, bool) or not isinstance(account, (str, int)) or not str(account).isdigit():
            raise ConnectorError(f"channels.{name}.{self.account_option} must be the numeric id of the "
                                 f"{'Page' if self.webhook_object == 'page' else 'Instagram account'}")
        self.account_id = str(account)
        try:
            rate = float(options.get("rate_limit_per_second", 20))
        except (TypeError, ValueError):
            raise ConnectorError(f"channels.{name}.rate_limit_per_second must be a number") from None
        self.capabilities = Capabilities(max_text_length=self.max_text_length, buttons=True,
                                         rate_limit_per_second=rate, window=WINDOW)
        self._progress = SendProgress()

    # ------------------------------------------------------------ inbound

    def events(self, entry: Dict[str, Any]) -> Iterable[Event]:
        messaging = entry.get("messaging") or []
        changes = entry.get("changes") or []
        if not isinstance(messaging, list) or not isinstance(changes, list):
            raise ValueError("entry.messaging and entry.changes must be lists")
        # One malformed event is skipped (logged), never the rest of the entry with it.
        for raw in messaging:
            try:
                yield from self._from_messaging(MessagingEvent.de_json(raw))
            except MALFORMED as exc:
                yield Ignored(f"malformed messaging event: {type(exc).__name__}: {exc}")
        for change in changes:
            try:
                change = _dict(change, "a change")
                yield from list(self._from_change(str(change.get("field")), _dict(change.get("value"), "value"),
                                                  entry.get("time")))
            except MALFORMED as exc:
                yield Ignored(f"malformed change: {type(exc).__name__}: {exc}")

    def _from_messaging(self, event: MessagingEvent) -> List[Event]:
        if event.delivered_mids:  # one receipt per message of the event
            return [DeliveryUpdate(self.name, "delivered", channel_message_id=mid, at=event.timestamp)
                    for mid in event.delivered_mids]
        return [self._from_message(event)]

    def _from_message(self, event: MessagingEvent) -> Event:
        if event.is_echo or event.sender == self.account_id:
            return Ignored("echo of our own message")
        if event.read_watermark is not None:
            return DeliveryUpdate(self.name, "read", recipient=event.sender, watermark=event.read_watermark,
                                  at=event.timestamp)
        if event.read_mid is not None:
            return DeliveryUpdate(self.name, "read", channel_message_id=event.read_mid, at=event.timestamp)
        metadata: Dict[str, Any] = {"mid": event.mid} if event.mid else {}
        if event.reply_to_mid:
            metadata["reply_to_mid"] = event.reply_to_mid
        if event.postback_payload is not None:
            # A postback may come without a mid (older versions): its timestamp makes it unique.
            message_id = event.mid or f"postback:{event.sender}:{event.timestamp.timestamp() if event.timestamp else ''}"
            metadata["button_title"] = event.postback_title
            return self._inbound(message_id, event.sender, event.postback_payload or event.postback_title, "button",
                                 metadata)
        if event.mid is None:
            return Ignored(f"messaging event without a message ({', '.join(event.other) or 'empty'})")
        if event.quick_reply is not None:
            metadata["button_title"] = event.text
            return self._inbound(event.mid, event.sender, event.quick_reply, "button", metadata)
        if event.story is not None:
            metadata.update(attachment="story_reply", story_id=event.story.get("id"), url=event.story.get("url"))
            return self._inbound(event.mid, event.sender, event.text or "[story reply]", "attachment", metadata)
        if event.attachments:
            first = event.attachments[0]
            kind = ATTACHMENT_KINDS.get(first.type, "file")
            metadata.update(attachment=kind, url=first.url, attachments=[a.type for a in event.attachments],
                            **dict(first.details))
            return self._inbound(event.mid, event.sender, event.text or f"[{kind.replace('_', ' ')}]", "attachment",
                                 metadata)
        if event.text is None:
            return Ignored("message without text or attachments")
        return self._inbound(event.mid, event.sender, event.text, "text", metadata)

    def _inbound(self, message_id: str, sender: str, text: Optional[str], kind: str,
                 metadata: Dict[str, Any], **public: Any) -> InboundMessage:
        return InboundMessage(channel=self.name, channel_message_id=message_id, sender_id=sender, text=text,
                              kind=kind, metadata={k: v for k, v in metadata.items() if v is not None}, **public)

    def _from_change(self, field_name: str, value: Dict[str, Any], time: Any) -> Iterable[Event]:
        if field_name != "feed":
            yield Ignored(f"field {field_name}")
            return
        if value.get("item") != "comment":
            yield Ignored(f"feed item {value.get('item')!r} (only comments are conversations)")
            return
        yield self._from_comment(Comment.from_feed(value))

    def _from_comment(self, comment: Comment) -> Event:
        if comment.author_id == self.account_id:
            return Ignored("our own comment")
        metadata = {"comment_id": comment.comment_id, "parent_id": comment.parent_id,
                    "reply_to": self.reply_target(comment), "post": dict(comment.post) or {"id": comment.post_id}}
        public = {"visibility": "public", "thread": comment.post_id, "sender_name": comment.author_name}
        if comment.verb == "remove":
            return self._inbound(f"{comment.comment_id}:removed", comment.author_id, "[comment deleted]", "deleted",
                                 metadata, **public)
        if comment.verb == "edited":
            stamp = int(comment.created.timestamp()) if comment.created else ""
            return self._inbound(f"{comment.comment_id}:edited:{stamp}", comment.author_id, comment.text, "edit",
                                 metadata, **public)
        if comment.verb != "add":
            return Ignored(f"comment {comment.verb}")
        if not comment.text:
            return self._inbound(comment.comment_id, comment.author_id, "[photo comment]", "attachment",
                                 {**metadata, "attachment": "photo"}, **public)
        return self._inbound(comment.comment_id, comment.author_id, comment.text, "text", metadata, **public)

    def reply_target(self, comment: Comment) -> str:
        """The comment a public reply goes under: Facebook threads a reply to any comment."""
        return comment.comment_id

    # ------------------------------------------------------------ outbound

    async def send(self, recipient: str, payload: Dict[str, Any], idempotency_key: str) -> SendResult:
        return await self.deliver(recipient, payload, idempotency_key, SendContext())

    async def deliver(self, recipient: str, payload: Dict[str, Any], key: str, context: SendContext) -> SendResult:
        if payload.get("action") == "hide":
            comment = str(payload.get("comment_id") or "")
            if not comment:
                raise DeliveryError("hide: no comment id", permanent=True)
            await self.graph.post(comment, {self.hide_field: True})
            return SendResult(None)
        text = payload.get("text")
        if text is not None and not isinstance(text, str):
            raise DeliveryError("'text' must be a string", permanent=True)
        if payload.get("template"):
            raise DeliveryError(f"{self.name}: no message templates on this channel", permanent=True)
        if payload.get("private_reply_to"):
            answer = await self.graph.post(f"{self.account_id}/messages", {
                "recipient": {"comment_id": str(payload["private_reply_to"])},
                "message": {"text": self._fit(text or "")}})
            return SendResult(_str(answer.get("message_id")), recipient_id=_str(answer.get("recipient_id")))
        if context.visibility == "public":
            if not context.reply_to:
                raise DeliveryError("a public reply needs the comment to answer under", permanent=True)
            answer = await self.graph.post(f"{context.reply_to}/{self.comment_reply_edge}",
                                           {"message": _public_text(text or "", payload.get("buttons"))})
            return SendResult(_str(answer.get("id")))
        return await self._send_dm(recipient, text or "", payload, key)

    def parts(self, text: str) -> List[str]:
        """``text`` in parts the platform takes."""
        return split_text(text, self.max_text_length) if text.strip() else []

    async def _send_dm(self, recipient: str, text: str, payload: Dict[str, Any], key: str) -> SendResult:
        parts = self.parts(text)
        quick = quick_replies(payload.get("buttons") or [])
        if not parts:
            if not quick:
                raise DeliveryError("nothing to send: the payload has no text", permanent=True)
            parts = ["…"]
        done, last_id = self._progress.get(key)
        envelope: Dict[str, Any] = {"recipient": {"id": recipient}}
        if payload.get("tag"):
            envelope.update(messaging_type="MESSAGE_TAG", tag=str(payload["tag"]))
        else:
            envelope["messaging_type"] = "RESPONSE"
        for index in range(done, len(parts)):
            message: Dict[str, Any] = {"text": parts[index]}
            if quick and index == len(parts) - 1:
                message["quick_replies"] = quick
            answer = await self.graph.post(f"{self.account_id}/messages", {**envelope, "message": message})
            last_id = _str(answer.get("message_id"))
            self._progress.remember(key, index + 1, last_id)
        self._progress.forget(key)
        return SendResult(last_id)

    def _fit(self, text: str) -> str:
        return text if len(text) <= self.max_text_length else text[:self.max_text_length - 1] + "…"



class InstagramConnector(MessengerConnector):
    """An Instagram professional account: DMs, comments under its media, and mentions."""

    webhook_object = "instagram"
    env_prefix = "INSTAGRAM"
    account_option = "account_id"
    comment_reply_edge = "replies"
    hide_field = "hide"
    max_text_length = 1000  # Meta: 1000 bytes (parts() splits by bytes)

    def _from_change(self, field_name: str, value: Dict[str, Any], time: Any) -> Iterable[Event]:
        if field_name in ("comments", "live_comments"):
            yield self._from_comment(Comment.from_instagram(value, time))
        elif field_name == "mentions":
            media = id_field(value.get("media_id"), "media_id")
            comment = text_field(value.get("comment_id"), "comment_id")
            where = f"comment {comment}" if comment else "a caption"
            # Meta does not say who mentioned us: each mention is its own unknown author.
            yield InboundMessage(
                channel=self.name, channel_message_id=f"mention:{comment or media}",
                sender_id=f"mention:{media}:{comment or ''}", text=f"[mention in {where}]", kind="attachment",
                metadata={"attachment": "mention", "media_id": media, "comment_id": comment,
                          "mention_comment_id": comment, "reply_to": comment or media, "post": {"id": media}},
                visibility="public", thread=media)
        else:
            yield Ignored(f"field {field_name}")

    def reply_target(self, comment: Comment) -> str:
        """Instagram takes replies to top-level comments only (a reply to a reply goes there)."""
        return comment.parent_id or comment.comment_id

    def _fit(self, text: str) -> str:
        return _bytes_fit(super()._fit(text), self.max_text_length)

    def parts(self, text: str) -> List[str]:
        """Instagram counts 1000 *bytes*: a part with many multi-byte characters is split again."""
        parts: List[str] = []
        for part in super().parts(text):
            parts.extend([part] if len(part.encode()) <= self.max_text_length
                         else split_text(part, self.max_text_length // 4))
        return parts

    async def deliver(self, recipient: str, payload: Dict[str, Any], key: str, context: SendContext) -> SendResult:
        if context.visibility == "public" and recipient.startswith("mention:"):
            # A mention on someone else's media: answered through the account's mentions edge,
            # under the mentioning comment, or on the media for a mention in its caption.
            _, media, comment = (recipient.split(":", 2) + ["", ""])[:3]
            body: Dict[str, Any] = {"media_id": media, "message": _public_text(payload.get("text") or "", None)}
            if comment:
                body["comment_id"] = comment
            answer = await self.graph.post(f"{self.account_id}/mentions", body)
            return SendResult(_str(answer.get("id")))
        return await super().deliver(recipient, payload, key, context)


def quick_replies(buttons: List[Any]) -> List[Dict[str, str]]:
    """Rasa buttons as Messenger quick replies (at most 13; titles cut to 20 characters)."""
    replies = []
    for button in buttons:
        if not isinstance(button, dict):
            continue
        title = str(button.get("title") or button.get("payload") or "").strip()
        if not title:
            continue
        payload = str(button.get("payload") or title)[:MAX_PAYLOAD]
        if len(title) > MAX_QUICK_REPLY_TITLE:
            title = title[:MAX_QUICK_REPLY_TITLE - 1] + "…"
        replies.append({"content_type": "text", "title": title, "payload": payload})
    if len(replies) > MAX_QUICK_REPLIES:
        logger.info("quick replies: %d buttons, the first %d sent", len(replies), MAX_QUICK_REPLIES)
    return replies[:MAX_QUICK_REPLIES]


def _public_text(text: str, buttons: Any) -> str:
    """A comment has no buttons: their titles become lines of the text."""
    titles = [str(b.get("title")) for b in buttons or [] if isinstance(b, dict) and b.get("title")]
    return "\n".join([text.strip(), *(f"• {t}" for t in titles)]).strip()


def _bytes_fit(text: str, limit: int) -> str:
    data = text.encode()
    return text if len(data) <= limit else data[:limit - 3].decode(errors="ignore") + "…"


def _str(value: Any) -> Optional[str]:
    return None if value is None else str(value)
