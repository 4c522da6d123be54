"""Slack's request shapes (Events API envelopes, block_actions forms), signed for real."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-1234-5678-testtoken"
BOT_USER = "U0BOT0001"
TEAM = "T0TEAM001"

_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{int(time.time() * 1000) % 10**9}{next(_counter):04d}"


def signed_headers(
    body: bytes, content_type: str, *, secret: str = SECRET, timestamp: Optional[int] = None
) -> Dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    try:
        signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    except UnicodeDecodeError:
        # slack_sdk signs text only; Slack's scheme itself is the HMAC of the raw bytes.
        base = b"v0:" + stamp.encode() + b":" + body
        signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    assert signature is not None
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
    }


def message_event(
    text: str,
    *,
    user: str = "U0CUSTOMER",
    channel: str = "D0DIRECT01",
    channel_type: str = "im",
    event_type: str = "message",
    event_id: Optional[str] = None,
    ts: Optional[str] = None,
    thread_ts: Optional[str] = None,
    files: Optional[List[Dict[str, Any]]] = None,
    **extra: Any,
) -> Dict[str, Any]:
    """An ``event_callback`` envelope as Slack posts it."""
    event: Dict[str, Any] = {
        "type": event_type,
        "user": user,
        "text": text,
        "ts": ts or f"{int(time.time())}.{next(_counter):06d}",
        "channel": channel,
        "event_ts": f"{int(time.time())}.000100",
        "team": TEAM,
        **extra,
    }
    if event_type == "message":
        event["channel_type"] = channel_type
    if thread_ts:
        event["thread_ts"] = thread_ts
    if files:
        event["files"] = files
        event["subtype"] = "file_share"
    return {
        "token": "verification-token-unused",
        "team_id": TEAM,
        "api_app_id": "A0APP0001",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or unique("Ev"),
        "event_time": int(time.time()),
        "authorizations": [
            {"team_id": TEAM, "user_id": BOT_USER, "is_bot": True, "is_enterprise_install": False}
        ],
        "is_ext_shared_channel": False,
        "event_context": "4-eyJldCI6Im1lc3NhZ2UifQ",
    }


def event_request(envelope: Dict[str, Any], **sign: Any) -> Tuple[bytes, Dict[str, str]]:
    body = json.dumps(envelope).encode()
    return body, signed_headers(body, "application/json", **sign)


def block_actions(
    value: str,
    title: str,
    *,
    user: str = "U0CUSTOMER",
    channel: str = "D0DIRECT01",
    message_ts: str = "1700000000.000200",
    thread_ts: Optional[str] = None,
    blocks: Optional[List[Dict[str, Any]]] = None,
) -> Dict[str, Any]:
    """A ``block_actions`` payload for a click on one of our buttons."""
    message: Dict[str, Any] = {
        "type": "message",
        "bot_id": "B0BOT0001",
        "user": BOT_USER,
        "ts": message_ts,
        "text": "Would you like me to connect you with a member of our team?",
        "blocks": blocks
        if blocks is not None
        else [
            {
                "type": "section",
                "block_id": "q",
                "text": {"type": "mrkdwn", "text": "Would you like..."},
            },
            {
                "type": "actions",
                "block_id": "rasa_buttons_0",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "rasa_button_0",
                        "text": {"type": "plain_text", "text": title},
                        "value": value,
                    }
                ],
            },
        ],
    }
    if thread_ts:
        message["thread_ts"] = thread_ts
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "customer", "team_id": TEAM},
        "api_app_id": "A0APP0001",
        "token": "verification-token-unused",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
            **({"thread_ts": thread_ts} if thread_ts else {}),
        },
        "trigger_id": unique("trigger."),
        "team": {"id": TEAM, "domain": "northwind"},
        "channel": {"id": channel, "name": "directmessage"},
        "message": message,
        "response_url": "https://hooks.slack.com/actions/T0/1/abc",
        "actions": [
            {
                "action_id": "rasa_button_0",
                "block_id": "rasa_buttons_0",
                "text": {"type": "plain_text", "text": title, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}{next(_counter)}",
            }
        ],
    }


def action_request(payload: Dict[str, Any], **sign: Any) -> Tuple[bytes, Dict[str, str]]:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return body, signed_headers(body, "application/x-www-form-urlencoded", **sign)
