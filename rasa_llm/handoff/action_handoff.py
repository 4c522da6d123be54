"""``action_handoff``: tell the customer, register the hand-off at the agent desk, pause.

The desk (``channels.agent_desk.AgentDeskInput`` on the Rasa server) is told over
HTTP with its service token, which may open hand-offs and do nothing else:
``RASA_LLM_DESK_URL`` (default ``http://localhost:5005/webhooks/agent``) and
``RASA_LLM_DESK_TOKEN``. Only when the
desk has the hand-off is the conversation paused: a customer is never left waiting
for a person nobody knows about. If the desk cannot be reached the customer is told
how else to reach a person (``utter_handoff_unavailable``) and the bot carries on.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import aiohttp
from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused
from rasa_sdk.executor import CollectingDispatcher

from rasa_llm.handoff.handoff_rules import REASON_ASKED, HandoffRule

logger = logging.getLogger(__name__)

DESK_URL_ENV = "RASA_LLM_DESK_URL"
DESK_TOKEN_ENV = "RASA_LLM_DESK_TOKEN"
DEFAULT_DESK_URL = "http://localhost:5005/webhooks/agent"
DESK_TIMEOUT_S = 5.0
TRANSCRIPT_TURNS = 10


class ActionHandoff(Action):
    """Hands the conversation to a person through the agent desk."""

    def name(self) -> str:
        """The action's name in the domain: ``action_handoff``."""
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[Dict[str, Any]]:
        """Open a hand-off at the agent desk with the recent turns, and tell the customer."""
        rule = HandoffRule()
        reason = rule.reason(rule.turns_from_events(tracker.events)) or REASON_ASKED
        # No channel: the desk takes it from the conversation id, never from the
        # channel that wrote last.
        body = {
            "sender_id": tracker.sender_id,
            "reason": reason,
            "since": _latest_user_time(tracker.events),
            "transcript": recent_turns(tracker.events),
        }
        if await notify_desk(body):
            dispatcher.utter_message(response="utter_handoff")
            return [ConversationPaused()]
        dispatcher.utter_message(response="utter_handoff_unavailable")
        return []


async def notify_desk(body: Dict[str, Any]) -> bool:
    """POST the hand-off to the desk; True when the desk has it (new or already open)."""
    token = os.environ.get(DESK_TOKEN_ENV)
    if not token:
        logger.error(
            "action_handoff: %s is not set, so no agent desk can be told; set it to the "
            "desk's token (credentials.yml, channels.agent_desk.AgentDeskInput)",
            DESK_TOKEN_ENV,
        )
        return False
    url = os.environ.get(DESK_URL_ENV, DEFAULT_DESK_URL).rstrip("/") + "/handoffs"
    try:
        timeout = aiohttp.ClientTimeout(total=DESK_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(
                url, json=body, headers={"Authorization": f"Bearer {token}"}
            ) as answer:
                if answer.status in (200, 201):
                    return True
                logger.error("action_handoff: the agent desk answered %d", answer.status)
    except (aiohttp.ClientError, TimeoutError) as e:
        logger.error("action_handoff: the agent desk is unreachable (%s)", type(e).__name__)
    return False


def recent_turns(
    events: List[Dict[str, Any]], *, turns: int = TRANSCRIPT_TURNS
) -> List[Tuple[str, str]]:
    """The last ``turns`` customer and bot texts, oldest first, for the agents."""
    said: List[Tuple[str, str]] = []
    for event in events:
        if event.get("event") == "user" and event.get("text"):
            said.append(("customer", str(event["text"])))
        elif event.get("event") == "bot" and event.get("text"):
            said.append(("bot", str(event["text"])))
    return said[-turns:]


def _latest_user_time(events: List[Dict[str, Any]]) -> Optional[float]:
    times = [e.get("timestamp") for e in events if e.get("event") == "user"]
    return float(times[-1]) if times and times[-1] is not None else None
