"""What the agent desk does to a hand-off, whoever asks: the HTTP API or Slack.

Open a hand-off (and its Slack thread), claim it, release it, answer the customer on
the channel their conversation belongs to, hand the conversation back to the bot; and,
with Slack, apply what agents write in a hand-off's thread and forward the customer's
new messages there. Each step is checked against the claim (one agent at a time) and
recorded in the audit trail (:mod:`channels.desk_audit`). How requests reach the desk,
and who may make them, is :mod:`channels.agent_desk`'s part.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Dict, Optional, Sequence, Set, Tuple

from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    ConversationResumed,
    UserUttered,
)
from sanic import Sanic

from channels import desk_audit as audit
from channels.agent_desk_config import AgentDeskConfig
from channels.agent_slack_bridge import (
    AgentSlackConfig,
    AgentSlackError,
    AgentSlackEvent,
    SlackAgentBridge,
)
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
        self._tasks: Set[asyncio.Task] = set()
        self._forwarder: Optional[asyncio.Task] = None

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
        agent = rasa_agent(app)
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
        agent = rasa_agent(app)
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

    # --------------------------------------------------------------------- Slack
    def apply_slack_event(self, app: Sanic, event: AgentSlackEvent) -> None:
        """Apply an agent's Slack event in the background (Slack wants its answer in 3 s)."""
        self._spawn(self._from_slack(app, event))

    def start_forwarding(self, app: Sanic) -> None:
        """With Slack, start forwarding customers' messages to their hand-off threads."""
        if self.slack is not None:
            self._forwarder = asyncio.create_task(self._forward_forever(app))

    async def stop_forwarding(self) -> None:
        """Stop forwarding, and close the Slack client."""
        if self._forwarder is not None:
            self._forwarder.cancel()
        if self.slack is not None:
            await self.slack.close()

    async def _from_slack(self, app: Sanic, event: AgentSlackEvent) -> None:
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
        agent = rasa_agent(app)
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


def shown(agent: str) -> str:
    """An agent as a Slack note names them: ``<@U…>`` for a Slack user, else the name."""
    return f"<@{agent[len('slack:') :]}>" if agent.startswith("slack:") else agent


def rasa_agent(app: Sanic) -> Any:
    """The Rasa agent the server runs (its tracker and lock stores); 503 while starting."""
    agent = getattr(app.ctx, "agent", None)
    if agent is None or agent.tracker_store is None:
        raise DeskError(503, "the assistant is still starting")
    return agent


def _bot_data(message: Dict[str, Any]) -> Dict[str, Any]:
    keys = ("elements", "quick_replies", "buttons", "attachment", "image", "custom")
    return {key: message.get(key) for key in keys}
