"""The Slack channel's settings from ``credentials.yml``.

The keys are the stock ``SlackInput``'s (``slack_token``, ``slack_signing_secret``,
``slack_channel``, ``use_threads``, ``conversation_granularity``, ``proxy``), so a bot
builder switches by changing one line; a few more are this channel's own. An unknown
key, a missing secret or a wrong type stops the server at start-up with a message that
names the key, because Rasa itself would silently ignore a typo. Requests are verified by
:class:`channels.verification.SlackRequestVerifier` (importable from here too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

from channels.channel_database import DatabaseLocation
from channels.rate_limits import Rate
from channels.settings import (
    DEFAULT_CONVERSATION_RATE,
    DEFAULT_DEDUP_DB,
    DEFAULT_DEDUP_WINDOW_SECONDS,
    ChannelConfigError,
    SettingsReader,
    merged,
)
from channels.verification import SLACK_MAX_REQUEST_AGE_SECONDS, SlackRequestVerifier

__all__ = [
    "SlackConfig",
    "SlackConfigError",
    "SlackRequestVerifier",
    "get_default_config",
]

logger = logging.getLogger(__name__)

CHANNEL = "slack"
CLASS_PATH = "channels.slack.SlackInput"
# Slack's own rule: a request more than five minutes from our clock may be a replay.
MAX_REQUEST_AGE_SECONDS = SLACK_MAX_REQUEST_AGE_SECONDS
GRANULARITIES = ("sender", "channel", "thread")
# Keys of the stock channel whose job the de-duplication by event id does here.
_STOCK_RETRY_KEYS = (
    "slack_retry_reason_header",
    "slack_retry_number_header",
    "errors_ignore_retry",
)


def get_default_config() -> Dict[str, Any]:
    """Every key the Slack channel reads, with its default."""
    return {
        # Bot User OAuth token (xoxb-…): required. Use ${SLACK_TOKEN} in credentials.yml.
        "slack_token": None,
        # The app's signing secret: required; every request is checked against it.
        "slack_signing_secret": None,
        # A channel id whose every message the bot answers. DMs and @mentions are
        # always answered; other channel messages only in this channel.
        "slack_channel": None,
        # Start a thread under a channel message and answer there. A customer who
        # writes in a thread is always answered in that thread.
        "use_threads": False,
        # One conversation per "sender", per sender and "channel", or per sender,
        # channel and "thread". null: "thread" when use_threads is on, else "sender".
        "conversation_granularity": None,
        # Proxy for calls to Slack's API, as for the stock channel.
        "proxy": None,
        # Slack's Web API; tests point it at a local fake.
        "api_url": "https://slack.com/api/",
        # After a button click, replace the buttons by "You chose: …" (chat.update),
        # so a question cannot be answered twice.
        "update_clicked_message": True,
        # Where delivered event ids are kept (a SQLite file relative to the server's
        # working directory, or a database URL such as postgresql://... that several
        # servers share), and for how long a re-delivery is recognised.
        "dedup_db": DEFAULT_DEDUP_DB,
        "dedup_window_seconds": DEFAULT_DEDUP_WINDOW_SECONDS,
        # Messages (and clicks) one conversation may send, as COUNT/PERIOD (second,
        # minute, hour, day) or "off". More are acknowledged to Slack and dropped,
        # counted after verification and de-duplication, per server process.
        "rate_limits": {"conversation": DEFAULT_CONVERSATION_RATE},
    }


class SlackConfigError(ChannelConfigError):
    """A Slack key in credentials.yml that cannot work; the message says how to fix it."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(CHANNEL, key, problem, fix, class_path=CLASS_PATH)


@dataclass(frozen=True)
class SlackConfig:
    """The Slack channel's settings, read and checked from ``credentials.yml``."""

    slack_token: str
    slack_signing_secret: str
    slack_channel: Optional[str]
    use_threads: bool
    conversation_granularity: str
    proxy: Optional[str]
    api_url: str
    update_clicked_message: bool
    dedup_db: DatabaseLocation
    dedup_window_seconds: float
    conversation_rate: Optional[Rate] = None

    @classmethod
    def from_credentials(cls, credentials: Optional[Mapping[str, Any]]) -> SlackConfig:
        """The settings over the defaults; SlackConfigError names a bad key and its fix."""
        given = dict(credentials or {})
        for key in list(given):
            if key in _STOCK_RETRY_KEYS:
                logger.warning(
                    "%s: credentials key `%s` of the stock channel is not needed: every "
                    "re-delivery is dropped by its event id; remove the key",
                    CHANNEL,
                    key,
                )
                del given[key]
        defaults = get_default_config()
        read = SettingsReader(merged(given, defaults, SlackConfigError), SlackConfigError)
        use_threads = read.flag("use_threads")
        granularity = read.values["conversation_granularity"] or (
            "thread" if use_threads else "sender"
        )
        if granularity not in GRANULARITIES:
            raise SlackConfigError(
                "conversation_granularity",
                f"{granularity!r} is not a granularity",
                f"Write one of {', '.join(GRANULARITIES)}.",
            )
        api_url = read.required_text("api_url")
        return cls(
            slack_token=read.required_text("slack_token"),
            slack_signing_secret=read.required_text("slack_signing_secret"),
            slack_channel=read.optional_text("slack_channel"),
            use_threads=use_threads,
            conversation_granularity=granularity,
            proxy=read.optional_text("proxy"),
            api_url=api_url if api_url.endswith("/") else api_url + "/",
            update_clicked_message=read.flag("update_clicked_message"),
            dedup_db=read.database("dedup_db"),
            dedup_window_seconds=read.seconds("dedup_window_seconds"),
            conversation_rate=read.rates(defaults=defaults["rate_limits"])["conversation"],
        )
