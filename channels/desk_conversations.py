"""The customer's side of a hand-off: the channel that reaches them, what agents see.

A conversation belongs to the channel its id names (:mod:`channels.conversation_ids`);
an agent's reply goes out there, and agents read the conversation as customer, bot
and agent turns.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from rasa.core.channels.channel import OutputChannel
from rasa.shared.core.events import BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Sanic

from channels.conversation_ids import channel_of

# Channels whose customers cannot be pushed to: REST answers only in its HTTP response.
_NO_PUSH = frozenset({"rest"})


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
