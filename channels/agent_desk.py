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

This module is the desk's HTTP side: its routes, who may call each, and what a request
body may hold. What each step does is :mod:`channels.desk_work`.

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

import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, FrozenSet, List, Optional, Set

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

import rasa_llm  # noqa: F401 - installs rasa-llm's server guards before Rasa makes its app
from channels.agent_desk_config import CHANNEL, AgentDeskConfig
from channels.conversation_ids import channel_of
from channels.desk_conversations import transcript
from channels.desk_slack import SlackDesk
from channels.desk_work import DeskError, rasa_agent
from channels.handoff_store import Handoff
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
# What a route runs once the caller is known: (app, caller, body, *path arguments).
Handler = Callable[..., Awaitable[HTTPResponse]]
JSON = "application/json"
MAX_AGENT_TEXT = 4000
# Request bodies, refused beyond these before they are read: a hand-off carries a
# transcript; an agent's message 4,000 characters, even escaped as \uXXXX pairs.
OPEN_MAX_BYTES = DEFAULT_MAX_BODY_BYTES
MESSAGE_MAX_BYTES = 64 * 1024
COMMAND_MAX_BYTES = 4 * 1024
SLACK_MAX_BYTES = DEFAULT_MAX_BODY_BYTES
SERVICE = "service"


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the service (the action server) or a named agent."""

    name: str

    @property
    def is_service(self) -> bool:
        """Whether this is the action server (its service token), not an agent."""
        return self.name == SERVICE


class AgentDeskInput(SlackDesk, InputChannel):
    """Hand-offs to people: open, claim, answer, hand back; optionally through Slack.

    The desk's work is :class:`~channels.desk_slack.SlackDesk`'s; this class adds its
    routes and who may call them.
    """

    @classmethod
    def name(cls) -> str:
        """The channel's name in Rasa: ``agent`` (routes under ``/webhooks/agent/``)."""
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        """The desk configured by its credentials.yml entry."""
        return cls(AgentDeskConfig.from_credentials(credentials))

    def __init__(self, config: AgentDeskConfig, *, clock: Optional[Callable[[], float]] = None):
        super().__init__(config, clock=clock)
        self.service_token = BearerTokenVerifier(config.token)

    # ------------------------------------------------------------------- routes
    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """The routes of the module docstring, and the Slack forwarder's start and stop."""
        desk = Blueprint("rasa_llm_agent_desk", __name__)

        @desk.listener("after_server_start")
        async def start(app: Sanic, _: Any) -> None:
            self.start_forwarding(app)

        @desk.listener("before_server_stop")
        async def stop(_: Sanic, __: Any) -> None:
            await self.stop_forwarding()

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

        def post_on_handoff(
            action: str, handler: Handler, *, limit: int, fields: FrozenSet[str] = frozenset()
        ) -> None:
            """Route ``POST /handoffs/<ref>/<action>`` to ``handler``, for agents."""

            @desk.post(f"/handoffs/<ref:str>/{action}", name=action, ctx_max_body_bytes=limit)
            async def on_handoff(request: Request, ref: str) -> HTTPResponse:
                return await self._guarded(request, handler, ref, limit=limit, fields=fields)

        post_on_handoff(
            "claim", self._claim, limit=COMMAND_MAX_BYTES, fields=frozenset({"take_over"})
        )
        post_on_handoff("release", self._release, limit=COMMAND_MAX_BYTES)
        post_on_handoff(
            "messages", self._message, limit=MESSAGE_MAX_BYTES, fields=frozenset({"text"})
        )
        post_on_handoff("handback", self._handback, limit=COMMAND_MAX_BYTES)

        @desk.post("/slack/events", ctx_max_body_bytes=SLACK_MAX_BYTES)
        async def slack_events(request: Request) -> HTTPResponse:
            if self.slack is None:
                return reject(CHANNEL, WebhookRejected(404, "Slack is not configured"))
            event, answer = await self.slack.handle_request(request)
            if event is not None and event.kind not in ("challenge", "ignored"):
                # Slack wants its answer within 3 s; the customer's channel may be slower.
                self.apply_slack_event(request.app, event)
            return answer

        return desk

    async def _guarded(
        self,
        request: Request,
        handler: Handler,
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
        since = fields.get("since")
        since = float(since) if isinstance(since, (int, float)) else 0.0
        transcript = _pairs(fields.get("transcript"))[-self.config.transcript_turns :]
        handoff, opened = await self.open(
            sender_id, reason=reason, since=since, transcript=transcript, opened_by=caller.name
        )
        return response.json(
            {
                "handoff_id": handoff.handoff_id,
                "sender_id": sender_id,
                "status": "open" if opened else "already_open",
            },
            status=201 if opened else 200,
        )

    async def _list(self, app: Sanic, caller: Caller, _: Dict[str, Any]) -> HTTPResponse:
        handoffs = await self.store.list_open()
        now = self._clock()
        return response.json({"handoffs": [_describe(h, now) for h in handoffs]})

    async def _show(self, app: Sanic, caller: Caller, _: Dict[str, Any], ref: str) -> HTTPResponse:
        handoff = await self.store.find(ref)
        if handoff is None:
            raise DeskError(404, "no hand-off for this conversation")
        tracker = await rasa_agent(app).tracker_store.retrieve(handoff.sender_id)
        turns = transcript(tracker)[-max(self.config.transcript_turns, 1) * 3 :]
        return response.json({**_describe(handoff, self._clock()), "transcript": turns})

    async def _claim(
        self, app: Sanic, caller: Caller, fields: Dict[str, Any], ref: str
    ) -> HTTPResponse:
        take_over = fields.get("take_over", False)
        if not isinstance(take_over, bool):
            raise WebhookRejected(400, "`take_over` must be true or false")
        handoff = await self.require_open(ref)
        outcome = await self.claim(handoff, caller.name, take_over=take_over)
        return response.json(
            {"handoff_id": handoff.handoff_id, "claimed_by": caller.name, "status": outcome.value}
        )

    async def _release(
        self, app: Sanic, caller: Caller, _: Dict[str, Any], ref: str
    ) -> HTTPResponse:
        handoff = await self.require_open(ref)
        await self.release(handoff, caller.name)
        return response.json({"handoff_id": handoff.handoff_id, "status": "released"})

    async def _message(
        self, app: Sanic, caller: Caller, fields: Dict[str, Any], ref: str
    ) -> HTTPResponse:
        text = _text_field(fields, "text", limit=MAX_AGENT_TEXT)
        handoff = await self.require_open(ref)
        delivered = await self.send_agent_message(app, handoff, text, caller.name)
        return response.json({"delivered": delivered})

    async def _handback(
        self, app: Sanic, caller: Caller, _: Dict[str, Any], ref: str
    ) -> HTTPResponse:
        handoff = await self.require_open(ref)
        await self.hand_back(app, handoff, caller.name)
        return response.json({"handoff_id": handoff.handoff_id, "status": "closed"})


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
