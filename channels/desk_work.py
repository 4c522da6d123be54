"""What the agent desk does to a hand-off, whoever asks: the HTTP API or Slack.

Open a hand-off (and its Slack thread), claim it, release it, answer the customer on
the channel their conversation belongs to, hand the conversation back to the bot. Each
step is checked against the claim (one agent at a time), recorded in the audit trail
(:mod:`channels.desk_audit`) and noted in the hand-off's Slack thread, if it has one.
How agents' Slack replies become these steps is :mod:`channels.desk_slack`; how HTTP
requests reach the desk, and who may make them, is :mod:`channels.agent_desk`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, AsyncIterator, Callable, Dict, Optional, Sequence, Tuple

from rasa.core.channels.channel import OutputChannel
from rasa.shared.core.events import ActionExecuted, BotUttered, ConversationResumed
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Sanic

from channels import desk_audit as audit
from channels.agent_desk_config import AgentDeskConfig
from channels.agent_slack_bridge import AgentSlackConfig, AgentSlackError, SlackAgentBridge
from channels.agent_slack_text import shown
from channels.conversation_ids import channel_of
from channels.desk_agents import AgentDirectory
from channels.desk_audit import DeskAudit
from channels.desk_conversations import customer_output
from channels.handoff_store import Claim, Handoff, HandoffStore

logger = logging.getLogger(__name__)


class DeskError(Exception):
    """A desk request that cannot be done, with its HTTP status and a loggable reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class HandoffDesk:
    """The desk's hand-offs, agents, audit trail and Slack thread, and the work on them."""

    def __init__(self, config: AgentDeskConfig, *, clock: Optional[Callable[[], float]] = None):
        self.config = config
        self._clock = clock or time.time
        self.store = HandoffStore(config.db, clock=self._clock)
        self.agents = AgentDirectory(config.db, clock=self._clock)
        self.audit = DeskAudit(self.store.database, clock=self._clock)
        self.slack: Optional[SlackAgentBridge] = (
            SlackAgentBridge(AgentSlackConfig.from_credentials(config.slack))
            if config.slack
            else None
        )

    async def open(
        self,
        sender_id: str,
        *,
        reason: str,
        since: float,
        transcript: Sequence[Tuple[str, str]],
        opened_by: str,
    ) -> Tuple[Handoff, bool]:
        """Hand ``sender_id`` to a person; the hand-off, and False when it was open already.

        ``since``: the tracker time of the customer's latest message; ``transcript``:
        the (role, text) turns the agents' Slack thread starts with. A new hand-off is
        audited and gets its thread (if Slack refuses, agents still have the HTTP API).
        """
        # The channel is the conversation's own, from its id; a body's `channel` is
        # not trusted (the tracker's latest channel is whoever wrote last).
        channel = channel_of(sender_id) or "unknown"
        # No tracker lock here: the action server calls this while Rasa holds the
        # conversation's lock for the very message that asked for a person.
        opened = await self.store.open(sender_id, channel, reason, since)
        handoff = await self.store.get(sender_id)
        if handoff is None:  # closed by another worker in between: nothing to add
            raise DeskError(409, "the hand-off was closed while it opened")
        if not opened:
            return handoff, False
        await self.audit.record(
            opened_by,
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
                    transcript=list(transcript),
                )
                await self.store.set_thread(sender_id, thread)
            except AgentSlackError as e:
                # Agents still see it through the HTTP API.
                logger.warning("agent desk: Slack thread not opened (%s)", type(e).__name__)
        return handoff, True

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
        async with self._claimed(app, sender_id, agent_name) as (agent, tracker, output):
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
        async with self._claimed(app, sender_id, agent_name) as (agent, tracker, output):
            tracker.update(ConversationResumed())
            name = self.config.handback_response
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

    @contextlib.asynccontextmanager
    async def _claimed(
        self, app: Sanic, sender_id: str, agent_name: str
    ) -> AsyncIterator[Tuple[Any, DialogueStateTracker, Optional[OutputChannel]]]:
        """Under the conversation's lock, once ``agent_name``'s claim is checked: the
        Rasa agent, the tracker (the caller saves it) and the customer's output channel.
        """
        agent = rasa_agent(app)
        async with agent.lock_store.lock(sender_id):
            await self._require_claimed(sender_id, agent_name)
            tracker = await agent.tracker_store.retrieve(sender_id)
            if tracker is None:
                raise DeskError(404, "no such conversation")
            yield agent, tracker, customer_output(app, sender_id, tracker)

    async def require_open(self, ref: str) -> Handoff:
        """The open hand-off ``ref`` names (reference or conversation id); 409 if none."""
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


def rasa_agent(app: Sanic) -> Any:
    """The Rasa agent the server runs (its tracker and lock stores); 503 while starting."""
    agent = getattr(app.ctx, "agent", None)
    if agent is None or agent.tracker_store is None:
        raise DeskError(503, "the assistant is still starting")
    return agent


def _bot_data(message: Dict[str, Any]) -> Dict[str, Any]:
    keys = ("elements", "quick_replies", "buttons", "attachment", "image", "custom")
    return {key: message.get(key) for key in keys}
