"""The agent desk: where people take over conversations the bot hands off.

``action_handoff`` (on the action server) tells the desk that a conversation is now
for a person and pauses it; while paused, Rasa records the customer's messages but
the bot stays silent. Agents answer through this desk's HTTP API (bearer token), or,
when Slack is configured, in a thread per hand-off in an agents' Slack channel. Each
agent message reaches the customer on the customer's own channel and is recorded in
the tracker; the hand-back resumes the bot.

Routes, under ``/webhooks/agent/`` (all but ``GET /`` need ``Authorization: Bearer``):
    POST /handoffs                    open a hand-off (the action server calls this)
    GET  /handoffs                    the open hand-offs
    GET  /handoffs/<id>               one hand-off with its recent transcript
    POST /handoffs/<id>/messages      {"text": ..., "agent": ...}: answer the customer
    POST /handoffs/<id>/handback      {"agent": ...}: give the conversation back to the bot
    POST /slack/events                Slack Events API of the agents' channel (signed)
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    ConversationResumed,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from channels.agent_desk_config import CHANNEL, AgentDeskConfig
from channels.agent_slack_bridge import AgentSlackConfig, AgentSlackError, SlackAgentBridge
from channels.handoff_store import Handoff, HandoffStore
from channels.webhook_guard import (
    WebhookRejected,
    parse_json_object,
    read_body,
    reject,
)

logger = logging.getLogger(__name__)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]
JSON = "application/json"
MAX_AGENT_TEXT = 4000


class DeskError(Exception):
    """A desk request that cannot be done, with its HTTP status and a loggable reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class AgentDeskInput(InputChannel):
    """Hand-offs to people: open, list, answer, hand back; optionally through Slack."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        return cls(AgentDeskConfig.from_credentials(credentials))

    def __init__(self, config: AgentDeskConfig) -> None:
        self.config = config
        self.store = HandoffStore(config.db)
        self.slack: Optional[SlackAgentBridge] = (
            SlackAgentBridge(AgentSlackConfig.from_credentials(config.slack))
            if config.slack
            else None
        )
        self._tasks: Set[asyncio.Task] = set()
        self._forwarder: Optional[asyncio.Task] = None

    # ------------------------------------------------------------------- routes
    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        desk = Blueprint("rasa_llm_agent_desk", __name__)

        @desk.listener("after_server_start")
        async def start(app: Sanic, _: Any) -> None:
            if self.slack is not None:
                self._forwarder = asyncio.create_task(self._forward_forever(app))

        @desk.listener("before_server_stop")
        async def stop(_: Sanic, __: Any) -> None:
            if self._forwarder is not None:
                self._forwarder.cancel()
            if self.slack is not None:
                await self.slack.close()

        @desk.get("/")
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @desk.post("/handoffs")
        async def open_handoff(request: Request) -> HTTPResponse:
            return await self._guarded(request, self._open)

        @desk.get("/handoffs")
        async def list_handoffs(request: Request) -> HTTPResponse:
            return await self._guarded(request, self._list, body=False)

        @desk.get("/handoffs/<sender_id:str>")
        async def show(request: Request, sender_id: str) -> HTTPResponse:
            return await self._guarded(request, self._show, sender_id, body=False)

        @desk.post("/handoffs/<sender_id:str>/messages")
        async def message(request: Request, sender_id: str) -> HTTPResponse:
            return await self._guarded(request, self._message, sender_id)

        @desk.post("/handoffs/<sender_id:str>/handback")
        async def handback(request: Request, sender_id: str) -> HTTPResponse:
            return await self._guarded(request, self._handback, sender_id)

        @desk.post("/slack/events")
        async def slack_events(request: Request) -> HTTPResponse:
            if self.slack is None:
                return reject(CHANNEL, WebhookRejected(404, "Slack is not configured"))
            event, answer = await self.slack.handle_request(request)
            if event is not None and event.kind in ("message", "handback"):
                # Slack wants its answer within 3 s; the customer's channel may be slower.
                self._spawn(self._from_slack(request.app, event))
            return answer

        return desk

    async def _guarded(
        self,
        request: Request,
        handler: Callable[..., Awaitable[HTTPResponse]],
        *args: Any,
        body: bool = True,
    ) -> HTTPResponse:
        try:
            self._authenticate(request)
            fields = parse_json_object(read_body(request, content_types=(JSON,))) if body else {}
            return await handler(request.app, fields, *args)
        except WebhookRejected as e:
            return reject(CHANNEL, e)
        except DeskError as e:
            return reject(CHANNEL, WebhookRejected(e.status, e.reason))

    def _authenticate(self, request: Request) -> None:
        given = request.headers.get("authorization") or ""
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise WebhookRejected(401, "missing bearer token")
        if not hmac.compare_digest(token.encode(), self.config.token.encode()):
            raise WebhookRejected(403, "wrong bearer token")

    # ------------------------------------------------------------------ handlers
    async def _open(self, app: Sanic, fields: Dict[str, Any]) -> HTTPResponse:
        sender_id = _text_field(fields, "sender_id")
        reason = str(fields.get("reason") or "unspecified")[:64]
        channel = str(fields.get("channel") or "unknown")[:64]
        since = fields.get("since")
        since = float(since) if isinstance(since, (int, float)) else 0.0
        transcript = _pairs(fields.get("transcript"))[-self.config.transcript_turns :]
        # No tracker lock here: the action server calls this while Rasa holds the
        # conversation's lock for the very message that asked for a person.
        opened = await self.store.open(sender_id, channel, reason, since)
        if not opened:
            return response.json({"sender_id": sender_id, "status": "already_open"})
        logger.info("agent desk: hand-off opened (reason=%s, channel=%s)", reason, channel)
        if self.slack is not None:
            try:
                thread = await self.slack.open_thread(
                    sender_id=sender_id,
                    customer_channel=channel,
                    reason=reason,
                    transcript=transcript,
                )
                await self.store.set_thread(sender_id, thread)
            except AgentSlackError as e:
                # Agents still see it through the HTTP API.
                logger.warning("agent desk: Slack thread not opened (%s)", type(e).__name__)
        return response.json({"sender_id": sender_id, "status": "open"}, status=201)

    async def _list(self, app: Sanic, _: Dict[str, Any]) -> HTTPResponse:
        handoffs = await self.store.list_open()
        return response.json({"handoffs": [_describe(h) for h in handoffs]})

    async def _show(self, app: Sanic, _: Dict[str, Any], sender_id: str) -> HTTPResponse:
        handoff = await self.store.get(sender_id)
        if handoff is None:
            raise DeskError(404, "no hand-off for this conversation")
        tracker = await _agent(app).tracker_store.retrieve(sender_id)
        turns = transcript(tracker)[-max(self.config.transcript_turns, 1) * 3 :]
        return response.json({**_describe(handoff), "transcript": turns})

    async def _message(self, app: Sanic, fields: Dict[str, Any], sender_id: str) -> HTTPResponse:
        text = _text_field(fields, "text", limit=MAX_AGENT_TEXT)
        agent_name = str(fields.get("agent") or "agent")[:64]
        delivered = await self.send_agent_message(app, sender_id, text, agent_name)
        return response.json({"delivered": delivered})

    async def _handback(self, app: Sanic, fields: Dict[str, Any], sender_id: str) -> HTTPResponse:
        agent_name = str(fields.get("agent") or "agent")[:64]
        await self.hand_back(app, sender_id, agent_name)
        return response.json({"sender_id": sender_id, "status": "closed"})

    # ----------------------------------------------------------------- desk work
    async def send_agent_message(
        self, app: Sanic, sender_id: str, text: str, agent_name: str
    ) -> bool:
        """Send ``text`` to the customer on their channel; record it. False: not pushed.

        A channel that cannot push (REST answers only in its HTTP response) still gets
        the message in the tracker, where the client can read it.
        """
        await self._require_open(sender_id)
        agent = _agent(app)
        async with agent.lock_store.lock(sender_id):
            tracker = await agent.tracker_store.retrieve(sender_id)
            if tracker is None:
                raise DeskError(404, "no such conversation")
            output = customer_output(app, tracker)
            if output is not None:
                await output.send_response(sender_id, {"text": text})
            tracker.update(BotUttered(text, metadata={"agent": agent_name}))
            await agent.tracker_store.save(tracker)
        logger.info("agent desk: agent message (delivered=%s)", output is not None)
        return output is not None

    async def hand_back(self, app: Sanic, sender_id: str, agent_name: str) -> None:
        """Resume the bot; it says ``handback_response`` on the customer's channel."""
        handoff = await self._require_open(sender_id)
        agent = _agent(app)
        async with agent.lock_store.lock(sender_id):
            tracker = await agent.tracker_store.retrieve(sender_id)
            if tracker is None:
                raise DeskError(404, "no such conversation")
            tracker.update(ConversationResumed())
            name = self.config.handback_response
            output = customer_output(app, tracker)
            if name:
                message = await agent.nlg.generate(
                    name, tracker, tracker.get_latest_input_channel()
                )
                if message:
                    if output is not None:
                        await output.send_response(sender_id, message)
                    tracker.update(ActionExecuted(name))
                    tracker.update(
                        BotUttered(message.get("text"), data=_bot_data(message), metadata={})
                    )
            # The next customer message then follows a listen, as after any bot turn,
            # so rules match it as they would anywhere else.
            tracker.update(ActionExecuted("action_listen"))
            await agent.tracker_store.save(tracker)
            await self.store.close(sender_id)
        logger.info("agent desk: handed back to the bot")
        if self.slack is not None and handoff.thread_ts:
            try:
                await self.slack.post_note(
                    handoff.thread_ts, f"Handed back to the bot by {agent_name}."
                )
            except AgentSlackError as e:
                logger.warning("agent desk: Slack note failed (%s)", type(e).__name__)

    async def _require_open(self, sender_id: str) -> Handoff:
        handoff = await self.store.get(sender_id)
        if handoff is None or not handoff.is_open:
            raise DeskError(409, "this conversation is not handed off")
        return handoff

    async def _from_slack(self, app: Sanic, event: Any) -> None:
        handoff = await self.store.by_thread(event.thread_ts or "")
        if handoff is None:
            return
        try:
            if event.kind == "handback":
                await self.hand_back(app, handoff.sender_id, f"<@{event.agent}>")
            else:
                await self.send_agent_message(app, handoff.sender_id, event.text, event.agent)
        except DeskError as e:
            logger.warning("agent desk: Slack %s not applied (%s)", event.kind, e.reason)
        except Exception as e:  # a background task: nobody else would see it fail
            logger.error("agent desk: Slack %s failed (%s)", event.kind, type(e).__name__)

    async def _forward_forever(self, app: Sanic) -> None:
        while True:
            try:
                await self.forward_customer_messages(app)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # keep forwarding; the next round retries
                logger.warning("agent desk: forwarding failed (%s)", type(e).__name__)
            await asyncio.sleep(self.config.forward_interval_s)

    async def forward_customer_messages(self, app: Sanic) -> int:
        """Post customers' new messages to their hand-off threads; how many were posted."""
        if self.slack is None:
            return 0
        posted = 0
        agent = _agent(app)
        for handoff in await self.store.list_open():
            if not handoff.thread_ts:
                continue
            tracker = await agent.tracker_store.retrieve(handoff.sender_id)
            new = [
                e
                for e in (tracker.events if tracker else [])
                if isinstance(e, UserUttered) and e.text and e.timestamp > handoff.forwarded_until
            ]
            if not new:
                continue
            until = max(e.timestamp for e in new)
            if not await self.store.claim_forward(
                handoff.sender_id, handoff.forwarded_until, until
            ):
                continue  # another worker took them
            # Claimed before posting, so at most once: a message Slack refuses after the
            # retries is not posted again, but stays in GET /handoffs/<id>.
            for event in new:
                try:
                    await self.slack.post_customer_message(handoff.thread_ts, str(event.text))
                    posted += 1
                except AgentSlackError as e:
                    logger.warning(
                        "agent desk: a customer message was not forwarded to Slack (%s); "
                        "it is in GET /handoffs/<id>",
                        type(e).__name__,
                    )
        return posted

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def customer_output(app: Sanic, tracker: DialogueStateTracker) -> Optional[OutputChannel]:
    """The output channel of the customer's latest input channel, if it can push."""
    name = tracker.get_latest_input_channel()
    channels = getattr(app.ctx, "input_channels", None) or []
    channel = next((c for c in channels if c.name() == name), None)
    if channel is None:
        return None
    if name == "slack":
        # Answer where the customer wrote: the channel and thread of their message.
        metadata = (tracker.latest_message.metadata if tracker.latest_message else None) or {}
        return channel.get_output_channel(metadata.get("out_channel"), metadata.get("thread_id"))
    return channel.get_output_channel()


def transcript(tracker: Optional[DialogueStateTracker]) -> List[Dict[str, Any]]:
    """The conversation's texts as agents see them: customer, bot and agent turns."""
    turns: List[Dict[str, Any]] = []
    for event in tracker.events if tracker else []:
        if isinstance(event, UserUttered) and event.text:
            turns.append({"role": "customer", "text": event.text, "timestamp": event.timestamp})
        elif isinstance(event, BotUttered) and event.text:
            role = "agent" if (event.metadata or {}).get("agent") else "bot"
            turns.append({"role": role, "text": event.text, "timestamp": event.timestamp})
    return turns


def _agent(app: Sanic) -> Any:
    agent = getattr(app.ctx, "agent", None)
    if agent is None or agent.tracker_store is None:
        raise DeskError(503, "the assistant is still starting")
    return agent


def _describe(handoff: Handoff) -> Dict[str, Any]:
    return {
        "sender_id": handoff.sender_id,
        "channel": handoff.channel,
        "reason": handoff.reason,
        "opened_at": handoff.opened_at,
        "status": "open" if handoff.is_open else "closed",
        "slack_thread": handoff.thread_ts,
    }


def _text_field(fields: Dict[str, Any], key: str, *, limit: int = 256) -> str:
    value = fields.get(key)
    if not isinstance(value, str) or not value.strip():
        raise WebhookRejected(400, f"`{key}` must be a non-empty string")
    if len(value) > limit:
        raise WebhookRejected(413, f"`{key}` longer than {limit} characters")
    return value.strip()


def _pairs(value: Any) -> List[tuple]:
    if not isinstance(value, list):
        return []
    return [
        (str(item[0]), str(item[1]))
        for item in value
        if isinstance(item, (list, tuple)) and len(item) == 2
    ]


def _bot_data(message: Dict[str, Any]) -> Dict[str, Any]:
    keys = ("elements", "quick_replies", "buttons", "attachment", "image", "custom")
    return {key: message.get(key) for key in keys}
