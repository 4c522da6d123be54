"""The agents' Slack, as text: what the desk posts there and what agents write back.

Posts are escaped mrkdwn (a transcript, a note that may name an agent); an agent's
reply is either a command (``!claim``, ``!release``, ``!handback``) or a message, and
a message reaches the customer as plain text, Slack's markup undone.
"""

from __future__ import annotations

import re
from typing import List, Literal, Sequence, Tuple

from channels.slack_format import escape_mrkdwn, split_mrkdwn, unescape_mrkdwn

HANDBACK_COMMAND = "!handback"
CLAIM_COMMAND = "!claim"
RELEASE_COMMAND = "!release"
_COMMANDS = {HANDBACK_COMMAND: "handback", CLAIM_COMMAND: "claim", RELEASE_COMMAND: "release"}
_USER_MENTION = re.compile(r"<@[UW][A-Z0-9]+>")

EventKind = Literal["message", "handback", "claim", "release", "not_agent", "challenge", "ignored"]


def command_kind(text: str) -> EventKind:
    """What an agent's reply in a thread is: one of the commands, or a ``message``."""
    command = _COMMANDS.get(text.strip().lower())
    if command == "handback":
        return "handback"
    if command == "claim":
        return "claim"
    if command == "release":
        return "release"
    return "message"


def transcript_pieces(transcript: Sequence[Tuple[str, str]]) -> List[str]:
    """The transcript as escaped mrkdwn, one line per turn, split to Slack's limit."""
    lines = [
        f"{(role or 'unknown').strip().capitalize()}: {' '.join(str(text).split())}"
        for role, text in transcript
        if str(text).strip()
    ]
    if not lines:
        return []
    return split_mrkdwn("Recent conversation:\n" + "\n".join(lines))


def escape_note(text: str) -> str:
    """``text`` escaped as mrkdwn, except user mentions (``<@U…>``), which stay live."""
    parts: List[str] = []
    last = 0
    for match in _USER_MENTION.finditer(text):
        parts.append(escape_mrkdwn(text[last : match.start()]))
        parts.append(match.group(0))
        last = match.end()
    parts.append(escape_mrkdwn(text[last:]))
    return "".join(parts)


_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL_LINK = re.compile(r"<#[A-Z0-9]+(?:\|([^>]*))?>")
_LINK = re.compile(r"<((?:https?|mailto|tel):[^|>]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<![^|>]+(?:\|([^>]*))?>")


def agent_text(text: str) -> str:
    """What an agent wrote, as the customer should read it, line breaks kept.

    A link keeps its address (``label (https://…)``), since the customer cannot click
    Slack's markup; mentions and channel names become the text Slack shows; entities are
    unescaped last, so a typed ``&lt;`` stays the characters ``<``.
    """

    def link(match: re.Match) -> str:
        target, label = match.group(1), match.group(2)
        shown = target.removeprefix("mailto:").removeprefix("tel:")
        if not label or label in (target, shown):
            return shown
        return f"{label} ({shown})"

    text = _MENTION.sub(lambda m: "@" + (m.group(2) or m.group(1)), text)
    text = _CHANNEL_LINK.sub(lambda m: "#" + (m.group(1) or "channel"), text)
    text = _LINK.sub(link, text)
    text = _SPECIAL.sub(lambda m: m.group(1) or "", text)
    lines = [" ".join(line.split()) for line in unescape_mrkdwn(text).splitlines()]
    return "\n".join(lines).strip()


def shown(agent: str) -> str:
    """An agent as a Slack note names them: ``<@U…>`` for a Slack user, else the name."""
    return f"<@{agent[len('slack:') :]}>" if agent.startswith("slack:") else agent
