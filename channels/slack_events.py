"""What a Slack delivery says: who wrote, where to answer, and their words or click.

An Events API ``event_callback`` with a person's message (a DM, a mention of the bot,
or a message in ``slack_channel``) or an interactive ``block_actions`` click becomes an
:class:`Incoming`; bots' posts, edits, joins and other events are ignored. The Rasa
conversation id follows ``conversation_granularity`` (user, channel or thread).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

from slack_bolt.request.payload_utils import is_block_actions, is_event

from channels.attachments import Attachment, Said, kind_from_mime, user_messages
from channels.conversation_ids import conversation_id
from channels.slack_config import CHANNEL, SlackConfig
from channels.slack_format import bot_user_ids, objects_in, plain_text
from channels.webhook_guard import WebhookRejected, parse_json_object, require

logger = logging.getLogger(__name__)

# Message subtypes that are a person writing; edits, joins, bot posts are not.
_USER_SUBTYPES = (None, "file_share", "thread_broadcast")


@dataclass
class Incoming:
    """One Slack delivery, ready for Rasa: who, where to answer, and what they said."""

    sender_id: str
    channel: str
    thread_ts: Optional[str]
    messages: List[Said]
    # Slack's event_id, or the click's user and time: what a re-delivery repeats.
    delivery_id: str
    # For a click: the clicked message, so its buttons can be replaced by the choice.
    clicked: Optional[Dict[str, Any]] = None
    chosen: str = ""


class SlackEvents:
    """Reads deliveries as the channel's settings say (``slack_channel``, threads)."""

    def __init__(self, config: SlackConfig) -> None:
        self.config = config

    def event_message(self, envelope: Dict[str, Any]) -> Optional[Incoming]:
        """The customer's message in an ``event_callback``, or None for one to ignore."""
        if envelope.get("type") != "event_callback":
            return None  # app_rate_limited and the like: nothing to answer
        require(envelope, "event_id", "event")
        if not isinstance(envelope["event"], dict) or not is_event(envelope):
            raise WebhookRejected(400, "`event` is not an event object")
        event: Dict[str, Any] = envelope["event"]
        bot_users = bot_user_ids(envelope)
        reason = self._ignore_reason(event, bot_users)
        if reason:
            logger.debug("%s: ignored event %s: %s", CHANNEL, envelope["event_id"], reason)
            return None
        require(event, "channel", where="event")
        channel = str(event["channel"])
        thread = _text_or_none(event.get("thread_ts"))
        if not thread and self.config.use_threads and not _is_direct(event):
            thread = _text_or_none(event.get("ts"))
        text = plain_text(str(event.get("text") or ""), remove_users=bot_users)
        attachments = [_attachment(item) for item in objects_in(event.get("files"))]
        metadata = {"out_channel": channel, "thread_id": thread, "users": sorted(bot_users)}
        messages = [said.with_metadata(metadata) for said in user_messages(text, attachments)]
        if not messages:
            return None
        return Incoming(
            sender_id=self.conversation_id(str(event["user"]), channel, thread),
            channel=channel,
            thread_ts=thread,
            messages=messages,
            delivery_id=str(envelope["event_id"]),
        )

    def _ignore_reason(self, event: Dict[str, Any], bot_users: Set[str]) -> Optional[str]:
        if event.get("type") not in ("message", "app_mention"):
            return f"event type {event.get('type')!r}"
        if event.get("bot_id") or event.get("subtype") not in _USER_SUBTYPES:
            return "a bot's message or a message change"
        if (
            not isinstance(event.get("user"), str)
            or not event["user"]
            or event["user"] in bot_users
        ):
            return "no user, or the bot itself"
        if event["type"] == "message" and not _is_direct(event):
            text = str(event.get("text") or "")
            if any(f"<@{user}>" in text for user in bot_users):
                return "a mention, answered through its app_mention event"
            if not self.config.slack_channel or event.get("channel") != self.config.slack_channel:
                return "a channel message outside `slack_channel`"
        return None

    def click_message(self, payload: Dict[str, Any]) -> Optional[Incoming]:
        """The value of a clicked button (or chosen option) as the customer's message."""
        if not is_block_actions(payload):
            return None
        actions = payload.get("actions")
        user = payload.get("user")
        if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
            raise WebhookRejected(400, "block_actions payload without actions")
        if not isinstance(user, dict) or not user.get("id"):
            raise WebhookRejected(400, "block_actions payload without user.id")
        action: Dict[str, Any] = actions[0]
        value, chosen = _chosen_value(action)
        if value is None:
            return None  # a link button: Slack opened the link, nothing to say
        container = _object(payload.get("container"))
        channel = _object(payload.get("channel")).get("id") or container.get("channel_id")
        if not channel:
            raise WebhookRejected(400, "block_actions payload without channel.id")
        message = _object(payload.get("message"))
        click_time = action.get("action_ts") or payload.get("trigger_id")
        thread = _text_or_none(message.get("thread_ts") or container.get("thread_ts"))
        metadata = {"out_channel": channel, "thread_id": thread, "users": []}
        return Incoming(
            sender_id=self.conversation_id(str(user["id"]), str(channel), thread),
            channel=str(channel),
            thread_ts=thread,
            messages=[Said(value, metadata)],
            clicked=message if self.config.update_clicked_message and message.get("ts") else None,
            chosen=chosen,
            # Slack does not re-send clicks, but a captured one could be replayed.
            delivery_id=f"action:{user['id']}:{click_time}",
        )

    def conversation_id(self, user: str, channel: str, thread: Optional[str]) -> str:
        """The Rasa sender id: the stock channel's, after this channel's prefix."""
        granularity = self.config.conversation_granularity
        if granularity == "thread" and thread:
            stock = f"{user}_{channel}_{thread}"
        elif granularity in ("thread", "channel"):
            stock = f"{user}_{channel}"
        else:
            stock = user
        return conversation_id(CHANNEL, stock)


def payload_object(payload: str) -> Dict[str, Any]:
    """The JSON object in an interactive request's ``payload`` form field, or a 400."""
    try:
        return parse_json_object(payload.encode())
    except WebhookRejected as error:
        reason = error.reason.replace("body is", "is").replace("body", "it")
        raise WebhookRejected(error.status, f"form field `payload` {reason}") from error


def _text_or_none(value: Any) -> Optional[str]:
    return str(value) if isinstance(value, (str, int, float)) and str(value) else None


def _object(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _string(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


def _is_direct(event: Dict[str, Any]) -> bool:
    return event.get("channel_type") == "im" or str(event.get("channel", "")).startswith("D")


def _attachment(item: Dict[str, Any]) -> Attachment:
    # Only fields of the types Slack documents reach the tracker's metadata.
    size = item.get("size")
    mime_type = _string(item.get("mimetype"))
    return Attachment(
        kind=kind_from_mime(mime_type),
        mime_type=mime_type,
        url=_string(item.get("url_private")),
        file_id=_string(item.get("id")),
        name=_string(item.get("name")),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
    )


def _chosen_value(action: Dict[str, Any]) -> Tuple[Optional[str], str]:
    """(payload for Rasa, label the customer saw) of a button or a select."""
    kind = action.get("type")
    if kind == "button":
        label = _object(action.get("text")).get("text") or ""
        value = action.get("value")
        return (str(value) if value is not None else None), str(label or value or "")
    option = action.get("selected_option")
    if kind in ("static_select", "overflow", "radio_buttons") and isinstance(option, dict):
        label = _object(option.get("text")).get("text") or ""
        value = option.get("value")
        return (str(value) if value is not None else None), str(label or value or "")
    return None, ""
