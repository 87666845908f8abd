"""Telegram connector (python-telegram-bot 22, our own asyncio loop; no ``Application``).

Inbound, webhook mode: ``POST /webhooks/<name>``; Telegram sends the secret token given to
``setWebhook`` in ``X-Telegram-Bot-Api-Secret-Token`` (missing or wrong: 403, nothing stored).
The body is parsed with ``telegram.Update.de_json`` (malformed: 400 with a reason). Polling
mode (development without a public URL): a background task calls ``getUpdates`` and feeds
each update through the same path. Intake is idempotent on ``update_id``.

Only private chats are answered: a text is kind ``text``; an edited message kind ``edit``;
a button press (``callback_query``) kind ``button`` with the callback data as its text (the
query is answered, best effort, after intake); a photo, sticker, voice message, document,
location, ... kind ``attachment`` with the caption or a short description (``[photo]``) as its
text and ``{"attachment": ..., "file_id": ...}`` in its metadata. Groups, supergroups,
channel posts and other update types get a 200 and are ignored (logged, nothing stored).

Outbound: ``sendMessage`` in plain text (never a parse mode), buttons as an inline keyboard;
texts over 4096 characters go out as several messages. Errors: 429 ``retry_after`` → wait,
403 (blocked by the user) → recipient unreachable, 400 → permanent, network errors → retried.

Options: ``mode`` (``webhook`` | ``polling``, default ``webhook``), ``token_env`` (default
``WEBCARE_TELEGRAM_TOKEN``), ``secret_env`` (default ``WEBCARE_TELEGRAM_SECRET``; required in
webhook mode), ``api_base_url`` (default ``https://api.telegram.org``; a local Bot API server
or a test double), ``rate_limit_per_second`` (default 25), ``timeout_seconds`` (default 10),
``poll_timeout_seconds`` (long-polling timeout, default 30).

Register the webhook with ``webcare telegram set-webhook --channel NAME --url PUBLIC_URL``.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import warnings
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Set, Tuple, Union
from urllib.parse import urlsplit

from aiohttp import web
from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.constants import ChatType, MessageEntityType
from telegram.error import (
    BadRequest as TelegramBadRequest,
    ChatMigrated,
    Conflict,
    Forbidden as TelegramForbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)
from telegram.request import HTTPXRequest

from bot.errors import InvalidInput, NotAllowed, WebcareError
from connectors.base import (
    Capabilities,
    Connector,
    ConnectorError,
    DeliveryError,
    Ignored,
    InboundMessage,
    IntakePort,
    SendProgress,
    SendResult,
    json_body,
)
from connectors.registry import connector_class

if TYPE_CHECKING:
    import argparse

    from bot.config import Config

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
DEFAULT_API_BASE_URL = "https://api.telegram.org"
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
MAX_TEXT_LENGTH = 4096  # per message, in UTF-16 code units (Telegram counts like that)
MAX_CALLBACK_DATA_BYTES = 64
SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what setWebhook accepts as secret_token

# (attribute of telegram.Message, label) in the order they are checked: an animation message
# also carries a document, a venue also a location.
_FILE_ATTACHMENTS = ("animation", "photo", "video", "video_note", "voice", "audio", "sticker", "document")
_LABELS = {"voice": "voice message", "video_note": "video message", "animation": "GIF"}


class TelegramConnector(Connector):
    """Telegram Bot API through python-telegram-bot's ``Bot``, in webhook or polling mode."""

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        super().__init__(name, options)
        self.mode = str(options.get("mode", "webhook"))
        if self.mode not in ("webhook", "polling"):
            raise ConnectorError(f"channels.{name}.mode must be 'webhook' or 'polling', not {self.mode!r}")
        token_env = str(options.get("token_env", "WEBCARE_TELEGRAM_TOKEN"))
        token = os.environ.get(token_env, "").strip()
        if not token:
            raise ConnectorError(f"channels.{name}: set the Telegram bot token (from @BotFather) in ${token_env}")
        self._token = token
        self.token_env = token_env
        secret_env = str(options.get("secret_env", "WEBCARE_TELEGRAM_SECRET"))
        secret = os.environ.get(secret_env) or None
        if secret is None and self.mode == "webhook":
            raise ConnectorError(
                f"channels.{name}: set the webhook secret token in ${secret_env} "
                "(1-256 characters: letters, digits, '_' and '-')"
            )
        if secret is not None and not SECRET_PATTERN.fullmatch(secret):
            raise ConnectorError(
                f"channels.{name}: ${secret_env} must be 1-256 characters of A-Z, a-z, 0-9, '_' and '-' "
                "(Telegram's rule for webhook secret tokens)"
            )
        self.secret = secret
        self.secret_env = secret_env
        self.api_base_url = str(options.get("api_base_url", DEFAULT_API_BASE_URL)).rstrip("/")
        parts = urlsplit(self.api_base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConnectorError(f"channels.{name}.api_base_url must be an http(s) URL, not {self.api_base_url!r}")
        try:
            self.timeout = float(options.get("timeout_seconds", 10))
            self.poll_timeout = int(options.get("poll_timeout_seconds", 30))
            rate = float(options.get("rate_limit_per_second", 25))
        except (TypeError, ValueError) as exc:
            raise ConnectorError(f"channels.{name}: timeouts and rate limit must be numbers: {exc}") from None
        self.capabilities = Capabilities(max_text_length=MAX_TEXT_LENGTH, buttons=True, rate_limit_per_second=rate)
        _redact_in_http_logs(token)
        self.bot = Bot(
            token,
            base_url=f"{self.api_base_url}/bot",
            base_file_url=f"{self.api_base_url}/file/bot",
            request=HTTPXRequest(
                connection_pool_size=32, read_timeout=self.timeout, write_timeout=self.timeout,
                connect_timeout=self.timeout, pool_timeout=self.timeout,
            ),
            # getUpdates adds its long-polling timeout to this read timeout.
            get_updates_request=HTTPXRequest(
                connection_pool_size=1, read_timeout=self.timeout, write_timeout=self.timeout,
                connect_timeout=self.timeout, pool_timeout=self.timeout,
            ),
        )
        self._intake: Optional[IntakePort] = None
        self._poller: Optional[asyncio.Task] = None
        self._background: Set[asyncio.Task] = set()
        # Split texts: how many parts of an idempotency key went out already, so a retry
        # (after a 429 on part 2, say) does not send part 1 again. In memory only.
        self._progress = SendProgress()

    # ------------------------------------------------------------ lifecycle

    def setup(self, app: web.Application, intake: IntakePort) -> None:
        self._intake = intake
        if self.mode == "webhook":
            app.router.add_post(f"/webhooks/{self.name}", self._receive)

    async def start(self) -> None:
        await self.open()
        if self.mode == "polling":
            if self._intake is None:
                raise ConnectorError(f"channels.{self.name}: polling needs setup() first")
            self._poller = asyncio.create_task(self._poll(), name=f"telegram-{self.name}-polling")
            logger.info("telegram %s: long polling started", self.name)

    async def open(self) -> None:
        """Open the HTTP clients and check the token with ``getMe``."""
        try:
            await self.bot.initialize()
        except InvalidToken:
            raise ConnectorError(
                f"channels.{self.name}: Telegram rejected the bot token in ${self.token_env}"
            ) from None
        except TelegramError as exc:
            # Telegram unreachable right now: start anyway; sends are retried by the outbox.
            logger.warning("telegram %s: getMe failed (%s); starting anyway", self.name, self._redact(exc))
        else:
            logger.info("telegram %s: connected as @%s", self.name, self.bot.username)

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        if self._background:
            _, pending = await asyncio.wait(self._background, timeout=2.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.bot.shutdown()

    # ------------------------------------------------------------ inbound

    async def _receive(self, request: web.Request) -> web.Response:
        presented = request.headers.get(SECRET_HEADER)
        assert self.secret is not None  # webhook mode requires it
        if presented is None or not hmac.compare_digest(presented.encode(), self.secret.encode()):
            raise NotAllowed(f"missing or wrong {SECRET_HEADER} header")
        update = self.parse(await request.read())
        return web.json_response(await self.handle_update(update))

    def parse(self, body: bytes) -> Update:
        """The webhook body as a ``telegram.Update`` (400 with a reason if it is not one)."""
        data = json_body(body)
        if not isinstance(data, dict):
            raise InvalidInput("body must be a JSON object (a Telegram Update)")
        try:
            update = Update.de_json(data, self.bot)
        except Exception as exc:  # de_json raises whatever the bad field makes it raise
            raise InvalidInput(f"not a Telegram Update: {type(exc).__name__}: {exc}") from None
        if isinstance(update.update_id, bool) or not isinstance(update.update_id, int):
            raise InvalidInput("not a Telegram Update: 'update_id' must be an integer")
        return update

    async def handle_update(self, update: Update) -> Dict[str, Any]:
        """Store what webcare acts on (via intake); answer button presses. Used by both modes."""
        assert self._intake is not None, "setup() was not called"
        outcome = self.to_inbound(update)
        if isinstance(outcome, Ignored):
            logger.info("telegram %s: update %s ignored: %s", self.name, update.update_id, outcome.reason)
            result: Dict[str, Any] = {"status": "ignored", "reason": outcome.reason}
        else:
            accepted = await self._intake.accept(outcome)
            result = {"status": "duplicate" if accepted.duplicate else "accepted", "message_id": accepted.message_id}
            if outcome.kind == "edit" and not accepted.duplicate:
                logger.info("telegram %s: message edited by %s (logged, not answered again)",
                            self.name, outcome.sender_id)
        if update.callback_query is not None:
            # Stops the spinner on the customer's button; also for a redelivered update.
            self._in_background(self._answer_callback(update.callback_query.id))
        return result

    def to_inbound(self, update: Update) -> Union[InboundMessage, Ignored]:
        """Normalize ``update``; :class:`Ignored` for what webcare does not act on."""
        try:
            if update.message is not None:
                return self._from_message(update, update.message, edit=False)
            if update.edited_message is not None:
                return self._from_message(update, update.edited_message, edit=True)
            if update.callback_query is not None:
                return self._from_callback(update, update.callback_query)
        except (AttributeError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a valid Telegram Update: {type(exc).__name__}: {exc}") from None
        if update.channel_post is not None or update.edited_channel_post is not None:
            return Ignored("channel post")
        kinds = [t for t in Update.ALL_TYPES if getattr(update, t, None) is not None]
        kinds += sorted(update.api_kwargs)  # types newer than this python-telegram-bot
        return Ignored(f"unsupported update type {', '.join(kinds) or '(empty)'}")

    def _from_message(self, update: Update, message: Message, edit: bool) -> Union[InboundMessage, Ignored]:
        chat_id = _private_chat_id(message)
        if isinstance(chat_id, Ignored):
            return chat_id
        metadata: Dict[str, Any] = {"telegram_message_id": message.message_id}
        if message.text is not None:
            if not isinstance(message.text, str):
                raise InvalidInput("not a valid Telegram Update: 'text' must be a string")
            text = message.text
            kind = "text"
            command = _command(message)
            if command:
                metadata["command"] = command
        else:
            attachment = _attachment(message)
            if attachment is None:
                return Ignored("message without text or a supported attachment")
            description, details = attachment
            caption = message.caption if isinstance(message.caption, str) and message.caption.strip() else None
            text = caption or description
            kind = "attachment"
            metadata.update(details)
        user = message.from_user
        return InboundMessage(
            channel=self.name,
            channel_message_id=str(update.update_id),
            sender_id=str(chat_id),
            text=text,
            sender_name=_name(user) or _name(message.chat),
            language_hint=user.language_code if user is not None else None,
            kind="edit" if edit else kind,
            metadata=metadata,
        )

    def _from_callback(self, update: Update, query: CallbackQuery) -> Union[InboundMessage, Ignored]:
        if query.message is None:
            return Ignored("button of an inline-mode message")
        chat_id = _private_chat_id(query.message)
        if isinstance(chat_id, Ignored):
            return chat_id
        if not isinstance(query.data, str) or not query.data:
            return Ignored("button press without callback data")
        return InboundMessage(
            channel=self.name,
            channel_message_id=str(update.update_id),
            sender_id=str(chat_id),
            text=query.data,
            sender_name=_name(query.from_user),
            language_hint=query.from_user.language_code,
            kind="button",
            metadata={"callback_query_id": query.id, "telegram_message_id": query.message.message_id},
        )

    async def _answer_callback(self, query_id: str) -> None:
        try:
            await self.bot.answer_callback_query(query_id)
        except TelegramError as exc:  # best effort: the message itself is stored already
            logger.info("telegram %s: answerCallbackQuery failed: %s", self.name, self._redact(exc))

    def _in_background(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------ long polling

    async def _poll(self) -> None:
        """``getUpdates`` in a loop; an update is confirmed only after intake committed it."""
        offset: Optional[int] = None
        failures = 0
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=offset, timeout=self.poll_timeout, allowed_updates=ALLOWED_UPDATES)
            except asyncio.CancelledError:
                raise
            except RetryAfter as exc:
                await asyncio.sleep(_seconds(exc))
                continue
            except Conflict:
                failures += 1
                logger.error("telegram %s: getUpdates conflicts with a webhook or another poller; "
                             "run `webcare telegram delete-webhook --channel %s`", self.name, self.name)
                await asyncio.sleep(_backoff(failures))
                continue
            except TelegramError as exc:
                failures += 1
                logger.warning("telegram %s: getUpdates failed: %s", self.name, self._redact(exc))
                await asyncio.sleep(_backoff(failures))
                continue
            failures = 0
            for update in updates:
                try:
                    await self.handle_update(update)
                except asyncio.CancelledError:
                    raise
                except WebcareError as exc:  # a malformed update: skip it, it will not get better
                    logger.warning("telegram %s: update %s skipped: %s", self.name, update.update_id, exc.reason)
                except Exception:
                    # The store is down, say: keep the offset, so Telegram sends it again.
                    logger.exception("telegram %s: update %s not stored; retrying", self.name, update.update_id)
                    await asyncio.sleep(1.0)
                    break
                offset = update.update_id + 1

    # ------------------------------------------------------------ outbound

    async def send(self, recipient: str, payload: Dict[str, Any], idempotency_key: str) -> SendResult:
        try:
            chat_id = int(recipient)
        except (TypeError, ValueError):
            raise DeliveryError(f"{recipient!r} is not a Telegram chat id", permanent=True) from None
        steps = self._steps(payload)
        done, last_id = self._progress.get(idempotency_key)
        for index in range(done, len(steps)):
            what, content, markup = steps[index]
            try:
                if what == "photo":
                    sent = await self.bot.send_photo(chat_id, content, reply_markup=markup)
                else:
                    sent = await self.bot.send_message(chat_id, content, reply_markup=markup)
            except TelegramError as exc:
                if index > 0:
                    self._progress.remember(idempotency_key, index, last_id)
                raise self._delivery_error(exc) from exc
            last_id = str(sent.message_id)
        self._progress.forget(idempotency_key)
        return SendResult(last_id)

    def _steps(self, payload: Dict[str, Any]) -> List[Tuple[str, str, Optional[InlineKeyboardMarkup]]]:
        """The API calls for one outbox payload; the keyboard goes on the last one."""
        text = payload.get("text")
        if text is not None and not isinstance(text, str):
            raise DeliveryError("'text' must be a string", permanent=True)
        image = payload.get("image")
        steps: List[Tuple[str, str, Optional[InlineKeyboardMarkup]]] = []
        if isinstance(image, str) and image:
            steps.append(("photo", image, None))
        steps += [("text", part, None) for part in split_text(text or "", self.capabilities.max_text_length)]
        markup = keyboard(payload.get("buttons") or [])
        if markup is not None:
            if not steps or steps[-1][0] != "text":
                raise DeliveryError("buttons need a text to go with them", permanent=True)
            steps[-1] = (steps[-1][0], steps[-1][1], markup)
        if not steps:
            raise DeliveryError("nothing to send: the payload has no text", permanent=True)
        return steps


    def _delivery_error(self, exc: TelegramError) -> DeliveryError:
        reason = f"Telegram: {type(exc).__name__}: {self._redact(exc)}"
        if isinstance(exc, RetryAfter):
            return DeliveryError(reason, retry_after=_seconds(exc))
        if isinstance(exc, TelegramForbidden):  # blocked by the user, user deactivated, ...
            return DeliveryError(reason, unreachable=True)
        if isinstance(exc, (TelegramBadRequest, ChatMigrated)):
            return DeliveryError(reason, permanent=True)
        if isinstance(exc, InvalidToken):
            logger.error("telegram %s: the bot token was rejected; fix it, queued messages wait", self.name)
        return DeliveryError(reason)  # NetworkError, TimedOut, Conflict, ...: retried

    def _redact(self, value: Any) -> str:
        return str(value).replace(self._token, "<token>")

    # ------------------------------------------------------------ webhook registration

    def webhook_url(self, public_url: str) -> str:
        """``https://host/...`` → the full webhook URL of this channel."""
        parts = urlsplit(public_url)
        if parts.scheme != "https" or not parts.netloc:
            raise ConnectorError(f"--url must be the service's public https:// URL, not {public_url!r}")
        path = f"/webhooks/{self.name}"
        base = public_url.rstrip("/")
        return base if base.endswith(path) else base + path

    async def set_webhook(self, public_url: str, drop_pending_updates: bool = False) -> str:
        if self.mode != "webhook" or self.secret is None:
            raise ConnectorError(f"channels.{self.name} uses mode: {self.mode}; set mode: webhook first")
        url = self.webhook_url(public_url)
        await self.open()
        try:
            await self.bot.set_webhook(url, allowed_updates=ALLOWED_UPDATES, secret_token=self.secret,
                                       drop_pending_updates=drop_pending_updates)
        finally:
            await self.bot.shutdown()
        return url

    async def delete_webhook(self, drop_pending_updates: bool = False) -> None:
        await self.open()
        try:
            await self.bot.delete_webhook(drop_pending_updates=drop_pending_updates)
        finally:
            await self.bot.shutdown()


# ---------------------------------------------------------------- helpers


def split_text(text: str, limit: int = MAX_TEXT_LENGTH) -> List[str]:
    """``text`` in parts of at most ``limit`` UTF-16 code units, cut at a paragraph, line or
    word boundary where there is one in the second half of a part."""
    parts: List[str] = []
    rest = text
    while rest.strip():
        end, units = 0, 0
        for end, char in enumerate(rest):
            units += 2 if ord(char) > 0xFFFF else 1
            if units > limit:
                break
        else:
            parts.append(rest.strip())
            break
        end = max(end, 1)
        head = rest[:end]
        cut = end
        for separator in ("\n\n", "\n", " "):
            found = head.rfind(separator)
            if found > end // 2:
                cut = found
                break
        if head[:cut].strip():
            parts.append(head[:cut].strip())
        rest = rest[cut:]
    return parts


def keyboard(buttons: List[Any]) -> Optional[InlineKeyboardMarkup]:
    """Rasa buttons (``{"title", "payload"}``, or ``{"title", "url"}``) as an inline keyboard,
    one per row. Callback data is limited to 64 bytes: a longer payload sends the title."""
    rows = []
    for button in buttons:
        if not isinstance(button, dict):
            continue
        title = str(button.get("title") or button.get("payload") or "").strip()
        if not title:
            continue
        if isinstance(button.get("url"), str) and button["url"]:
            rows.append([InlineKeyboardButton(title, url=button["url"])])
            continue
        data = str(button.get("payload") or title)
        if len(data.encode()) > MAX_CALLBACK_DATA_BYTES:
            data = _truncate_bytes(title, MAX_CALLBACK_DATA_BYTES)
        rows.append([InlineKeyboardButton(title, callback_data=data)])
    return InlineKeyboardMarkup(rows) if rows else None


def _truncate_bytes(text: str, limit: int) -> str:
    return text.encode()[:limit].decode(errors="ignore")


def _private_chat_id(message: Any) -> Union[int, Ignored]:
    chat = message.chat
    if chat.type != ChatType.PRIVATE:
        return Ignored(f"{chat.type} chat")
    if isinstance(chat.id, bool) or not isinstance(chat.id, int):
        raise InvalidInput("not a valid Telegram Update: 'chat.id' must be an integer")
    return chat.id


def _command(message: Message) -> Optional[str]:
    """``start`` for ``/start`` or ``/start@our_bot payload`` (a bot command at the start)."""
    for entity in message.entities or ():
        if entity.type == MessageEntityType.BOT_COMMAND and entity.offset == 0:
            return message.text[1:entity.length].split("@")[0] or None
    return None


def _attachment(message: Message) -> Optional[Tuple[str, Dict[str, Any]]]:
    """(short description, metadata) of a message without text, or ``None``."""
    for attribute in _FILE_ATTACHMENTS:
        value = getattr(message, attribute, None)
        if not value:
            continue
        if attribute == "photo":
            value = max(value, key=lambda size: (size.width or 0) * (size.height or 0))
        details: Dict[str, Any] = {"attachment": attribute, "file_id": value.file_id,
                                   "file_unique_id": value.file_unique_id}
        label = _LABELS.get(attribute, attribute)
        if getattr(value, "mime_type", None):
            details["mime_type"] = value.mime_type
        if attribute == "sticker" and value.emoji:
            details["emoji"] = value.emoji
            label = f"sticker {value.emoji}"
        if getattr(value, "file_name", None):
            details["file_name"] = value.file_name
            label = f"{label}: {value.file_name}"
        if attribute in ("animation", "video", "video_note", "voice", "audio"):
            details["duration"] = _duration(value)
        return f"[{label}]", details
    if message.venue is not None:
        venue = message.venue
        return f"[location: {venue.title}]", {
            "attachment": "location", "latitude": venue.location.latitude,
            "longitude": venue.location.longitude, "title": venue.title, "address": venue.address}
    if message.location is not None:
        return "[location]", {"attachment": "location", "latitude": message.location.latitude,
                              "longitude": message.location.longitude}
    if message.contact is not None:
        contact = message.contact
        return "[contact]", {"attachment": "contact", "phone_number": contact.phone_number,
                             "first_name": contact.first_name, "user_id": contact.user_id}
    return None


def _duration(value: Any) -> Optional[float]:
    with warnings.catch_warnings():  # PTB 22 warns about int vs. timedelta periods
        warnings.simplefilter("ignore")
        duration = value.duration
    if duration is None:
        return None
    return duration.total_seconds() if hasattr(duration, "total_seconds") else float(duration)


def _seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return max(0.0, value.total_seconds() if hasattr(value, "total_seconds") else float(value))


def _backoff(failures: int) -> float:
    return min(30.0, 2.0 ** min(failures, 5))


def _name(who: Any) -> Optional[str]:
    if who is None or not getattr(who, "first_name", None):
        return None
    return who.full_name


class _RedactToken(logging.Filter):
    """httpx logs each request URL at INFO, and the Bot API URL contains the bot token."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: Set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(token in message for token in self.tokens):
            for token in self.tokens:
                message = message.replace(token, "<token>")
            record.msg, record.args = message, ()
        return True


_REDACTOR = _RedactToken()


def _redact_in_http_logs(token: str) -> None:
    _REDACTOR.tokens.add(token)
    for name in ("httpx", "telegram.Bot", "telegram._bot"):
        target = logging.getLogger(name)
        if _REDACTOR not in target.filters:
            target.addFilter(_REDACTOR)


# ---------------------------------------------------------------- command line


def telegram_connector(config: "Config", channel: str) -> TelegramConnector:
    """The configured Telegram channel ``channel`` (for the command line)."""
    options = config.channels.get(channel)
    if not isinstance(options, Mapping) or not options.get("type"):
        known = ", ".join(sorted(config.channels)) or "none"
        raise ConnectorError(f"no channel {channel!r} in the configuration (channels: {known})")
    cls = connector_class(str(options["type"]))
    if not issubclass(cls, TelegramConnector):
        raise ConnectorError(f"channels.{channel} is not a Telegram channel ({options['type']})")
    settings = {k: v for k, v in options.items() if k not in ("type", "enabled")}
    return cls.from_config(channel, settings)  # type: ignore[return-value]


def run_cli(args: "argparse.Namespace", config: "Config") -> int:
    """``webcare telegram set-webhook | delete-webhook`` (synchronous: runs its own loop)."""
    import sys

    try:
        connector = telegram_connector(config, args.channel)
        drop = bool(getattr(args, "drop_pending_updates", False))
        if args.telegram_command == "set-webhook":
            url = asyncio.run(connector.set_webhook(args.url, drop_pending_updates=drop))
            print(f"telegram {args.channel}: webhook set to {url} "
                  f"(secret token from ${connector.secret_env}; updates: {', '.join(ALLOWED_UPDATES)})")
        else:
            asyncio.run(connector.delete_webhook(drop_pending_updates=drop))
            print(f"telegram {args.channel}: webhook deleted")
    except ConnectorError as exc:
        print(f"webcare: {exc}", file=sys.stderr)
        return 2
    except TelegramError as exc:
        print(f"webcare: Telegram refused: {connector._redact(exc)}", file=sys.stderr)
        return 1
    return 0
