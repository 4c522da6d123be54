"""What the bot says, sent through python-telegram-bot's ``Bot`` to Telegram's Bot API.

The recipient is a conversation id of this channel (``telegram:4242``); the chat is the
part after the prefix. An id of another channel is refused: one log line, nothing sent.

Every call goes through :func:`channels.outbound.call_with_retry`, at most once per
message: flood control (``RetryAfter``, honouring Telegram's ``retry_after``), a 503
and a connection that could not be opened are retried with back-off; a timeout
waiting for the answer, a dropped connection or another 5xx may have sent the message
already, and the Bot API cannot be asked, so it is logged as possibly undelivered and
not sent again; a ``BadRequest`` or ``Forbidden`` (the customer blocked the bot) fails
at once. A reply that cannot be delivered is logged with Telegram's reason, never the
text or the token, and the conversation goes on.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
import re
import warnings
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Tuple

import httpx
from rasa.core.channels.channel import OutputChannel
from telegram import Bot, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest, RequestData
from telegram.warnings import PTBDeprecationWarning

from channels.conversation_ids import recipient
from channels.outbound import (
    AT_MOST_ONCE,
    Failure,
    RetryPolicy,
    call_with_retry,
    http_failure,
)
from channels.telegram_buttons import ButtonPayloads, inline_keyboard
from channels.telegram_format import caption_fits, html_pieces, to_html
from channels.telegram_typing import ChatTyping

logger = logging.getLogger(__name__)
# python-telegram-bot 22 warns about its own coming change each time Telegram answers
# 429 (RetryAfter reads the attribute in its constructor); the operator cannot act on it.
warnings.filterwarnings(
    "ignore", message=r".*`retry_after` will be of type", category=PTBDeprecationWarning
)

CHANNEL = "telegram"
# Telegram refuses an empty message; a keyboard without words gets this.
_KEYBOARD_ONLY_TEXT = "\u2b07\ufe0f"
# Bot methods a `custom` response may name, by Bot API name or python-telegram-bot's.
_CUSTOM_METHODS = (
    "send_message",
    "send_photo",
    "send_document",
    "send_audio",
    "send_video",
    "send_voice",
    "send_animation",
    "send_sticker",
    "send_location",
    "send_venue",
    "send_contact",
    "send_poll",
    "send_dice",
    "send_chat_action",
)
# For a `custom` response without `method`, as Rasa's stock channel: the first key found.
_CUSTOM_BY_KEY = (
    ("text", "send_message"),
    ("photo", "send_photo"),
    ("document", "send_document"),
    ("audio", "send_audio"),
    ("video", "send_video"),
    ("voice", "send_voice"),
    ("animation", "send_animation"),
    ("sticker", "send_sticker"),
    ("address", "send_venue"),
    ("latitude", "send_location"),
    ("phone_number", "send_contact"),
)


class TelegramServerError(NetworkError):
    """The Bot API answered with a 5xx; ``status`` says which."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status


class TelegramHttp(HTTPXRequest):
    """python-telegram-bot's HTTP client, keeping the status of a 5xx answer.

    python-telegram-bot reports every 5xx as a ``NetworkError`` whose message is
    Telegram's description; whether the message may have been sent depends on the
    status (a 503 was not acted on, a 500 or 502 may have been).
    """

    async def do_request(  # positional: HTTPXRequest.do_request's signature, kept
        self,
        url: str,
        method: str,
        request_data: Optional[RequestData] = None,
        read_timeout: Any = HTTPXRequest.DEFAULT_NONE,
        write_timeout: Any = HTTPXRequest.DEFAULT_NONE,
        connect_timeout: Any = HTTPXRequest.DEFAULT_NONE,
        pool_timeout: Any = HTTPXRequest.DEFAULT_NONE,
    ) -> Tuple[int, bytes]:
        """Send one request; raise TelegramServerError, with the status, on a 5xx answer."""
        status, payload = await super().do_request(
            url,
            method,
            request_data,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
        )
        if status >= 500:
            try:
                description = str(self.parse_json_payload(payload).get("description") or "")
            except TelegramError:
                description = ""
            raise TelegramServerError(status, description or f"HTTP {status}")
        return status, payload


# httpx errors raised before a request left this server: retrying cannot duplicate it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def classify_telegram_error(error: BaseException, *, token: str = "") -> Failure:
    """python-telegram-bot's exceptions as retryable or not, with a reason safe to log."""

    def said(exc: BaseException) -> str:
        text = str(exc)[:160]
        return text.replace(token, "<token>") if token else text

    if isinstance(error, RetryAfter):
        return Failure(True, "HTTP 429 (flood control)", _retry_after_seconds(error))
    if isinstance(error, TelegramServerError):
        return http_failure_with(error.status, said(error))
    if isinstance(error, (TimedOut, NetworkError)) and isinstance(error.__cause__, _NOT_SENT):
        return Failure(True, f"could not connect ({type(error.__cause__).__name__})")
    if isinstance(error, TimedOut):
        return Failure(True, "timed out waiting for the answer", ambiguous=True)
    if isinstance(error, BadRequest):  # a NetworkError subclass: test it first
        return Failure(False, f"bad request ({said(error)})")
    if isinstance(error, NetworkError):
        return Failure(True, f"network error ({said(error)})", ambiguous=True)
    if isinstance(error, Forbidden):
        return Failure(False, f"forbidden: the customer blocked the bot or left ({said(error)})")
    if isinstance(error, InvalidToken):
        return Failure(False, "the access_token was rejected (check it with @BotFather)")
    if isinstance(error, ChatMigrated):
        return Failure(False, "the group became a supergroup with a new chat id")
    if isinstance(error, TelegramError):
        return Failure(False, f"{type(error).__name__} ({said(error)})")
    return Failure(False, f"unexpected {type(error).__name__}")


def http_failure_with(status: int, description: str) -> Failure:
    """A 5xx from the Bot API: :func:`channels.outbound.http_failure` with Telegram's words."""
    failure = http_failure(status)
    return Failure(
        failure.retryable, f"{failure.reason} ({description})", ambiguous=failure.ambiguous
    )


def _retry_after_seconds(error: RetryAfter) -> float:
    # Until python-telegram-bot 23 the attribute is an int and reading it warns.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: Any = error.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class TelegramBot(OutputChannel):
    """Replies to Telegram chats; the recipient is a conversation id (``telegram:<chat>``)."""

    @classmethod
    def name(cls) -> str:
        """The channel's name in Rasa: ``telegram``."""
        return CHANNEL

    def __init__(
        self,
        bot: Bot,
        payloads: ButtonPayloads,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        policy: RetryPolicy = AT_MOST_ONCE,
        typing: Optional[ChatTyping] = None,
    ) -> None:
        super().__init__()
        self.bot = bot
        self.payloads = payloads
        self.policy = policy
        self._sleep = sleep  # tests pass one that records the back-off instead
        # The chat's "typing…" during this turn, stopped before anything is sent.
        self.typing = typing

    async def call(self, operation: str, call: Callable[[], Awaitable[Any]]) -> Optional[Any]:
        """One Bot API call with retries; None when it could not be made (already logged).

        The turn's typing indicator stops first: Telegram gets no action after a reply.
        """
        if self.typing is not None:
            await self.typing.stop()
        token = self.bot.token
        return await call_with_retry(
            CHANNEL,
            operation,
            call,
            lambda error: classify_telegram_error(error, token=token),
            policy=self.policy,
            sleep=self._sleep,
        )

    @staticmethod
    def _chat(recipient_id: str) -> Optional[str]:
        """The chat of a conversation of this channel; None (logged) for another's."""
        return recipient(CHANNEL, recipient_id)

    async def _send_html(
        self,
        chat_id: str,
        pieces: List[str],
        *,
        reply_markup: Optional[InlineKeyboardMarkup] = None,
    ) -> None:
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            markup = reply_markup if last else None

            async def send(*, piece: str = piece, markup: Any = markup) -> Any:
                return await self.bot.send_message(
                    chat_id,
                    piece,
                    parse_mode=ParseMode.HTML,
                    reply_markup=markup,
                )

            await self.call("sendMessage", send)

    # send_text_with_buttons' arguments once the chat is known: alike by necessity.
    async def _send_keyboard(
        self,
        chat_id: str,
        text: str,
        buttons: List[Dict[str, Any]],
        *,
        button_type: Optional[str] = None,
    ) -> None:
        keyboard = await inline_keyboard(buttons, self.payloads, button_type=button_type)
        pieces = html_pieces(text or "") or [_KEYBOARD_ONLY_TEXT]
        await self._send_html(chat_id, pieces, reply_markup=keyboard)

    async def _send_photo(self, chat_id: str, image: str, *, caption: Optional[str] = None) -> None:
        async def send() -> Any:
            return await self.bot.send_photo(
                chat_id,
                image,
                caption=to_html(caption) if caption else None,
                parse_mode=ParseMode.HTML if caption else None,
            )

        await self.call("sendPhoto", send)

    # ------------------------------------------------------------ Rasa's methods
    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        """As Rasa's, except that a short text with an image becomes the photo's caption."""
        text, image = message.get("text"), message.get("image")
        rich = ("buttons", "quick_replies", "custom", "attachment", "elements")
        if text and image and not any(message.get(k) for k in rich) and caption_fits(text):
            await self.send_image_url(recipient_id, str(image), caption=str(text))
            return
        await super().send_response(recipient_id, message)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        """Send ``text`` as Telegram HTML, split into messages Telegram accepts."""
        chat = self._chat(recipient_id)
        if chat is not None:
            await self._send_html(chat, html_pieces(text))

    async def send_text_with_buttons(
        self,
        recipient_id: str,
        text: str,
        buttons: List[Dict[str, Any]],
        *,
        button_type: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        """The text, with the buttons as an inline keyboard under its last piece."""
        chat = self._chat(recipient_id)
        if chat is not None:
            await self._send_keyboard(chat, text, buttons, button_type=button_type)

    async def send_quick_replies(
        self, recipient_id: str, text: str, quick_replies: List[Dict[str, Any]], **kwargs: Any
    ) -> None:
        """Send the quick replies as inline buttons, like ``send_text_with_buttons``."""
        # An inline keyboard rather than a reply keyboard: a click sends the payload,
        # where a reply keyboard would send the title for NLU to guess at.
        await self.send_text_with_buttons(recipient_id, text, quick_replies, **kwargs)

    async def send_image_url(
        self, recipient_id: str, image: str, *, caption: Optional[str] = None, **kwargs: Any
    ) -> None:
        """Send the image at the URL ``image`` as a photo, with ``caption`` under it."""
        chat = self._chat(recipient_id)
        if chat is not None:
            await self._send_photo(chat, image, caption=caption)

    async def send_attachment(self, recipient_id: str, attachment: Any, **kwargs: Any) -> None:
        """A file by URL (a string, or Rasa's ``{"payload": {"src"|"url": …}}``)."""
        chat = self._chat(recipient_id)
        if chat is None:
            return
        url: Any = attachment
        if isinstance(attachment, dict):
            payload = attachment.get("payload")
            inner = payload if isinstance(payload, dict) else attachment
            url = inner.get("src") or inner.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            logger.error("%s: attachment without a URL, not sent", CHANNEL)
            return

        async def send() -> Any:
            return await self.bot.send_document(chat, url)

        await self.call("sendDocument", send)

    async def send_elements(
        self, recipient_id: str, elements: Iterable[Dict[str, Any]], **kwargs: Any
    ) -> None:
        """Each element (a card) as its image, then its title, subtitle and buttons."""
        chat = self._chat(recipient_id)
        if chat is None:
            return
        for element in elements:
            if element.get("image_url"):
                await self._send_photo(chat, str(element["image_url"]))
            title, subtitle = element.get("title") or "", element.get("subtitle") or ""
            text = "\n".join(part for part in (f"**{title}**" if title else "", subtitle) if part)
            await self._send_keyboard(chat, text, element.get("buttons") or [])

    async def send_custom_json(
        self, recipient_id: str, json_message: Dict[str, Any], **kwargs: Any
    ) -> None:
        """A Bot API call from a ``custom`` response.

        ``{"method": "sendPoll", "question": …, "options": […]}`` calls that method;
        without ``method`` the first of text, photo, document, audio, video, voice,
        animation, sticker, address (venue), latitude (location), phone_number
        (contact) decides, as in Rasa's stock channel. ``chat_id`` defaults to the
        customer's chat.
        """
        chat = self._chat(recipient_id)
        if chat is None:
            return
        params = dict(json_message)
        method = params.pop("method", None)
        if method is None:
            method = next((m for key, m in _CUSTOM_BY_KEY if params.get(key) is not None), None)
        name = _snake_case(str(method)) if method else ""
        if name not in _CUSTOM_METHODS:
            logger.error(
                "%s: custom response with method %r not sent; use one of %s",
                CHANNEL,
                method,
                ", ".join(_CUSTOM_METHODS),
            )
            return
        params.setdefault("chat_id", chat)
        function = getattr(self.bot, name)

        async def send() -> Any:
            return await function(**params)

        await self.call(name, send)
