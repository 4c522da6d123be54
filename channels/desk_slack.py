"""The agent desk in the agents' Slack channel: replies in, customers' messages out.

What an agent writes in a hand-off's thread (:mod:`channels.agent_slack_bridge` reads
it) becomes a claim, a release, a hand-back or a message to the customer, applied in
the background since Slack wants its answer within 3 s; a reply from someone who is
not an agent is refused and audited. A forwarder posts what customers write while
handed off to their hand-offs' threads, at most once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Optional, Set

from rasa.shared.core.events import UserUttered
from sanic import Sanic

from channels import desk_audit as audit
from channels.agent_desk_config import AgentDeskConfig
from channels.agent_slack_bridge import AgentSlackError, AgentSlackEvent
from channels.agent_slack_text import shown
from channels.desk_work import DeskError, HandoffDesk, rasa_agent
from channels.handoff_store import Handoff

logger = logging.getLogger(__name__)


class SlackDesk(HandoffDesk):
    """The desk's work, and the agents' Slack channel as a second way to do it."""

    def __init__(self, config: AgentDeskConfig, *, clock: Optional[Callable[[], float]] = None):
        super().__init__(config, clock=clock)
        self._tasks: Set[asyncio.Task] = set()
        self._forwarder: Optional[asyncio.Task] = None

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
