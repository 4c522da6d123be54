"""Conversation ids that name their channel: ``sms:+447700900123``, ``telegram:4242``.

A Rasa conversation (tracker) is found by its sender id alone. If every channel used
the customer's bare platform id, one channel could write into another's
conversations: a REST post with ``"sender": "+447700900123"`` would continue that SMS
customer's conversation, slots filled, and move the agent's replies to REST. So each
channel puts its own prefix in front of the platform's id, and only ever makes and
answers ids with that prefix:

=========  ==============  =================================================
channel    prefix          the part after it
=========  ==============  =================================================
webchat    ``webchat:``    the server-issued session id (32 hex digits)
slack      ``slack:``      the Slack user id (and channel, thread: granularity)
telegram   ``telegram:``   the chat id
twilio     ``sms:``        the sender's phone number, E.164
rest       ``rest:``       whatever the REST caller names its conversation
=========  ==============  =================================================

Input channels make ids with :func:`conversation_id`; output channels take the
platform's id back with :func:`recipient` (:func:`platform_id`, logged), which refuses
an id of another channel (:class:`ForeignConversation`), so a reply can never be sent
to an SMS number named in a REST conversation's id. The agent desk finds the channel to
answer on from the id itself (:func:`channel_of`), not from whichever channel wrote
last.

Conversations stored before ids carried their channel keep working after
``python -m channels.conversation_id_migration`` renames them.
"""

from __future__ import annotations

import logging
from typing import Dict, Optional

__all__ = [
    "PREFIXES",
    "ForeignConversation",
    "channel_of",
    "conversation_id",
    "platform_id",
    "prefix_of",
    "recipient",
]

logger = logging.getLogger(__name__)

SEPARATOR = ":"
# Rasa channel name -> the prefix its conversation ids carry.
PREFIXES: Dict[str, str] = {
    "webchat": "webchat",
    "slack": "slack",
    "telegram": "telegram",
    "twilio": "sms",
    "rest": "rest",
}
_CHANNELS: Dict[str, str] = {prefix: channel for channel, prefix in PREFIXES.items()}


class ForeignConversation(ValueError):
    """A conversation id that does not belong to the channel asked to use it.

    The message names both channels and never the id (an SMS id is a phone number).
    """

    def __init__(self, channel: str, owner: Optional[str]) -> None:
        owned = f"channel {owner!r}" if owner else "no known channel"
        super().__init__(f"a conversation of {owned} cannot be answered on channel {channel!r}")
        self.channel = channel
        self.owner = owner


def prefix_of(channel: str) -> str:
    """The id prefix of a Rasa channel name (``twilio`` -> ``sms``)."""
    try:
        return PREFIXES[channel]
    except KeyError:
        raise ValueError(f"channel {channel!r} has no conversation id prefix") from None


def conversation_id(channel: str, platform_identity: str) -> str:
    """The Rasa sender id of ``platform_identity`` on ``channel``."""
    if not platform_identity:
        raise ValueError("a conversation needs a non-empty platform id")
    return f"{prefix_of(channel)}{SEPARATOR}{platform_identity}"


def channel_of(sender_id: str) -> Optional[str]:
    """The Rasa channel name a conversation id belongs to, or None for a bare id."""
    prefix, separator, rest = sender_id.partition(SEPARATOR)
    if not separator or not rest:
        return None
    return _CHANNELS.get(prefix)


def platform_id(channel: str, sender_id: str) -> str:
    """The platform's own id in ``sender_id``; :class:`ForeignConversation` otherwise."""
    owner = channel_of(sender_id)
    if owner != channel:
        raise ForeignConversation(channel, owner)
    return sender_id.partition(SEPARATOR)[2]


def recipient(channel: str, sender_id: str) -> Optional[str]:
    """The platform's id an output channel sends to, or None when ``sender_id`` is a
    conversation of another channel: then one line is logged (naming the channels,
    never the id: an SMS id is a phone number) and the caller sends nothing.
    """
    try:
        return platform_id(channel, sender_id)
    except ForeignConversation as error:
        logger.error("%s: reply not sent: %s", channel, error)
        return None
