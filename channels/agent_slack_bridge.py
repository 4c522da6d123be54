"""The agent desk in Slack: one thread per hand-off in the agents' channel.

When the bot hands a customer to a person, the desk (``channels.agent_desk``) calls
:meth:`SlackAgentBridge.open_thread`: a parent message in the agents' channel says who
is waiting and why, and the recent transcript follows in its thread. What the customer
writes afterwards is posted in that thread; what an agent writes in it comes back from
:meth:`SlackAgentBridge.handle_request` (the Events API webhook) as an
:class:`AgentSlackEvent` for the desk to send to the customer. Only the Slack users
listed in ``agent_user_ids`` are agents: anyone else's reply is reported as
``not_agent`` and never reaches a customer. Commands in the thread: ``!claim``
(answer this hand-off; an agent's first reply claims it too), ``!release`` (let
another agent take it) and ``!handback`` (give the conversation back to the bot).

Inbound requests get the customer channel's checks in the same order (size and content
type, UTF-8, Slack's signature with slack_sdk, then the body) and every re-delivery is
dropped by its ``event_id``. Outbound calls go through
:func:`channels.outbound.call_with_retry`; a call that still fails raises
:class:`AgentSlackError`, because the desk must know that an agent never saw the
customer. Logs hold ids, kinds and lengths, never what anybody wrote. How posts are
escaped and replies read is :mod:`channels.agent_slack_text`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
)

import aiohttp
from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse
from slack_sdk.web.async_client import AsyncWebClient

from channels.agent_slack_config import (
    AgentSlackConfig,
    AgentSlackConfigError,
    get_default_config,
)
from channels.agent_slack_text import (
    CLAIM_COMMAND,
    HANDBACK_COMMAND,
    RELEASE_COMMAND,
    EventKind,
    agent_text,
    command_kind,
    escape_note,
    transcript_pieces,
)
from channels.delivery_log import DeliveryLog
from channels.outbound import AT_MOST_ONCE, Failure, RetryPolicy, call_with_retry
from channels.slack_format import (
    TEXT_LIMIT,
    bot_user_ids,
    escape_mrkdwn,
    split_mrkdwn,
)
from channels.slack_output import classify_slack_error
from channels.text_splitting import split_text
from channels.verification import SlackRequestVerifier
from channels.webhook_guard import (
    WebhookRejected,
    decode_utf8,
    parse_json_object,
    read_body,
    reject,
    require,
)

__all__ = [
    "AgentSlackConfig",
    "AgentSlackConfigError",
    "AgentSlackError",
    "AgentSlackEvent",
    "SlackAgentBridge",
    "agent_text",
    "get_default_config",
    "transcript_pieces",
]

logger = logging.getLogger(__name__)

# The name in log lines and the delivery log's key: distinct from the customer Slack
# channel's, so one Slack app serving both cannot have its event ids mixed up.
CHANNEL = "agent_slack"
_CUSTOMER_LABEL = "Customer:"
JSON = "application/json"
# A parent message names the reason; a model-made reason must not fill the channel.
REASON_LIMIT = 300
# Subtypes that are a person writing in the thread: a reply also sent to the channel is
# still a reply. Edits, deletions, joins, bot posts and file shares are not forwarded.
_AGENT_SUBTYPES = (None, "thread_broadcast")


class AgentSlackError(RuntimeError):
    """A call to Slack's Web API that failed for good (after the retries that could help)."""

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(f"{CHANNEL}: Slack {operation} failed: {reason}")
        self.operation = operation
        self.reason = reason


@dataclass(frozen=True)
class AgentSlackEvent:
    """What one webhook request means to the desk."""

    kind: EventKind
    # The hand-off thread (the parent message's ts), for every kind but "challenge"
    # and "ignored".
    thread_ts: Optional[str] = None
    # The agent's text (plain, Slack's markup undone) for "message", or the
    # url_verification challenge; empty otherwise (a non-agent's text is not kept).
    text: str = ""
    # Slack user id of who wrote.
    agent: str = ""


IGNORED = AgentSlackEvent("ignored")


class SlackAgentBridge:
    """Hand-off threads in the agents' Slack channel, and the agents' replies from them."""

    def __init__(
        self,
        config: AgentSlackConfig,
        *,
        clock: Optional[Callable[[], float]] = None,
        retry_policy: Optional[RetryPolicy] = None,
    ) -> None:
        self.config = config
        self.verifier = (
            SlackRequestVerifier(config.slack_signing_secret, clock=clock)
            if clock
            else SlackRequestVerifier(config.slack_signing_secret)
        )
        self.deliveries = DeliveryLog(config.dedup_db, clock=clock, setting="slack: dedup_db")
        # A post that may have reached Slack (a timeout, a 500) is not posted again.
        self._policy = retry_policy or AT_MOST_ONCE
        self._session: Optional[aiohttp.ClientSession] = None
        self._client: Optional[AsyncWebClient] = None

    # ------------------------------------------------------------------ output
    def _web_client(self) -> AsyncWebClient:
        """One client and connection pool, made lazily inside the server's event loop."""
        if self._client is None:
            self._session = aiohttp.ClientSession()
            # retry_handlers=[]: call_with_retry owns retries, so none are doubled.
            self._client = AsyncWebClient(
                token=self.config.slack_token,
                base_url=self.config.api_url,
                session=self._session,
                retry_handlers=[],
            )
        return self._client

    async def _post(self, operation: str, text: str, *, thread_ts: Optional[str]) -> str:
        """Post escaped mrkdwn in the agents' channel; the new message's ts."""
        client = self._web_client()
        failures: List[Failure] = []

        def classify(error: BaseException) -> Failure:
            failure = classify_slack_error(error)
            failures.append(failure)  # kept for the exception: call_with_retry only logs
            return failure

        async def post() -> Any:
            return await client.chat_postMessage(
                channel=self.config.agent_channel,
                thread_ts=thread_ts,
                text=text,
                mrkdwn=True,
                # Customers' links are not fetched by Slack's unfurler for the agents.
                unfurl_links=False,
                unfurl_media=False,
            )

        result = await call_with_retry(CHANNEL, operation, post, classify, policy=self._policy)
        if result is None:
            raise AgentSlackError(operation, failures[-1].reason if failures else "no answer")
        ts = result.get("ts")
        if not isinstance(ts, str) or not ts:
            raise AgentSlackError(operation, "Slack's answer has no message `ts`")
        return ts

    async def _post_pieces(self, operation: str, pieces: Sequence[str], thread_ts: str) -> None:
        for piece in pieces:
            await self._post(operation, piece, thread_ts=thread_ts)

    async def open_thread(
        self,
        *,
        handoff_id: str,
        customer_channel: str,
        reason: str,
        transcript: Sequence[Tuple[str, str]],
    ) -> str:
        """Open the hand-off thread; its id (the parent message's ts).

        The parent names the hand-off by its reference (``h-…``), not by the
        conversation id, which for an SMS customer is a phone number.

        ``transcript`` is the recent conversation as (role, text) pairs, oldest first. If
        the parent cannot be posted this raises :class:`AgentSlackError`; if only the
        transcript fails, the thread is still returned (an agent can answer without the
        history) and the failure is logged.
        """
        short_reason = " ".join(reason.split())
        if len(short_reason) > REASON_LIMIT:
            short_reason = short_reason[: REASON_LIMIT - 1].rstrip() + "…"
        parent = (
            f"Hand-off: {escape_mrkdwn(short_reason or 'no reason given')} — customer on "
            f"{escape_mrkdwn(customer_channel)} ({escape_mrkdwn(handoff_id)}). "
            "Reply in this thread to answer: your first reply claims it for you "
            f"(`{CLAIM_COMMAND}` claims it without a reply, `{RELEASE_COMMAND}` lets another "
            f"agent take it); write `{HANDBACK_COMMAND}` to give the conversation back to "
            "the bot."
        )
        thread_ts = await self._post("chat.postMessage (hand-off)", parent, thread_ts=None)
        logger.info("%s: opened hand-off thread %s", CHANNEL, thread_ts)
        pieces = transcript_pieces(transcript)
        try:
            await self._post_pieces("chat.postMessage (transcript)", pieces, thread_ts)
        except AgentSlackError as error:
            logger.error(
                "%s: transcript of hand-off thread %s not posted (%d line(s)): %s",
                CHANNEL,
                thread_ts,
                len(transcript),
                error.reason,
            )
        return thread_ts

    async def post_customer_message(self, thread_ts: str, text: str) -> None:
        """What the customer wrote, in the hand-off thread (escaped, split to the limit)."""
        if not text.strip():
            return
        # Split with room for the bold label (two asterisks), which goes on the first piece.
        labelled = split_mrkdwn(f"{_CUSTOMER_LABEL} {text.strip()}", limit=TEXT_LIMIT - 2)
        labelled[0] = f"*{_CUSTOMER_LABEL}*" + labelled[0][len(_CUSTOMER_LABEL) :]
        await self._post_pieces("chat.postMessage (customer)", labelled, thread_ts)

    async def post_note(self, thread_ts: str, text: str) -> None:
        """The desk's own note in the thread, e.g. ``Handed back to the bot by <@U…>``.

        Everything is escaped except user mentions (``<@U…>``), so a note can name an
        agent but never ping ``<!channel>`` or forge a link.
        """
        pieces = split_text(text, TEXT_LIMIT, measure=lambda piece: len(escape_note(piece)))
        escaped = [escape_note(piece) for piece in pieces]
        await self._post_pieces("chat.postMessage (note)", escaped, thread_ts)

    async def close(self) -> None:
        """Close the connection pool; a later call opens a new one."""
        if self._session is not None:
            await self._session.close()
        self._session = self._client = None

    # ------------------------------------------------------------------- input
    async def handle_request(
        self, request: Request
    ) -> Tuple[Optional[AgentSlackEvent], HTTPResponse]:
        """The event in one Events API request and the answer for Slack.

        The event is None only when the request is refused (4xx); every valid signed
        request is answered 200 at once, and the desk acts on the event afterwards.
        A re-delivery of an event already taken in is ``ignored``.
        """
        try:
            body = read_body(request, content_types=(JSON,))
            self.verifier.verify(decode_utf8(body), request.headers)
            envelope = parse_json_object(body)
            if envelope.get("type") == "url_verification":
                require(envelope, "challenge")
                challenge = str(envelope["challenge"])
                return AgentSlackEvent("challenge", text=challenge), response.json(
                    {"challenge": challenge}
                )
            event, event_id = self.agent_event(envelope)
        except WebhookRejected as error:
            return None, reject(CHANNEL, error)
        if event.kind == "ignored" or event_id is None:
            return IGNORED, response.json({"ok": True, "ignored": True})
        if not await self.deliveries.first_time(CHANNEL, event_id):
            logger.info(
                "%s: dropped re-delivery of %s (retry %s, %s)",
                CHANNEL,
                event_id,
                request.headers.get("x-slack-retry-num") or "-",
                request.headers.get("x-slack-retry-reason") or "replay",
            )
            return IGNORED, response.json({"ok": True, "duplicate": True})
        logger.info(
            "%s: %s in thread %s from %s (%d characters)",
            CHANNEL,
            event.kind,
            event.thread_ts,
            event.agent,
            len(event.text),
        )
        return event, response.json({"ok": True})

    def agent_event(self, envelope: Dict[str, Any]) -> Tuple[AgentSlackEvent, Optional[str]]:
        """An agent's reply in a hand-off thread and its event id, or ``ignored``."""
        if envelope.get("type") != "event_callback":
            return IGNORED, None  # app_rate_limited and the like: nothing to do
        require(envelope, "event_id", "event")
        event = envelope["event"]
        if not isinstance(event, dict):
            raise WebhookRejected(400, "`event` is not an event object")
        bot_users = bot_user_ids(envelope)
        reason = self._ignore_reason(event, bot_users)
        if reason:
            logger.debug("%s: ignored event %s: %s", CHANNEL, envelope["event_id"], reason)
            return IGNORED, None
        text = agent_text(str(event.get("text") or ""))
        if not text:
            return IGNORED, None
        user = str(event["user"])
        kind: EventKind
        if user not in self.config.agent_user_ids:
            kind = "not_agent"
        else:
            kind = command_kind(text)
        return (
            AgentSlackEvent(
                kind,
                thread_ts=str(event["thread_ts"]),
                text=text if kind == "message" else "",
                agent=user,
            ),
            str(envelope["event_id"]),
        )

    def _ignore_reason(self, event: Dict[str, Any], bot_users: Set[str]) -> Optional[str]:
        if event.get("type") != "message":
            return f"event type {event.get('type')!r}"
        if event.get("channel") != self.config.agent_channel:
            return "not in the agents' channel"
        # Our own posts carry a bot_id; so do other apps'. Edits, joins, deletions
        # carry a subtype and their text is not a new reply.
        if event.get("bot_id") or event.get("subtype") not in _AGENT_SUBTYPES:
            return "a bot's message or a message change"
        user = event.get("user")
        if not isinstance(user, str) or not user or user in bot_users:
            return "no user, or the bot itself"
        thread_ts, ts = event.get("thread_ts"), event.get("ts")
        if not isinstance(thread_ts, str) or not thread_ts or thread_ts == ts:
            return "not a reply in a thread"
        return None
