"""The agent desk: where people take over conversations the bot hands off.

``action_handoff`` (on the action server) tells the desk that a conversation is now
for a person and pauses it; while paused, Rasa records the customer's messages but
the bot stays silent. Agents answer through this desk's HTTP API, or, when Slack is
configured, in a thread per hand-off in an agents' Slack channel. Each agent message
reaches the customer on the channel the conversation belongs to (its id's prefix,
:func:`channels.conversation_ids.channel_of`) and is recorded in the tracker; the
hand-back resumes the bot.

Who may do what: the action server's service token (``token``) may only open
hand-offs. Every agent has a token of their own (``python -m channels.desk_agents``),
and their name comes from it: a request that names an ``agent`` is refused. An agent
claims a hand-off before answering or handing it back, and while it is theirs no other
agent can answer it (they release it, or another agent takes it over after
``takeover_after_s`` of silence). Every step is in the audit trail
(:mod:`channels.desk_audit`).

Routes, under ``/webhooks/agent/`` (``<ref>``: a hand-off's reference ``h-…`` or its
conversation id):
    GET  /                          health (no token)
    POST /handoffs                  open a hand-off (service token)
    GET  /handoffs                  the open hand-offs: who claimed each, how long the
                                    customer waited (agent token, as below)
    GET  /handoffs/<ref>            one hand-off with its recent transcript
    POST /handoffs/<ref>/claim      {} or {"take_over": true}: answer this one
    POST /handoffs/<ref>/release    let another agent claim it
    POST /handoffs/<ref>/messages   {"text": ...}: answer the customer
    POST /handoffs/<ref>/handback   give the conversation back to the bot
    POST /slack/events              Slack Events API of the agents' channel (signed)
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, FrozenSet, List, Optional, Set

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

import rasa_llm  # noqa: F401 - installs rasa-llm's server guards before Rasa makes its app
from channels import desk_audit as audit
from channels.agent_desk_config import CHANNEL, AgentDeskConfig
from channels.agent_slack_bridge import AgentSlackConfig, AgentSlackError, SlackAgentBridge
from channels.conversation_ids import channel_of
from channels.desk_agents import AgentDirectory
from channels.desk_audit import DeskAudit
from channels.handoff_store import Claim, Handoff, HandoffStore
from channels.verification import BearerTokenVerifier, bearer_token
from channels.webhook_guard import (
    DEFAULT_MAX_BODY_BYTES,
    WebhookRejected,
    parse_json_object,
    read_body,
    reject,
)

logger = logging.getLogger(__name__)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]
JSON = "application/json"
MAX_AGENT_TEXT = 4000
# Request bodies, refused beyond these before they are read: a hand-off carries a
# transcript; an agent's message 4,000 characters, even escaped as \uXXXX pairs.
OPEN_MAX_BYTES = DEFAULT_MAX_BODY_BYTES
MESSAGE_MAX_BYTES = 64 * 1024
COMMAND_MAX_BYTES = 4 * 1024
SLACK_MAX_BYTES = DEFAULT_MAX_BODY_BYTES
SERVICE = "service"
# Channels whose customers cannot be pushed to: REST answers only in its HTTP response.
_NO_PUSH = frozenset({"rest"})


class DeskError(Exception):
    """A desk request that cannot be done, with its HTTP status and a loggable reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the service (the action server) or a named agent."""

    name: str

    @property
    def is_service(self) -> bool:
        return self.name == SERVICE


class AgentDeskInput(InputChannel):
    """Hand-offs to people: open, claim, answer, hand back; optionally through Slack."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        return cls(AgentDeskConfig.from_credentials(credentials))

    def __init__(self, config: AgentDeskConfig, *, clock: Optional[Callable[[], float]] = None):
        self.config = config
        self.service_token = BearerTokenVerifier(config.token)
        self._clock = clock or time.time
        self.store = HandoffStore(config.db, clock=self._clock)
        self.agents = AgentDirectory(config.db, clock=self._clock)
        self.audit = DeskAudit(self.store.database, clock=self._clock)
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

        @desk.post("/handoffs", ctx_max_body_bytes=OPEN_MAX_BYTES)
        async def open_handoff(request: Request) -> HTTPResponse:
            return await self._guarded(request, self._open, service=True, limit=OPEN_MAX_BYTES)

        @desk.get("/handoffs")
        async def list_handoffs(request: Request) -> HTTPResponse:
            return await self._guarded(request, self._list, limit=0)

        @desk.get("/handoffs/<ref:str>")
        async def show(request: Request, ref: str) -> HTTPResponse:
            return await self._guarded(request, self._show, ref, limit=0)

        @desk.post("/handoffs/<ref:str>/claim", ctx_max_body_bytes=COMMAND_MAX_BYTES)
        async def claim(request: Request, ref: str) -> HTTPResponse:
            return await self._guarded(
                request, self._claim, ref, limit=COMMAND_MAX_BYTES, fields={"take_over"}
            )

        @desk.post("/handoffs/<ref:str>/release", ctx_max_body_bytes=COMMAND_MAX_BYTES)
        async def release(request: Request, ref: str) -> HTTPResponse:
            return await self._guarded(request, self._release, ref, limit=COMMAND_MAX_BYTES)

        @desk.post("/handoffs/<ref:str>/messages", ctx_max_body_bytes=MESSAGE_MAX_BYTES)
        async def message(request: Request, ref: str) -> HTTPResponse:
            return await self._guarded(
                request, self._message, ref, limit=MESSAGE_MAX_BYTES, fields={"text"}
            )

        @desk.post("/handoffs/<ref:str>/handback", ctx_max_body_bytes=COMMAND_MAX_BYTES)
        async def handback(request: Request, ref: str) -> HTTPResponse:
            return await self._guarded(request, self._handback, ref, limit=COMMAND_MAX_BYTES)

        @desk.post("/slack/events", ctx_max_body_bytes=SLACK_MAX_BYTES)
        async def slack_events(request: Request) -> HTTPResponse:
            if self.slack is None:
                return reject(CHANNEL, WebhookRejected(404, "Slack is not configured"))
            event, answer = await self.slack.handle_request(request)
            if event is not None and event.kind not in ("challenge", "ignored"):
                # Slack wants its answer within 3 s; the customer's channel may be slower.
                self._spawn(self._from_slack(request.app, event))
            return answer

        return desk

    async def _guarded(
        self,
        request: Request,
        handler: Callable[..., Awaitable[HTTPResponse]],
        *args: Any,
        limit: int,
        service: bool = False,
        fields: FrozenSet[str] | Set[str] = frozenset(),
    ) -> HTTPResponse:
        """Authenticate, check the caller's role, read the body, run ``handler``.

        ``limit`` 0: a route without a body. ``fields``: the keys an agent's body may
        have (the service's hand-off body is read as it comes).
        """
        try:
            caller = await self._caller(request)
            if service and not caller.is_service:
                raise WebhookRejected(403, "only the action server's service token opens hand-offs")
            if not service and caller.is_service:
                raise WebhookRejected(
                    403, "the service token may only open hand-offs; agents use their own"
                )
            body = _body(request, limit, None if service else fields)
            return await handler(request.app, caller, body, *args)
        except WebhookRejected as e:
            return reject(CHANNEL, e)
        except DeskError as e:
            return reject(CHANNEL, WebhookRejected(e.status, e.reason))

    async def _caller(self, request: Request) -> Caller:
        """The service or the agent whose bearer token this is; 401/403 otherwise."""
        token = bearer_token(request.headers)
        if token is None:
            raise WebhookRejected(401, "missing bearer token")
        if self.service_token.matches(token):
            return Caller(SERVICE)
        name = await self.agents.authenticate(token)
        if name is None:
            raise WebhookRejected(403, "unknown token")
        return Caller(name)

    # ------------------------------------------------------------------ handlers
    async def _open(self, app: Sanic, caller: Caller, fields: Dict[str, Any]) -> HTTPResponse:
        sender_id = _text_field(fields, "sender_id")
        reason = str(fields.get("reason") or "unspecified")[:64]
        # The channel is the conversation's own, from its id; a body's `channel` is
        # not trusted (the tracker's latest channel is whoever wrote last).
        channel = channel_of(sender_id) or "unknown"
        since = fields.get("since")
        since = float(since) if isinstance(since, (int, float)) else 0.0
        transcript = _pairs(fields.get("transcript"))[-self.config.transcript_turns :]
        # No tracker lock here: the action server calls this while Rasa holds the
        # conversation's lock for the very message that asked for a person.
        opened = await self.store.open(sender_id, channel, reason, since)
        handoff = await self.store.get(sender_id)
        if handoff is None:  # closed by another worker in between: nothing to add
            raise DeskError(409, "the hand-off was closed while it opened")
        if not opened:
            return response.json(
                {"handoff_id": handoff.handoff_id, "sender_id": sender_id, "status": "already_open"}
            )
        await self.audit.record(
            caller.name,
            audit.OPEN,
            handoff.ref,
            sender_id,
            detail=f"reason={reason} channel={channel}",
        )
        if self.slack is not None:
            try:
                thread = await self.slack.open_thread(
                    handoff_id=handoff.ref,
                    customer_channel=channel,
                    reason=reason,
                    transcript=transcript,
                )
                await self.store.set_thread(sender_id, thread)
            except AgentSlackError as e:
                # Agents still see it through the HTTP API.
                logger.warning("agent desk: Slack thread not opened (%s)", type(e).__name__)
        return response.json(
            {"handoff_id": handoff.handoff_id, "sender_id": sender_id, "status": "open"},
            status=201,
        )

    async def _list(self, app: Sanic, caller: Caller, _: Dict[str, Any]) -> HTTPResponse:
        handoffs = await self.store.list_open()
        now = self._clock()
        return response.json({"handoffs": [_describe(h, now) for h in handoffs]})

    async def _show(self, app: Sanic, caller: Caller, _: Dict[str, Any], ref: str) -> HTTPResponse:
        handoff = await self.store.find(ref)
        if handoff is None:
            raise DeskError(404, "no hand-off for this conversation")
        tracker = await _agent(app).tracker_store.retrieve(handoff.sender_id)
        turns = transcript(tracker)[-max(self.config.transcript_turns, 1) * 3 :]
        return response.json({**_describe(handoff, self._clock()), "transcript": turns})

    async def _claim(
        self, app: Sanic, caller: Caller, fields: Dict[str, Any], ref: str
    ) -> HTTPResponse:
        take_over = fields.get("take_over", False)
        if not isinstance(take_over, bool):
            raise WebhookRejected(400, "`take_over` must be true or false")
        handoff = await self._require_open(ref)
        outcome = await self.claim(handoff, caller.name, take_over=take_over)
        return response.json(
            {"handoff_id": handoff.handoff_id, "claimed_by": caller.name, "status": outcome.value}
        )

    async def _release(
        self, app: Sanic, caller: Caller, _: Dict[str, Any], ref: str
    ) -> HTTPResponse:
        handoff = await self._require_open(ref)
        await self.release(handoff, caller.name)
        return response.json({"handoff_id": handoff.handoff_id, "status": "released"})

    async def _message(
        self, app: Sanic, caller: Caller, fields: Dict[str, Any], ref: str
    ) -> HTTPResponse:
        text = _text_field(fields, "text", limit=MAX_AGENT_TEXT)
        handoff = await self._require_open(ref)
        delivered = await self.send_agent_message(app, handoff, text, caller.name)
        return response.json({"delivered": delivered})

    async def _handback(
        self, app: Sanic, caller: Caller, _: Dict[str, Any], ref: str
    ) -> HTTPResponse:
        handoff = await self._require_open(ref)
        await self.hand_back(app, handoff, caller.name)
        return response.json({"handoff_id": handoff.handoff_id, "status": "closed"})

    # ----------------------------------------------------------------- desk work
    async def claim(self, handoff: Handoff, agent: str, *, take_over: bool = False) -> Claim:
        """Make ``handoff`` ``agent``'s; :class:`DeskError` 409 when another agent has it.

        ``take_over``: also when the other agent has been silent for
        ``takeover_after_s`` (never when that is null).
        """
        idle = self.config.takeover_after_s if take_over else None
        if take_over and idle is None:
            raise DeskError(409, "taking over a claimed hand-off is switched off here")
        outcome, before = await self.store.claim(handoff.sender_id, agent, take_over_idle_s=idle)
        if outcome is Claim.NOT_OPEN:
            raise DeskError(409, "this conversation is not handed off")
        if outcome is Claim.CLAIMED_BY_OTHER:
            holder = (before.claimed_by if before else None) or "another agent"
            await self.audit.record(
                agent, audit.REFUSED, handoff.ref, handoff.sender_id, detail=f"claimed_by={holder}"
            )
            raise DeskError(409, self._claimed_by_other(before, holder))
        if outcome is Claim.CLAIMED:
            await self.audit.record(agent, audit.CLAIM, handoff.ref, handoff.sender_id)
            await self._note(handoff, f"Claimed by {shown(agent)}.")
        elif outcome is Claim.TAKEN_OVER:
            previous = (before.claimed_by if before else None) or "?"
            await self.audit.record(
                agent,
                audit.TAKE_OVER,
                handoff.ref,
                handoff.sender_id,
                detail=f"previous={previous}",
            )
            await self._note(handoff, f"Taken over by {shown(agent)} from {shown(previous)}.")
        return outcome

    def _claimed_by_other(self, handoff: Optional[Handoff], holder: str) -> str:
        reason = f"this hand-off is claimed by {holder}"
        after = self.config.takeover_after_s
        if handoff is not None and handoff.agent_active_at is not None and after is not None:
            silent = max(0.0, self._clock() - handoff.agent_active_at)
            reason += (
                f", who last claimed or answered it {silent:.0f} s ago; another agent may "
                f"take it over after {after:g} s of silence"
            )
        return reason

    async def release(self, handoff: Handoff, agent: str) -> None:
        """Give up ``agent``'s claim on ``handoff``; 409 when it is not theirs."""
        if not await self.store.release(handoff.sender_id, agent):
            raise DeskError(409, "this hand-off is not claimed by you")
        await self.audit.record(agent, audit.RELEASE, handoff.ref, handoff.sender_id)
        await self._note(handoff, f"Released by {shown(agent)}: another agent may claim it.")

    async def send_agent_message(
        self, app: Sanic, handoff: Handoff, text: str, agent_name: str
    ) -> bool:
        """Send ``text`` to the customer on their channel; record it. False: not pushed.

        Only the agent who claimed the hand-off may. A channel that cannot push (REST
        answers only in its HTTP response) still gets the message in the tracker,
        where the client can read it.
        """
        sender_id = handoff.sender_id
        agent = _agent(app)
        async with agent.lock_store.lock(sender_id):
            await self._require_claimed(sender_id, agent_name)
            tracker = await agent.tracker_store.retrieve(sender_id)
            if tracker is None:
                raise DeskError(404, "no such conversation")
            output = customer_output(app, sender_id, tracker)
            if output is not None:
                await output.send_response(sender_id, {"text": text})
            tracker.update(BotUttered(text, metadata={"agent": agent_name}))
            await agent.tracker_store.save(tracker)
        await self.store.answered(sender_id, agent_name)
        delivered = output is not None
        await self.audit.record(
            agent_name,
            audit.MESSAGE,
            handoff.ref,
            sender_id,
            detail=f"length={len(text)} delivered={str(delivered).lower()}",
        )
        return delivered

    async def hand_back(self, app: Sanic, handoff: Handoff, agent_name: str) -> None:
        """Resume the bot; it says ``handback_response`` on the customer's channel.

        Only the agent who claimed the hand-off may.
        """
        sender_id = handoff.sender_id
        agent = _agent(app)
        async with agent.lock_store.lock(sender_id):
            await self._require_claimed(sender_id, agent_name)
            tracker = await agent.tracker_store.retrieve(sender_id)
            if tracker is None:
                raise DeskError(404, "no such conversation")
            tracker.update(ConversationResumed())
            name = self.config.handback_response
            output = customer_output(app, sender_id, tracker)
            if name:
                message = await agent.nlg.generate(name, tracker, channel_of(sender_id) or "")
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
            # The claim was checked under this lock: the bot now has the conversation
            # back, so the hand-off closes whatever happened to the claim since.
            await self.store.close(sender_id)
        await self.audit.record(agent_name, audit.HANDBACK, handoff.ref, sender_id)
        await self._note(handoff, f"Handed back to the bot by {shown(agent_name)}.")

    async def _require_open(self, ref: str) -> Handoff:
        handoff = await self.store.find(ref)
        if handoff is None or not handoff.is_open:
            raise DeskError(409, "this conversation is not handed off")
        return handoff

    async def _require_claimed(self, sender_id: str, agent_name: str) -> Handoff:
        current = await self.store.get(sender_id)
        if current is None or not current.is_open:
            raise DeskError(409, "this conversation is not handed off")
        if current.claimed_by is None:
            raise DeskError(409, "claim this hand-off first (POST /handoffs/<ref>/claim)")
        if current.claimed_by != agent_name:
            await self.audit.record(
                agent_name,
                audit.REFUSED,
                current.ref,
                sender_id,
                detail=f"claimed_by={current.claimed_by}",
            )
            raise DeskError(409, self._claimed_by_other(current, current.claimed_by))
        return current

    async def _note(self, handoff: Handoff, text: str) -> None:
        """A note in the hand-off's Slack thread, if it has one; failures only logged."""
        if self.slack is None or not handoff.thread_ts:
            return
        try:
            await self.slack.post_note(handoff.thread_ts, text)
        except AgentSlackError as e:
            logger.warning("agent desk: Slack note failed (%s)", type(e).__name__)

    # --------------------------------------------------------------------- Slack
    async def _from_slack(self, app: Sanic, event: Any) -> None:
        handoff = await self.store.by_thread(event.thread_ts or "")
        if handoff is None:
            return
        agent_name = f"slack:{event.agent}"
        try:
            if event.kind == "not_agent":
                await self._refuse_non_agent(handoff, agent_name)
            elif event.kind == "release":
                await self.release(handoff, agent_name)
            else:
                # An agent's first reply (or !handback) in an unclaimed thread claims it;
                # !claim also takes it over from an agent silent for takeover_after_s.
                take_over = event.kind == "claim" and self.config.takeover_after_s is not None
                await self.claim(handoff, agent_name, take_over=take_over)
                if event.kind == "handback":
                    await self.hand_back(app, handoff, agent_name)
                elif event.kind == "message":
                    await self.send_agent_message(app, handoff, event.text, agent_name)
        except DeskError as e:
            logger.warning("agent desk: Slack %s not applied (%s)", event.kind, e.reason)
            what = "that message did not reach the customer" if event.kind == "message" else ""
            await self._note(
                handoff,
                f"{shown(agent_name)}: {e.reason}" + (f"; {what}." if what else "."),
            )
        except Exception as e:  # a background task: nobody else would see it fail
            logger.error("agent desk: Slack %s failed (%s)", event.kind, type(e).__name__)

    async def _refuse_non_agent(self, handoff: Handoff, agent_name: str) -> None:
        logger.warning(
            "agent desk: a reply in the Slack thread of %s from a user not in "
            "agent_user_ids was not sent to the customer",
            handoff.ref,
        )
        await self.audit.record(
            agent_name,
            audit.REFUSED,
            handoff.ref,
            handoff.sender_id,
            detail="not in agent_user_ids",
        )
        await self._note(
            handoff,
            f"{shown(agent_name)} is not one of the desk's agents (agent_user_ids): "
            "that message did not reach the customer.",
        )

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
            # retries is not posted again, but stays in GET /handoffs/<ref>.
            for event in new:
                try:
                    await self.slack.post_customer_message(handoff.thread_ts, str(event.text))
                    posted += 1
                except AgentSlackError as e:
                    logger.warning(
                        "agent desk: a customer message was not forwarded to Slack (%s); "
                        "it is in GET /handoffs/<ref>",
                        type(e).__name__,
                    )
        return posted

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def customer_output(
    app: Sanic, sender_id: str, tracker: DialogueStateTracker
) -> Optional[OutputChannel]:
    """The output channel of the channel ``sender_id`` belongs to, if it can push.

    The channel comes from the conversation id's prefix, never from the tracker's
    latest input channel: a message written into the conversation some other way
    must not move the agent's replies away from the customer. A bare id (from before
    ids carried their channel) belongs to no channel and is not pushed to.
    """
    name = channel_of(sender_id)
    if name is None or name in _NO_PUSH:
        return None
    channels = getattr(app.ctx, "input_channels", None) or []
    channel = next((c for c in channels if c.name() == name), None)
    if channel is None:
        return None
    if name == "slack":
        # Answer where the customer wrote: the channel and thread of their latest
        # message on Slack.
        said = [
            e
            for e in tracker.events
            if isinstance(e, UserUttered) and e.input_channel == name and e.metadata
        ]
        metadata = said[-1].metadata if said else {}
        return channel.get_output_channel(
            channel=metadata.get("out_channel"), thread_id=metadata.get("thread_id")
        )
    output: Optional[OutputChannel] = channel.get_output_channel()
    return output


def transcript(tracker: Optional[DialogueStateTracker]) -> List[Dict[str, Any]]:
    """The conversation's texts as agents see them: customer, bot and agent turns."""
    turns: List[Dict[str, Any]] = []
    for event in tracker.events if tracker else []:
        if isinstance(event, UserUttered) and event.text:
            turns.append({"role": "customer", "text": event.text, "timestamp": event.timestamp})
        elif isinstance(event, BotUttered) and event.text:
            agent = (event.metadata or {}).get("agent")
            turn = {"role": "agent" if agent else "bot", "text": event.text}
            if agent:
                turn["agent"] = agent
            turns.append({**turn, "timestamp": event.timestamp})
    return turns


def shown(agent: str) -> str:
    """An agent as a Slack note names them: ``<@U…>`` for a Slack user, else the name."""
    return f"<@{agent[len('slack:') :]}>" if agent.startswith("slack:") else agent


def _agent(app: Sanic) -> Any:
    agent = getattr(app.ctx, "agent", None)
    if agent is None or agent.tracker_store is None:
        raise DeskError(503, "the assistant is still starting")
    return agent


def _describe(handoff: Handoff, now: float) -> Dict[str, Any]:
    return {
        "handoff_id": handoff.handoff_id,
        "sender_id": handoff.sender_id,
        "channel": channel_of(handoff.sender_id) or handoff.channel,
        "reason": handoff.reason,
        "opened_at": handoff.opened_at,
        "status": "open" if handoff.is_open else "closed",
        "slack_thread": handoff.thread_ts,
        "claimed_by": handoff.claimed_by,
        "claimed_at": handoff.claimed_at,
        "answered": handoff.first_answer_at is not None,
        "waited_s": round(handoff.waited_s(handoff.closed_at or now), 1),
    }


def _body(
    request: Request, limit: int, allowed: Optional[FrozenSet[str] | Set[str]]
) -> Dict[str, Any]:
    """The request's JSON object (an empty body is ``{}``); ``allowed``: its only keys."""
    if limit <= 0 or (not request.body and allowed is not None):
        return {}
    fields = parse_json_object(read_body(request, content_types=(JSON,), max_bytes=limit))
    if allowed is None:
        return fields
    if "agent" in fields:
        raise WebhookRejected(
            400, "`agent` is not accepted: the agent is the owner of the bearer token"
        )
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        expected = ", ".join(sorted(allowed)) or "no fields"
        raise WebhookRejected(400, f"unknown field(s) {', '.join(unknown)}; expected {expected}")
    return fields


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
