"""Slack as a Rasa channel: Events API messages and button clicks in, Block Kit out.

Use it in ``credentials.yml`` in place of Rasa's stock ``slack:`` (same keys)::

    channels.slack.SlackInput:
      slack_token: ${SLACK_TOKEN}
      slack_signing_secret: ${SLACK_SIGNING_SECRET}

Slack posts events and interactive payloads to ``/webhooks/slack/webhook`` (also
``/webhooks/slack/interactive``). Each request is checked in this order: size and
content type, UTF-8, Slack's signature (slack_sdk's ``SignatureVerifier``, 5 minutes),
then the body. The webhook answers at once and the bot runs out of band, because Slack
re-sends an event it has not seen acknowledged within 3 s; every re-delivery (a retry
for any reason, a replay) is dropped by its ``event_id``, kept in a SQLite file that
survives a restart. Then each conversation's rate (``rate_limits``) is counted: a
message over it is acknowledged like any other and dropped, with a log line.

Conversations: by default one per Slack user (the stock channel's ``sender``), so a
customer keeps their context between a DM and a mention; with ``use_threads`` one per
user and thread, since each thread is a separate question. The Rasa conversation id is
the stock channel's with this channel's prefix (``slack:U0CUSTOMER``,
``slack:U0CUSTOMER_C0SUPPORT_1700000000.000100``: :mod:`channels.conversation_ids`), so
no other channel can address it. Messages of one conversation are handled one after
the other, in the order they arrived. Customers' words and button values reach Rasa as
text: Rasa reads a value such as ``/affirm`` as an intent only if the bot offered that
button in the conversation (:mod:`rasa_llm.server.intent_shortcuts`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Set

import aiohttp
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from slack_sdk.web.async_client import AsyncWebClient

import rasa_llm  # noqa: F401 - installs rasa-llm's server guards before Rasa makes its app
from channels.delivery_log import DeliveryLog
from channels.rate_limits import RateLimiter
from channels.slack_config import CHANNEL, SlackConfig
from channels.slack_events import Incoming, SlackEvents, payload_object
from channels.slack_output import SlackBot
from channels.turns import Turns
from channels.verification import SlackRequestVerifier
from channels.webhook_guard import (
    DEFAULT_MAX_BODY_BYTES,
    WebhookRejected,
    decode_utf8,
    parse_form,
    parse_json_object,
    read_body,
    reject,
    require,
)

logger = logging.getLogger(__name__)

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
# Events are a few KiB; a click carries the clicked message, up to 50 blocks of text.
MAX_BODY_BYTES = DEFAULT_MAX_BODY_BYTES
# How long one Web API call may take before it counts as failed (and possibly posted).
REQUEST_TIMEOUT_SECONDS = 30.0
OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


class SlackInput(InputChannel):
    """Slack's Events API and interactivity, verified, de-duplicated and acknowledged fast."""

    @classmethod
    def name(cls) -> str:
        """The channel's name in Rasa: ``slack``."""
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        """The channel as configured by its ``credentials.yml`` section."""
        return cls(SlackConfig.from_credentials(credentials))

    def __init__(self, config: SlackConfig, *, clock: Optional[Callable[[], float]] = None) -> None:
        self.config = config
        self.verifier = (
            SlackRequestVerifier(config.slack_signing_secret, clock=clock)
            if clock
            else SlackRequestVerifier(config.slack_signing_secret)
        )
        self.deliveries = DeliveryLog(config.dedup_db, window_seconds=config.dedup_window_seconds)
        self.per_conversation = RateLimiter(config.conversation_rate)
        self.events = SlackEvents(config)
        self._session: Optional[aiohttp.ClientSession] = None
        self._client: Optional[AsyncWebClient] = None
        self._tasks: Set[asyncio.Task] = set()
        # Per conversation: the webhook's part (first_time), then the bot's turn.
        self._arrivals = Turns()
        self._conversations = Turns()

    # ------------------------------------------------------------------ output
    def client(self) -> AsyncWebClient:
        """One Web API client per server, with one connection pool, made in its loop."""
        if self._client is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
            )
            # retry_handlers=[]: call_with_retry owns retries, so none are doubled.
            self._client = AsyncWebClient(
                token=self.config.slack_token,
                base_url=self.config.api_url,
                proxy=self.config.proxy,
                session=self._session,
                retry_handlers=[],
            )
        return self._client

    def get_output_channel(
        self, *, channel: Optional[str] = None, thread_id: Optional[str] = None
    ) -> OutputChannel:
        """Replies to ``channel`` (and thread); without one, where the recipient's
        conversation is (its DM, or the channel and thread its id names), so that a
        message sent through Rasa's HTTP API reaches that customer and nobody else.
        """
        return SlackBot(self.client(), slack_channel=channel, thread_id=thread_id)

    async def close(self) -> None:
        """Close the Web API client's connection pool."""
        if self._session is not None:
            await self._session.close()
        self._session = self._client = None

    # ------------------------------------------------------------------- input
    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """The Sanic routes: a health check and the Events API / interactivity webhook."""
        slack_webhook = Blueprint("rasa_llm_slack", __name__)

        @slack_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @slack_webhook.route("/webhook", methods=["POST"], ctx_max_body_bytes=MAX_BODY_BYTES)
        async def webhook(request: Request) -> HTTPResponse:
            return await self.handle(request, on_new_message)

        @slack_webhook.route("/interactive", methods=["POST"], ctx_max_body_bytes=MAX_BODY_BYTES)
        async def interactive(request: Request) -> HTTPResponse:
            return await self.handle(request, on_new_message)

        @slack_webhook.listener("after_server_stop")
        async def close_client(*_: Any) -> None:
            await self.close()

        return slack_webhook

    async def handle(self, request: Request, on_new_message: OnNewMessage) -> HTTPResponse:
        """Verify, parse, de-duplicate and schedule one request; answer within Slack's 3 s."""
        try:
            body = read_body(request, content_types=(JSON, FORM), max_bytes=MAX_BODY_BYTES)
            self.verifier.verify(decode_utf8(body), request.headers)
            if (request.headers.get("content-type") or "").lower().startswith(JSON):
                envelope = parse_json_object(body)
                if envelope.get("type") == "url_verification":
                    require(envelope, "challenge")
                    return response.json({"challenge": envelope["challenge"]})
                incoming = self.events.event_message(envelope)
            else:
                form = parse_form(body)
                require(form, "payload", where="form")
                incoming = self.events.click_message(payload_object(form["payload"]))
        except WebhookRejected as error:
            return reject(CHANNEL, error)
        if incoming is None:
            return response.json({"ok": True, "ignored": True})
        retry = request.headers.get("x-slack-retry-num")
        # In arrival order per conversation: Slack sends events over several connections,
        # and a slow database for one event must not let the next one overtake it.
        async with self._arrivals.turn(incoming.sender_id):
            if not await self.deliveries.first_time(CHANNEL, incoming.delivery_id):
                logger.info(
                    "%s: dropped re-delivery of %s (retry %s, %s)",
                    CHANNEL,
                    incoming.delivery_id,
                    retry or "-",
                    request.headers.get("x-slack-retry-reason") or "replay",
                )
                return response.json({"ok": True, "duplicate": True})
            if self.per_conversation.take(incoming.sender_id) is not None:
                # Slack retries a webhook that fails or is slow: acknowledged, dropped.
                logger.warning(
                    "%s: dropped a message over the conversation rate limit (%s)",
                    CHANNEL,
                    self.config.conversation_rate,
                )
                return response.json({"ok": True, "dropped": "rate limit"})
            self._schedule(incoming, on_new_message)
        return response.json({"ok": True})

    # -------------------------------------------------------------- processing
    def _schedule(self, incoming: Incoming, on_new_message: OnNewMessage) -> None:
        # Keep a reference: the loop only holds tasks weakly.
        task = asyncio.create_task(self._process(incoming, on_new_message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, incoming: Incoming, on_new_message: OnNewMessage) -> None:
        try:
            # One conversation, in arrival order.
            async with self._conversations.turn(incoming.sender_id):
                await self._deliver(incoming, on_new_message)
        except Exception as error:  # noqa: BLE001 - a task's error would otherwise go unseen
            # No traceback at error level: it may quote the customer's words.
            logger.error(
                "%s: handling delivery %s failed (%s)",
                CHANNEL,
                incoming.delivery_id,
                type(error).__name__,
            )
            logger.debug(
                "%s: handling delivery %s failed", CHANNEL, incoming.delivery_id, exc_info=True
            )

    async def _deliver(self, incoming: Incoming, on_new_message: OnNewMessage) -> None:
        output = SlackBot(
            self.client(), slack_channel=incoming.channel, thread_id=incoming.thread_ts
        )
        if incoming.clicked is not None:
            blocks = incoming.clicked.get("blocks")
            await output.show_choice(
                incoming.channel,
                str(incoming.clicked["ts"]),
                blocks if isinstance(blocks, list) else [],
                str(incoming.clicked.get("text") or ""),
                incoming.chosen,
            )
        for said in incoming.messages:
            await on_new_message(said.user_message(output, incoming.sender_id, CHANNEL))
