"""The agent desk's Slack settings: the ``slack`` mapping under the desk's entry.

``channels.agent_desk.AgentDeskInput`` reads them when its ``slack`` key is set, and
:mod:`channels.agent_slack_bridge` runs the hand-off threads they describe. A missing,
misspelt or mistyped key stops the server at start-up with a message that names the
key as ``slack.<key>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Mapping, Optional

from channels.settings import DEFAULT_DEDUP_DB, ChannelConfigError, SettingsReader, add_it, merged

__all__ = ["AgentSlackConfig", "AgentSlackConfigError", "get_default_config"]

DESK_CLASS_PATH = "channels.agent_desk.AgentDeskInput"
SECTION = "slack"
DEFAULT_API_URL = "https://slack.com/api/"
# Slack channel ids: public (C), private (G); names cannot be matched against events.
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def get_default_config() -> Dict[str, Any]:
    """Every key of the desk's ``slack`` settings, with its default."""
    return {
        # Bot User OAuth token (xoxb-…): required. Use ${SLACK_AGENT_TOKEN} in credentials.yml.
        "slack_token": None,
        # The Slack app's signing secret: required; every event is checked against it.
        "slack_signing_secret": None,
        # Id of the agents' channel (C…/G…), where each hand-off opens a thread: required.
        "agent_channel": None,
        # Slack user ids (U…/W…) of the people who may answer customers: required.
        # Anyone else who writes in a hand-off thread reaches no customer.
        "agent_user_ids": None,
        # Slack's Web API; tests point it at a local fake.
        "api_url": DEFAULT_API_URL,
        # SQLite file of delivered event ids (relative to the server's working directory),
        # or a database URL (postgresql://...) that several servers share.
        "dedup_db": DEFAULT_DEDUP_DB,
    }


class AgentSlackConfigError(ChannelConfigError):
    """A key of the desk's ``slack`` settings that cannot work; the message says the fix."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(DESK_CLASS_PATH, key, problem, fix, section=SECTION)


@dataclass(frozen=True)
class AgentSlackConfig:
    """The Slack side of the agent desk, from the ``slack`` settings of the desk channel."""

    slack_token: str
    slack_signing_secret: str
    agent_channel: str
    agent_user_ids: FrozenSet[str]
    api_url: str = DEFAULT_API_URL
    dedup_db: str = DEFAULT_DEDUP_DB

    @classmethod
    def from_credentials(cls, values: Optional[Mapping[str, Any]]) -> AgentSlackConfig:
        """Validated settings; an unknown, missing or mistyped key stops the server."""
        if not isinstance(values, Mapping):
            raise AgentSlackConfigError(
                "",
                f"expected a mapping of settings, got {type(values).__name__}",
                f"Write the keys {', '.join(sorted(get_default_config()))} under `slack:`.",
            )
        read = SettingsReader(
            merged(values, get_default_config(), AgentSlackConfigError), AgentSlackConfigError
        )
        token = _text(read, "slack_token")
        # Only a bot token makes our posts carry a bot_id, which is how they are told
        # apart from agents' replies; with a user token the bridge would forward its own
        # "Customer: …" posts back to the customer.
        if not token.startswith("xoxb-"):
            raise AgentSlackConfigError(
                "slack_token",
                "not a bot token (it must start with xoxb-)",
                "Use the app's Bot User OAuth Token, e.g. `slack_token: ${SLACK_AGENT_TOKEN}`.",
            )
        channel = _text(read, "agent_channel")
        if not _CHANNEL_ID.match(channel):
            raise AgentSlackConfigError(
                "agent_channel",
                f"{channel!r} is not a channel id",
                "Write the channel's id (C… or G…, shown at the bottom of the channel's "
                "details in Slack), not its name: events name channels by id.",
            )
        api_url = _text(read, "api_url")
        return cls(
            slack_token=token,
            slack_signing_secret=_text(read, "slack_signing_secret"),
            agent_channel=channel,
            agent_user_ids=_user_ids(read.values.get("agent_user_ids")),
            api_url=api_url if api_url.endswith("/") else api_url + "/",
            dedup_db=_text(read, "dedup_db"),
        )


def _user_ids(value: Any) -> FrozenSet[str]:
    fix = (
        "List the Slack member ids of the people who may answer customers, e.g. "
        "`agent_user_ids: [U0123ABCDE, U0456FGHIJ]` (in Slack: a person's profile, "
        "⋮, Copy member ID)."
    )
    if value is None:
        raise AgentSlackConfigError("agent_user_ids", "missing", fix)
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise AgentSlackConfigError(
            "agent_user_ids", f"expected a non-empty list, got {value!r}", fix
        )
    ids = [str(item).strip() for item in value]
    wrong = [item for item in ids if not _USER_ID.match(item)]
    if wrong:
        raise AgentSlackConfigError(
            "agent_user_ids", f"{wrong[0]!r} is not a Slack user id (U… or W…)", fix
        )
    return frozenset(ids)


def _text(read: SettingsReader, key: str) -> str:
    return read.required_text(key, numbers=False, missing=add_it(key, under="`slack:`"))
