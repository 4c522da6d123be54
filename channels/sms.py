"""SMS and MMS through Twilio Messaging, verified, de-duplicated and answered out of band.

``channels.sms.TwilioSmsInput:`` in ``credentials.yml``, with the keys of Rasa's stock
``twilio`` channel (``account_sid``, ``auth_token``, ``twilio_number``; the rest in
:mod:`channels.sms_config`). The channel keeps the stock name ``twilio``, so the
webhook stays ``POST /webhooks/twilio/webhook`` and switching from the stock channel is
one line of ``credentials.yml``; the two cannot be enabled together.

A webhook is handled in this order:

1. size, content type (form), UTF-8 and form syntax (:mod:`channels.webhook_guard`);
2. ``X-Twilio-Signature`` for the URL Twilio called: 403 and nothing else otherwise
   (the stock channel accepts anyone's requests);
3. ``From`` and ``MessageSid`` present (400), a delivery report ignored;
4. a ``MessageSid`` seen before is acknowledged and dropped (Twilio retries; and the
   signature has no timestamp, so this is also what stops a replay);
5. STOP or START recorded, so that the sender's next message finds it on any server;
6. the number's rate counted (``rate_limits``): a message over it gets the empty TwiML
   answer and is dropped, with a log line (no number, no text), and nothing is sent;
7. acknowledged at once with an empty TwiML ``<Response/>`` (``reply_mode: rest``)
   while the bot runs out of band and replies through the REST API; or, with
   ``reply_mode: twiml``, answered with the replies as ``<Message>`` elements when
   the bot is done within ``twiml_deadline_seconds``, else through REST as well.

Out of band, one sender's messages reach the bot one at a time, in order. STOP and
its synonyms opt the sender out (stored, nothing more is sent to the number until
START, UNSTOP, or YES; the message is not passed to the bot); HELP and INFO get
``help_text``. Twilio's own opt-out management also acts on these words and
confirms them itself, and refuses to send to an opted-out number; this channel
keeps its own record so that it does not even try, and so that the bot does not
answer a STOP. Chinese customers' 退订, 取消订阅, TD and T opt out as STOP does, and
帮助 is HELP (:mod:`channels.sms_inbound`); a keyword is answered in its own language
(``help_text``'s and ``stop_text``'s Chinese texts for the Chinese words). A reply
that is just a number, or the exact title, of the last numbered options is read as
that button's payload. MMS media become attachments
(:mod:`channels.attachments`).

The Rasa conversation id is the sender's number after this channel's prefix
(``sms:+447700900123``, :mod:`channels.conversation_ids`): no other channel can
address it, and the output channel sends only to ids of this channel. Opt-outs and
options stay keyed by the number itself. The customer's text reaches Rasa as typed: a
message such as ``/request_human`` is read by NLU as text, and a button's payload as an
intent only if the bot offered that button (:mod:`rasa_llm.server.intent_shortcuts`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Coroutine, Dict, List, Optional, Set

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response

import rasa_llm  # noqa: F401 - installs rasa-llm's server guards before Rasa makes its app
from channels.attachments import Said, user_messages
from channels.conversation_ids import conversation_id
from channels.delivery_log import DeliveryLog
from channels.rate_limits import RateLimiter
from channels.sms_config import CHANNEL, TWIML, SmsConfig
from channels.sms_inbound import (
    HELP,
    START,
    STOP,
    Inbound,
    is_status_callback,
    keyword,
    keyword_language,
    parse_inbound,
    public_url,
)
from channels.sms_output import RestDelivery, TwilioSmsOutput, TwimlReply, empty_twiml
from channels.sms_rest import TwilioMessages
from channels.sms_state import SenderStore, choose_option
from channels.turns import Turns
from channels.verification import TwilioSignatureVerifier
from channels.webhook_guard import WebhookRejected, parse_form, read_body, reject

__all__ = ["TwilioSmsInput", "TwilioSmsOutput"]

logger = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"
# Twilio's webhooks are a few hundred bytes; an MMS with ten media links a few KiB.
MAX_BODY_BYTES = 64 * 1024
# How long a stopping server waits for replies still on their way.
DRAIN_SECONDS = 10.0

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


@dataclass(frozen=True)
class Decision:
    """What the webhook decided about a message before acknowledging it."""

    word: Optional[str]  # STOP, START, HELP or None
    opted_out: bool  # the sender's state when the message arrived
    language: str = "en"  # the keyword's, for the notice that answers it


class TwilioSmsInput(InputChannel):
    """Twilio Messaging webhooks in, SMS/MMS out; see the module docstring."""

    @classmethod
    def name(cls) -> str:
        """The channel's name in Rasa: ``twilio``."""
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        """The channel as configured by its ``credentials.yml`` section."""
        return cls(SmsConfig.from_credentials(credentials))

    def __init__(self, config: SmsConfig) -> None:
        self.config = config
        self.verifier = TwilioSignatureVerifier(config.auth_token)
        self.deliveries = DeliveryLog(config.dedup_db, window_seconds=config.dedup_window_seconds)
        self.store = SenderStore(config.state_db, options_ttl_seconds=config.options_ttl_seconds)
        self.messages = TwilioMessages(
            config.account_sid,
            config.auth_token,
            config.twilio_number,
            api_base_url=config.api_base_url,
            operation_name=CHANNEL,
        )
        self.per_conversation = RateLimiter(config.conversation_rate)
        self._tasks: Set[asyncio.Task] = set()
        # Per sender: the webhook's part (first_time, _decide), then the bot's turn.
        self._arrivals = Turns()
        self._conversations = Turns()

    def get_output_channel(self) -> OutputChannel:
        """Replies through the REST API (also for Rasa's HTTP API, e.g. reminders)."""
        return TwilioSmsOutput(self.config, self.store, RestDelivery(self.messages))

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """The Sanic routes: a health check and Twilio's Messaging webhook."""
        blueprint = Blueprint("twilio_sms_webhook", __name__)

        @blueprint.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return json_response({"status": "ok"})

        @blueprint.route("/webhook", methods=["POST"], ctx_max_body_bytes=MAX_BODY_BYTES)
        async def webhook(request: Request) -> HTTPResponse:
            return await self.handle(request, on_new_message)

        @blueprint.listener("before_server_stop")
        async def drain(*_: Any) -> None:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=DRAIN_SECONDS)
            await self.messages.close()

        return blueprint

    # ---------------------------------------------------------------- the webhook
    async def handle(self, request: Request, on_new_message: OnNewMessage) -> HTTPResponse:
        """Verify, de-duplicate, record a keyword and answer one webhook (TwiML)."""
        try:
            inbound = self._verified_message(request)
        except WebhookRejected as error:
            return reject(CHANNEL, error)
        if inbound is None:
            return _twiml(empty_twiml())
        return _twiml(await self._accept(inbound, on_new_message))

    def _verified_message(self, request: Request) -> Optional[Inbound]:
        """The customer's message, or None for a delivery report; raises WebhookRejected."""
        body = read_body(request, content_types=(FORM,), max_bytes=MAX_BODY_BYTES)
        fields = parse_form(body)
        url = public_url(
            configured=self.config.webhook_url,
            trust_proxy_headers=self.config.trust_proxy_headers,
            scheme=request.scheme,
            headers=request.headers,
            path=request.path,
            query=request.query_string,
        )
        self.verifier.verify(url, fields, request.headers)
        if is_status_callback(fields):
            return None
        return parse_inbound(fields)

    async def _accept(self, inbound: Inbound, on_new_message: OnNewMessage) -> str:
        """The webhook's answer (TwiML) to a verified message; the bot runs out of band.

        A retry is dropped, and STOP or START is recorded, before Twilio gets its answer.
        The customer's next message may reach another server as soon as this one is
        answered: written out of band, a STOP could still be on its way to the database
        when that server asks whether the sender opted out, and the bot would answer
        a customer who had just said STOP.
        """
        async with self._arrivals.turn(inbound.sender):
            # In arrival order per sender: the tasks spawned below then take their turn
            # with the bot in that order too.
            if not await self.deliveries.first_time(CHANNEL, inbound.message_sid):
                return empty_twiml()
            try:
                decision = await self._decide(inbound)
            except Exception:  # noqa: BLE001 - as a failure out of band: logged, dropped
                # No exc_info at error level: the database's error quotes the number.
                logger.error("%s: reading or recording an opt-out failed", CHANNEL)
                logger.debug("%s: reading or recording an opt-out failed", CHANNEL, exc_info=True)
                return empty_twiml()
            if decision.word not in (STOP, START) and not self._within_rate(inbound):
                return empty_twiml()
            if self.config.reply_mode != TWIML:
                output = self.get_output_channel()
                assert isinstance(output, TwilioSmsOutput)
                self._spawn(self._handle(inbound, decision, output, on_new_message))
                return empty_twiml()
            reply = TwimlReply(RestDelivery(self.messages))
            output = TwilioSmsOutput(self.config, self.store, reply)
            task = self._spawn(self._handle(inbound, decision, output, on_new_message))
        return await self._answer_with_twiml(task, reply)

    def _within_rate(self, inbound: Inbound) -> bool:
        """Count the message against its number's rate; False (logged) when over it."""
        if self.per_conversation.take(conversation_id(CHANNEL, inbound.sender)) is None:
            return True
        logger.warning(
            "%s: dropped a message over the conversation rate limit (%s)",
            CHANNEL,
            self.config.conversation_rate,
        )
        return False

    async def _decide(self, inbound: Inbound) -> Decision:
        """The message's keyword, if any, and whether its sender had opted out.

        STOP and START are recorded here.
        """
        opted_out = await self.store.is_opted_out(inbound.sender)
        word = keyword(inbound, opted_out=opted_out)
        if word == STOP:
            await self.store.set_opted_out(inbound.sender, True)
            logger.info("%s: a sender opted out", CHANNEL)
        elif word == START:
            await self.store.set_opted_out(inbound.sender, False)
            logger.info("%s: a sender opted back in", CHANNEL)
        language = keyword_language(inbound) if word else "en"
        return Decision(word, opted_out, language)

    async def _answer_with_twiml(self, task: asyncio.Task, reply: TwimlReply) -> str:
        """Wait for the bot up to the deadline; then TwiML, or REST for what comes later."""
        done, _ = await asyncio.wait({task}, timeout=self.config.twiml_deadline_seconds)
        if task in done:
            return reply.take_twiml()
        logger.info(
            "%s: the bot took longer than twiml_deadline_seconds; replying via REST", CHANNEL
        )
        self._spawn(reply.fall_back())
        return empty_twiml()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task:
        # Keep a reference: the event loop holds tasks only weakly.
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---------------------------------------------------------------- out of band
    async def _handle(
        self,
        inbound: Inbound,
        decision: Decision,
        output: TwilioSmsOutput,
        on_new_message: OnNewMessage,
    ) -> None:
        """Keywords' notices, numbered options, then the bot; never raises."""
        try:
            async with self._conversations.turn(inbound.sender):
                sender, word = conversation_id(CHANNEL, inbound.sender), decision.word
                notices = {
                    STOP: self.config.stop_text,
                    START: self.config.start_text,
                    HELP: self.config.help_text,
                }
                if word in notices:
                    notice = notices[word].said_in(decision.language)
                    if notice:
                        await output.send_notice(sender, notice)
                    return
                if decision.opted_out:
                    logger.info(
                        "%s: message from an opted-out sender not passed to the bot", CHANNEL
                    )
                    return
                for said in await self._user_messages(inbound):
                    await on_new_message(said.user_message(output, sender, CHANNEL))
        except Exception:  # noqa: BLE001 - a failed message must not kill the channel
            # No exc_info at error level: a traceback may quote the customer's text.
            logger.error("%s: handling a message failed", CHANNEL)
            logger.debug("%s: handling a message failed", CHANNEL, exc_info=True)

    async def _user_messages(self, inbound: Inbound) -> List[Said]:
        """What the bot is told: a chosen button's payload, or the customer's own words."""
        options = await self.store.take_options(inbound.sender)
        chosen = choose_option(inbound.body, options) if options else None
        if chosen is not None and not inbound.attachments:
            return [Said(chosen.payload)]
        return user_messages(inbound.body, inbound.attachments)


def _twiml(xml: str) -> HTTPResponse:
    return HTTPResponse(xml, status=200, content_type="text/xml; charset=utf-8")
