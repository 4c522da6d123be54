"""Rasa's REST channel, authenticated and confined to its own conversations.

``channels.rest.RestInput:`` in ``credentials.yml`` replaces Rasa's stock ``rest:``,
with the same route and wire format: ``POST /webhooks/rest/webhook`` with
``{"sender": "<conversation>", "message": "<text>", "metadata": {...}}`` answers the
bot's replies as a JSON list. What changes:

- The caller must send ``Authorization: Bearer <token>`` (the channel's ``token``,
  16+ characters): REST is for a program of the business's own (its website's
  backend, a test), never for customers' browsers. 401 without it, 403 when wrong.
- The caller's ``sender`` names a conversation of the REST channel only: the tracker
  is ``rest:<sender>`` (:mod:`channels.conversation_ids`), so no REST call can reach
  an SMS, Telegram, Slack or web chat conversation, whatever it sends. The replies
  name the caller's own ``sender``, as the stock channel's do. ``input_channel`` in
  the body (which the stock channel obeys) is refused: these messages are REST's.
- Everything is bounded: the body (``max_body_bytes``, refused before it is read),
  the message (``max_message_chars``), the sender id, and the rate per conversation
  per conversation, and the refused attempts per client address (``rate_limits``: 429
  with ``Retry-After``). A caller with the token is one backend speaking for many
  customers, so its own address is not limited as a whole: each conversation is.
- A malformed request gets a 400 that says what to change and quotes nothing; the log
  line holds no customer text.

Not supported: the stock channel's ``?stream=true`` (a 400 says so).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

import rasa_llm  # noqa: F401 - installs rasa-llm's server guards before Rasa makes its app
from channels.conversation_ids import conversation_id
from channels.rate_limits import (
    Rate,
    RateLimiter,
    client_address,
)
from channels.settings import (
    DEFAULT_CONVERSATION_RATE,
    MAKE_SECRET_SINGLE_QUOTED,
    ChannelConfigError,
    SettingsReader,
    merged,
)
from channels.verification import BearerTokenVerifier
from channels.webhook_guard import (
    WebhookRejected,
    parse_json_object,
    read_body,
    reject,
)

__all__ = ["RestConfig", "RestConfigError", "RestInput"]

logger = logging.getLogger(__name__)

CHANNEL = "rest"
CLASS_PATH = "channels.rest.RestInput"
JSON = "application/json"
MIN_TOKEN_CHARS = 16
# A conversation name a program chooses: printable, no spaces, no slashes (it becomes
# part of the conversation's URL in Rasa's HTTP API).
SENDER = re.compile(r"[A-Za-z0-9_.:@+=-]{1,128}")
EXAMPLE = '{"sender": "<conversation>", "message": "<text>"}'
_FIELDS = {"sender", "message", "metadata"}

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


def get_default_config() -> Dict[str, Any]:
    """Every key the REST channel reads, with its default."""
    return {
        # Bearer token the caller sends: required, 16+ characters. Write
        # `token: ${RASA_LLM_REST_TOKEN}` in credentials.yml.
        "token": None,
        # Longest message, in characters.
        "max_message_chars": 4000,
        # Largest request body; a larger one is refused before it is read.
        "max_body_bytes": 64 * 1024,
        # Messages allowed per conversation (`rest:<sender>`), and requests without a
        # valid token per client address (Sanic's view of it: configure its proxy
        # settings behind a reverse proxy); "COUNT/PERIOD" (second, minute, hour, day)
        # or "off".
        "rate_limits": {
            "conversation": DEFAULT_CONVERSATION_RATE,
            "unauthenticated": "60/minute",
        },
    }


class RestConfigError(ChannelConfigError):
    """A REST channel key in credentials.yml that cannot work; the message says the fix."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(CHANNEL, key, problem, fix, class_path=CLASS_PATH)


@dataclass(frozen=True)
class RestConfig:
    """The REST channel's settings, checked: every key of :func:`get_default_config`."""

    token: str
    max_message_chars: int
    max_body_bytes: int
    conversation_rate: Optional[Rate]
    unauthenticated_rate: Optional[Rate]

    @classmethod
    def from_credentials(cls, credentials: Optional[Mapping[str, Any]]) -> RestConfig:
        """The settings from the channel's credentials.yml entry over the defaults.

        Raises :class:`RestConfigError` for a key that cannot work.
        """
        given = dict(credentials or {})
        defaults = get_default_config()
        # Of several unknown keys, this channel names the first in sorted order.
        values = merged(
            {key: given[key] for key in sorted(given, key=str)}, defaults, RestConfigError
        )
        read = SettingsReader(values, RestConfigError)
        token = read.secret(
            "token",
            min_chars=MIN_TOKEN_CHARS,
            fix=f"Generate one ({MAKE_SECRET_SINGLE_QUOTED}),"
            " export it as RASA_LLM_REST_TOKEN and write token: ${RASA_LLM_REST_TOKEN}.",
        )
        rates = read.rates(defaults=defaults["rate_limits"])
        return cls(
            token=token,
            max_message_chars=read.whole("max_message_chars", minimum=1, fix="Correct it."),
            max_body_bytes=read.whole("max_body_bytes", minimum=1, fix="Correct it."),
            conversation_rate=rates["conversation"],
            unauthenticated_rate=rates["unauthenticated"],
        )


class RestInput(InputChannel):
    """REST for the business's own programs; see the module docstring."""

    @classmethod
    def name(cls) -> str:
        """The channel's name in Rasa: ``rest``."""
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        """The channel configured by its credentials.yml entry."""
        return cls(RestConfig.from_credentials(credentials))

    def __init__(self, config: RestConfig) -> None:
        self.config = config
        self.bearer = BearerTokenVerifier(
            config.token, hint=" (send Authorization: Bearer <REST token>)"
        )
        self.per_conversation = RateLimiter(config.conversation_rate)
        self.refused_per_address = RateLimiter(config.unauthenticated_rate)

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """Routes ``GET /`` (health) and ``POST /webhook`` (a message; the replies)."""
        rest = Blueprint("rasa_llm_rest", __name__)

        @rest.get("/")
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @rest.post("/webhook", ctx_max_body_bytes=self.config.max_body_bytes)
        async def receive(request: Request) -> HTTPResponse:
            try:
                sender, message = self._accept(request)
            except WebhookRejected as error:
                return reject(CHANNEL, error)
            return response.json(await self._answer(sender, message, on_new_message))

        return rest

    # ------------------------------------------------------------------ checks
    def _accept(self, request: Request) -> tuple[str, UserMessage]:
        """The caller's sender and the message for Rasa; raises WebhookRejected."""
        try:
            self._authenticate(request)
        except WebhookRejected:
            # Guessing the token costs a 429 after a few tries.
            address = client_address(request)
            self.refused_per_address.check(address, "requests without the token from here")
            raise
        if request.args.get("stream"):
            raise WebhookRejected(400, "?stream is not supported by this REST channel")
        body = parse_json_object(
            read_body(request, content_types=(JSON,), max_bytes=self.config.max_body_bytes)
        )
        unknown = sorted(str(key)[:40] for key in body if key not in _FIELDS)
        if "input_channel" in unknown:
            raise WebhookRejected(
                400, "`input_channel` is not accepted: these messages are the REST channel's"
            )
        if unknown:
            raise WebhookRejected(400, f"unknown field(s): {', '.join(unknown)}; send {EXAMPLE}")
        sender = body.get("sender")
        if not isinstance(sender, str) or not SENDER.fullmatch(sender):
            raise WebhookRejected(
                400,
                "`sender` must be 1 to 128 letters, digits or . _ : @ + = - "
                f"(the caller's name for the conversation); send {EXAMPLE}",
            )
        text = body.get("message")
        if not isinstance(text, str) or not text.strip():
            raise WebhookRejected(400, f"`message` must be a non-empty string; send {EXAMPLE}")
        if len(text) > self.config.max_message_chars:
            raise WebhookRejected(
                413, f"`message` longer than {self.config.max_message_chars} characters"
            )
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise WebhookRejected(400, "`metadata` must be a JSON object")
        conversation = conversation_id(CHANNEL, sender)
        self.per_conversation.check(conversation, "messages in this conversation")
        message = UserMessage(
            text,
            CollectingOutputChannel(),
            conversation,
            input_channel=CHANNEL,
            metadata=metadata or None,
        )
        return sender, message

    def _authenticate(self, request: Request) -> None:
        self.bearer.verify(request.headers)

    # ------------------------------------------------------------------ the turn
    @staticmethod
    async def _answer(
        sender: str, message: UserMessage, on_new_message: OnNewMessage
    ) -> List[Dict[str, Any]]:
        """The bot's replies to ``message``, each naming the caller's own ``sender``."""
        collector = message.output_channel
        assert isinstance(collector, CollectingOutputChannel)
        try:
            await on_new_message(message)
        except asyncio.CancelledError:
            logger.error("%s: the bot did not answer in time", CHANNEL)
        except Exception as error:  # noqa: BLE001 - the caller gets what was said so far
            # The type only: Rasa's errors can quote the customer's message.
            logger.error("%s: the bot failed on a message (%s)", CHANNEL, type(error).__name__)
            logger.debug("%s: bot failure details", CHANNEL, exc_info=True)
        return [{**reply, "recipient_id": sender} for reply in collector.messages]
