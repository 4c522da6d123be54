"""Settings of the agent desk (``channels.agent_desk.AgentDeskInput`` in credentials.yml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

from channels.channel_database import DatabaseLocation, database_location
from channels.settings import (
    DEFAULT_DESK_DB,
    MAKE_SECRET_SINGLE_QUOTED,
    ChannelConfigError,
    SettingsReader,
    merged,
)

CHANNEL = "agent"
CLASS_PATH = "channels.agent_desk.AgentDeskInput"
# A bearer token guessable in reasonable time is no authentication.
MIN_TOKEN_LENGTH = 16


def get_default_config() -> Dict[str, Any]:
    """Every key the agent desk reads, with its default."""
    return {
        # The service token the action server sends to open hand-offs (it can do
        # nothing else): required, 16+ characters. Use ${RASA_LLM_DESK_TOKEN} in
        # credentials.yml. Agents have tokens of their own: python -m channels.desk_agents.
        "token": None,
        # SQLite file of hand-offs, agents (their tokens' hashes) and the audit trail
        # (relative to the server's directory), or a database URL (postgresql://...)
        # that several servers share.
        "db": DEFAULT_DESK_DB,
        # Seconds an agent who claimed a hand-off may stay silent before another agent
        # may take it over (claim with take_over, or !claim in Slack); null: never (the
        # agent releases it, or is removed).
        "takeover_after_s": 900,
        # Domain response the bot says when an agent hands the conversation back;
        # null says nothing.
        "handback_response": "utter_handback",
        # How many recent turns an agent sees when a hand-off opens.
        "transcript_turns": 10,
        # Seconds between checks for customer messages to forward to Slack threads.
        "forward_interval_s": 2.0,
        # Optional: a thread per hand-off in an agents' Slack channel. Keys:
        # slack_token, slack_signing_secret, agent_channel, agent_user_ids (see README.md).
        "slack": None,
    }


class AgentDeskConfigError(ChannelConfigError):
    """A key of the agent desk in credentials.yml that cannot work, and how to fix it."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(CHANNEL, key, problem, fix, class_path=CLASS_PATH)


@dataclass(frozen=True)
class AgentDeskConfig:
    """The agent desk's settings, checked: every key of :func:`get_default_config`."""

    token: str
    db: DatabaseLocation
    handback_response: Optional[str]
    transcript_turns: int
    forward_interval_s: float
    slack: Optional[Mapping[str, Any]]
    takeover_after_s: Optional[float]

    @classmethod
    def from_credentials(cls, credentials: Optional[Mapping[str, Any]]) -> AgentDeskConfig:
        """The settings from the desk's credentials.yml entry over the defaults.

        Raises :class:`AgentDeskConfigError` for a key that cannot work.
        """
        values = merged(
            dict(credentials or {}), get_default_config(), AgentDeskConfigError, keep_nulls=True
        )
        token = SettingsReader(values, AgentDeskConfigError).secret(
            "token",
            min_chars=MIN_TOKEN_LENGTH,
            fix=f"Generate one ({MAKE_SECRET_SINGLE_QUOTED}), export it as RASA_LLM_DESK_TOKEN for"
            " the Rasa and the action server, and write token: ${RASA_LLM_DESK_TOKEN}.",
        )
        turns = values["transcript_turns"]
        if not isinstance(turns, int) or isinstance(turns, bool) or turns < 0:
            raise AgentDeskConfigError("transcript_turns", f"is {turns!r}", "Use 0 or more.")
        interval = values["forward_interval_s"]
        if not isinstance(interval, (int, float)) or isinstance(interval, bool) or interval <= 0:
            raise AgentDeskConfigError(
                "forward_interval_s", f"is {interval!r}", "Use a positive number of seconds."
            )
        slack = values["slack"]
        if slack is not None and not isinstance(slack, Mapping):
            raise AgentDeskConfigError(
                "slack",
                "must be a mapping",
                "Write slack_token, slack_signing_secret and agent_channel under it.",
            )
        takeover = values["takeover_after_s"]
        if takeover is not None and (
            not isinstance(takeover, (int, float)) or isinstance(takeover, bool) or takeover < 0
        ):
            raise AgentDeskConfigError(
                "takeover_after_s",
                f"is {takeover!r}",
                "Use 0 or more seconds, or null to allow no take-over.",
            )
        response = values["handback_response"]
        if response is not None and not isinstance(response, str):
            raise AgentDeskConfigError(
                "handback_response", f"is {response!r}", "Name a domain response, or null."
            )
        return cls(
            token=token,
            db=database_location(str(values["db"])),
            handback_response=response,
            transcript_turns=turns,
            forward_interval_s=float(interval),
            slack=slack,
            takeover_after_s=float(takeover) if takeover is not None else None,
        )
