"""Telegram as a Rasa channel: Bot API webhook updates in, messages and inline keyboards out.

Use it in ``credentials.yml`` in place of Rasa's stock ``telegram:`` (same keys, plus
``secret_token``)::

    channels.telegram.TelegramInput:
      access_token: ${TELEGRAM_TOKEN}
      verify: northwind_help_bot
      webhook_url: https://bot.example.com/webhooks/telegram/webhook
      secret_token: ${TELEGRAM_SECRET_TOKEN}

then register the webhook once with
``python -m channels.telegram set-webhook --credentials credentials.yml``.

Telegram posts updates to ``/webhooks/telegram/webhook``. Each request is checked in
this order: the ``X-Telegram-Bot-Api-Secret-Token`` header (constant-time compare; 401
when missing, 403 when wrong), size and content type, UTF-8 JSON, then the body as a
``telegram.Update``. The webhook answers at once and the bot runs out of band, because
Telegram holds back a chat's next update until the last one is acknowledged; a
re-delivered ``update_id`` is dropped, also after a restart (a SQLite file). Then the
chat's rate (``rate_limits``) is counted: an update over it is acknowledged and dropped,
with a log line.

Handled: messages (text, commands, captions, photos, voice notes, audio, video,
documents; stickers, locations, contacts and the like as unsupported attachments) and
clicks on inline keyboards (``callback_query``: answered at once, then the button's
payload is the customer's message). While the bot's turn on a message runs, the chat
shows "typing…" (``sendChatAction``, :mod:`channels.telegram_typing`) until the first
reply or the turn's end. Edited messages are ignored unless
``answer_edited_messages`` is on. The Rasa sender id is the chat id after this
channel's prefix (``telegram:4242``, :mod:`channels.conversation_ids`), so no other
channel can address the chat; one chat's messages are handled one after the other, in
the order they arrived. No polling: updates only come by webhook.

What the customer types is text for Rasa, whatever it starts with: ``/restart`` or
``/inform{...}`` is read by NLU, and a button's payload is taken as an intent only if
the bot offered that button in the conversation (:mod:`rasa_llm.server.intent_shortcuts`).
Only a command the operator mapped in ``commands`` to an intent (``/start`` to
``/greet`` by default) reaches Rasa as that intent, parsed by the channel.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Set

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from telegram import Bot, CallbackQuery, Message
from telegram.constants import ParseMode
from telegram.request import HTTPXRequest

import rasa_llm  # noqa: F401 - installs rasa-llm's server guards before Rasa makes its app
from channels.attachments import Said
from channels.conversation_ids import conversation_id
from channels.delivery_log import DeliveryLog
from channels.rate_limits import RateLimiter
from channels.telegram_buttons import ButtonPayloads
from channels.telegram_config import CHANNEL, TelegramConfig
from channels.telegram_format import MESSAGE_LIMIT, escape, utf16_length
from channels.telegram_output import TelegramBot, TelegramHttp, classify_telegram_error
from channels.telegram_typing import ChatTyping, typing_action
from channels.telegram_updates import Incoming, UpdateReader, parse_update
from channels.turns import Turns
from channels.verification import TelegramSecretVerifier
from channels.webhook_guard import (
    DEFAULT_MAX_BODY_BYTES,
    WebhookRejected,
    parse_json_object,
    read_body,
    reject,
)

logger = logging.getLogger(__name__)

JSON = "application/json"
# Updates are a few KiB (a message with its entities, a click with its message).
MAX_BODY_BYTES = DEFAULT_MAX_BODY_BYTES
EXPIRED_BUTTON = "This button is no longer available. Please type your answer instead."
OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


class TelegramInput(InputChannel):
    """Telegram's webhook, verified by secret token, de-duplicated and acknowledged fast."""

    @classmethod
    def name(cls) -> str:
        """The channel's name in Rasa: ``telegram``."""
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        """The channel as configured by its ``credentials.yml`` section."""
        return cls(TelegramConfig.from_credentials(credentials))

    def __init__(self, config: TelegramConfig) -> None:
        self.config = config
        self.verifier = TelegramSecretVerifier(config.secret_token)
        self.deliveries = DeliveryLog(config.dedup_db, window_seconds=config.dedup_window_seconds)
        self.payloads = ButtonPayloads(config.dedup_db)
        self.updates = UpdateReader(config)
        self.per_conversation = RateLimiter(config.conversation_rate)
        self._request: Optional[HTTPXRequest] = None
        self._bot: Optional[Bot] = None
        self._tasks: Set[asyncio.Task] = set()
        # Per chat: the webhook's part (first_time, a click's payload), then the bot's turn.
        self._arrivals = Turns()
        self._chats = Turns()
        # httpx logs every request URL at INFO, and Bot API URLs hold the token.
        httpx_logger = logging.getLogger("httpx")
        if httpx_logger.getEffectiveLevel() < logging.WARNING:
            httpx_logger.setLevel(logging.WARNING)

    # ------------------------------------------------------------------ output
    def bot(self) -> Bot:
        """One Bot API client per server, made on first use, in the server's loop.

        Not ``initialize()``d: that would call getMe, which the replies do not need.
        """
        if self._bot is None:
            self._request = TelegramHttp(connection_pool_size=64)
            self._bot = Bot(
                self.config.access_token, base_url=self.config.base_url, request=self._request
            )
        return self._bot

    def get_output_channel(self) -> OutputChannel:
        """Replies through this server's Bot API client."""
        return TelegramBot(self.bot(), self.payloads)

    async def close(self) -> None:
        """Shut the Bot API client's HTTP connections down."""
        if self._request is not None:
            await self._request.shutdown()
        self._request = self._bot = None

    # ------------------------------------------------------------------- input
    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """The Sanic routes: a health check and the Bot API webhook."""
        telegram_webhook = Blueprint("telegram_webhook", __name__)

        @telegram_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @telegram_webhook.route("/webhook", methods=["POST"], ctx_max_body_bytes=MAX_BODY_BYTES)
        async def webhook(request: Request) -> HTTPResponse:
            return await self.handle(request, on_new_message)

        @telegram_webhook.listener("after_server_stop")
        async def close_client(*_: Any) -> None:
            await self.close()

        return telegram_webhook

    async def handle(self, request: Request, on_new_message: OnNewMessage) -> HTTPResponse:
        """Verify, parse, de-duplicate and schedule one update; answer at once."""
        try:
            self.verifier.verify(request.headers)
            body = read_body(request, content_types=(JSON,), max_bytes=MAX_BODY_BYTES)
            update = parse_update(parse_json_object(body))
            incoming = self.updates.incoming(update)
        except WebhookRejected as error:
            return reject(CHANNEL, error)
        if incoming is None:
            return response.json({"ok": True, "ignored": True})
        # In arrival order per chat: Telegram sends updates over several connections, and
        # a slow database for one update must not let the chat's next one overtake it.
        async with self._arrivals.turn(incoming.chat_id):
            if not await self.deliveries.first_time(CHANNEL, incoming.delivery_id):
                logger.info("%s: dropped re-delivery of update %s", CHANNEL, incoming.delivery_id)
                return response.json({"ok": True, "duplicate": True})
            if self.per_conversation.take(incoming.chat_id) is not None:
                # Telegram re-sends an update that is not acknowledged: acknowledged, dropped.
                logger.warning(
                    "%s: dropped an update over the conversation rate limit (%s)",
                    CHANNEL,
                    self.config.conversation_rate,
                )
                return response.json({"ok": True, "dropped": "rate limit"})
            if incoming.click is not None:
                await self._resolve_click(incoming)
                self._spawn(self._answer_click(incoming))
            self._spawn(self._process(incoming, on_new_message))
        return response.json({"ok": True})

    # -------------------------------------------------------------- processing
    def _spawn(self, work: Awaitable[None]) -> None:
        # Keep a reference: the loop only holds tasks weakly.
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve_click(self, incoming: Incoming) -> None:
        """Swap a stored key for its payload; an unknown key becomes a notice."""
        clicked = incoming.messages[0]
        payload = await self.payloads.payload(clicked.text)
        if payload is None:
            incoming.messages = []
            incoming.click_notice = EXPIRED_BUTTON
        else:
            incoming.messages = [Said(payload, clicked.metadata)]

    async def _answer_click(self, incoming: Incoming) -> None:
        # Not behind the chat's lock: the customer's app shows a spinner until this.
        assert incoming.click is not None
        query_id, notice = incoming.click.id, incoming.click_notice
        output = TelegramBot(self.bot(), self.payloads)
        await output.call(
            "answerCallbackQuery",
            lambda: output.bot.answer_callback_query(query_id, text=notice),
        )

    async def _show_choice(self, output: TelegramBot, query: CallbackQuery, payload: str) -> None:
        """Replace the clicked keyboard by the chosen label under the question."""
        message = query.message
        if not isinstance(message, Message):
            return  # too old for Telegram to show us; it can no longer be edited either
        label = next(
            (
                button.text
                for row in (message.reply_markup.inline_keyboard if message.reply_markup else ())
                for button in row
                if button.callback_data == query.data
            ),
            payload,
        )
        chat_id, message_id = message.chat.id, message.message_id
        if message.text:
            text = f"{message.text_html}\n\n<i>{escape('✓ ' + label)}</i>"
            if utf16_length(text) <= MESSAGE_LIMIT:
                await output.call(
                    "editMessageText",
                    lambda: output.bot.edit_message_text(
                        text, chat_id=chat_id, message_id=message_id, parse_mode=ParseMode.HTML
                    ),
                )
                return
        await output.call(
            "editMessageReplyMarkup",
            lambda: output.bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id),
        )

    def _typing(self, chat_id: str) -> ChatTyping:
        """The chat's typing indicator for one turn (:mod:`channels.telegram_typing`)."""
        bot = self.bot()
        token = bot.token
        return ChatTyping(
            typing_action(bot, chat_id),
            describe=lambda error: classify_telegram_error(error, token=token).reason,
        )

    async def _process(self, incoming: Incoming, on_new_message: OnNewMessage) -> None:
        async with self._chats.turn(incoming.chat_id):  # one chat, in arrival order
            output = TelegramBot(self.bot(), self.payloads)
            if incoming.click is not None and incoming.messages:
                if self.config.update_clicked_message:
                    await self._show_choice(output, incoming.click, incoming.messages[0].text)
            for said in incoming.messages:
                # "typing…" from before the turn until its first reply or its end.
                typing = output.typing = self._typing(incoming.chat_id)
                message = said.user_message(
                    output, conversation_id(CHANNEL, incoming.chat_id), CHANNEL
                )
                try:
                    await typing.start()
                    await on_new_message(message)
                except Exception as error:  # noqa: BLE001 - one bad message must not stop the next
                    # No traceback at error level: it may quote the customer's words.
                    logger.error(
                        "%s: handling update %s failed (%s)",
                        CHANNEL,
                        incoming.delivery_id,
                        type(error).__name__,
                    )
                    logger.debug(
                        "%s: handling update %s failed",
                        CHANNEL,
                        incoming.delivery_id,
                        exc_info=True,
                    )
                finally:
                    await typing.stop()


if __name__ == "__main__":
    from channels.telegram_webhook import main

    raise SystemExit(main())
