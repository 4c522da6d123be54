"""The Slack channel's settings from ``credentials.yml``, and how its requests are verified.

The keys are the stock ``SlackInput``'s (``slack_token``, ``slack_signing_secret``,
``slack_channel``, ``use_threads``, ``conversation_granularity``, ``proxy``), so a bot
builder switches by changing one line; a few more are this channel's own. An unknown
key, a missing secret or a wrong type stops the server at start-up with a message that
names the key, because Rasa itself would silently ignore a typo.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional

from slack_sdk.signature import Clock, SignatureVerifier

from channels.channel_database import DatabaseLocation, database_location
from channels.rate_limits import Rate, RateSettingError, read_rates
from channels.webhook_guard import WebhookRejected

logger = logging.getLogger(__name__)

CHANNEL = "slack"
CLASS_PATH = "channels.slack.SlackInput"
# Slack's own rule: a request more than five minutes from our clock may be a replay.
MAX_REQUEST_AGE_SECONDS = 5 * 60
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
        "dedup_db": "channel_deliveries.db",
        "dedup_window_seconds": 24 * 60 * 60,
        # Messages (and clicks) one conversation may send, as COUNT/PERIOD (second,
        # minute, hour, day) or "off". More are acknowledged to Slack and dropped,
        # counted after verification and de-duplication, per server process.
        "rate_limits": {"conversation": "30/minute"},
    }


class SlackConfigError(ValueError):
    """A Slack key in credentials.yml that cannot work; the message says how to fix it."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(
            f"credentials.yml, channel `{CHANNEL}` ({CLASS_PATH}), key `{key}`: {problem}. {fix}"
        )
        self.key = key


@dataclass(frozen=True)
class SlackConfig:
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
        given = dict(credentials or {})
        defaults = get_default_config()
        for key in list(given):
            if key in _STOCK_RETRY_KEYS:
                logger.warning(
                    "%s: credentials key `%s` of the stock channel is not needed: every "
                    "re-delivery is dropped by its event id; remove the key",
                    CHANNEL,
                    key,
                )
                del given[key]
            elif key not in defaults:
                raise SlackConfigError(
                    key, "unknown key", f"Valid keys: {', '.join(sorted(defaults))}."
                )
        values = {**defaults, **{k: v for k, v in given.items() if v is not None}}
        use_threads = _flag(values, "use_threads")
        granularity = values["conversation_granularity"] or ("thread" if use_threads else "sender")
        if granularity not in GRANULARITIES:
            raise SlackConfigError(
                "conversation_granularity",
                f"{granularity!r} is not a granularity",
                f"Write one of {', '.join(GRANULARITIES)}.",
            )
        api_url = _text(values, "api_url", required=True) or ""
        return cls(
            slack_token=_text(values, "slack_token", required=True) or "",
            slack_signing_secret=_text(values, "slack_signing_secret", required=True) or "",
            slack_channel=_text(values, "slack_channel"),
            use_threads=use_threads,
            conversation_granularity=granularity,
            proxy=_text(values, "proxy"),
            api_url=api_url if api_url.endswith("/") else api_url + "/",
            update_clicked_message=_flag(values, "update_clicked_message"),
            dedup_db=database_location(_text(values, "dedup_db", required=True) or ""),
            dedup_window_seconds=_seconds(values, "dedup_window_seconds"),
            conversation_rate=_conversation_rate(values["rate_limits"]),
        )


def _conversation_rate(value: Any) -> Optional[Rate]:
    try:
        return read_rates(value, get_default_config()["rate_limits"])["conversation"]
    except RateSettingError as error:
        raise SlackConfigError(error.key, error.problem, error.fix) from error


def _text(values: Mapping[str, Any], key: str, *, required: bool = False) -> Optional[str]:
    value = values.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise SlackConfigError(
                key,
                "missing",
                "Add it under the channel (for a secret, `" + key + ": ${ENV_VAR}`).",
            )
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise SlackConfigError(key, f"expected text, got {type(value).__name__}", "Quote it.")
    return str(value).strip()


def _flag(values: Mapping[str, Any], key: str) -> bool:
    value = values[key]
    if not isinstance(value, bool):
        raise SlackConfigError(
            key, f"expected true or false, got {value!r}", "Write true or false."
        )
    return value


def _seconds(values: Mapping[str, Any], key: str) -> float:
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
        raise SlackConfigError(
            key, f"expected a number of seconds of at least 1, got {value!r}", "Fix the value."
        )
    return float(value)


class _FunctionClock(Clock):
    """slack_sdk's clock interface over a plain function, so tests can set the time."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


class SlackRequestVerifier:
    """Slack's signing scheme (v0 HMAC-SHA256 of timestamp and body) via slack_sdk.

    The reason in each rejection says which check failed, never what was signed.
    """

    def __init__(self, signing_secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._verifier = SignatureVerifier(signing_secret, clock=_FunctionClock(clock))

    def verify(self, body: str, headers: Mapping[str, str]) -> None:
        """Return if Slack signed ``body`` less than five minutes ago; raise 401 otherwise."""
        lowered = {key.lower(): value for key, value in headers.items()}
        timestamp = lowered.get("x-slack-request-timestamp")
        signature = lowered.get("x-slack-signature")
        if not timestamp or not signature:
            raise WebhookRejected(401, "request is not signed (X-Slack-Signature missing)")
        if not timestamp.isdigit():
            raise WebhookRejected(401, "X-Slack-Request-Timestamp is not a number")
        if abs(self._clock() - int(timestamp)) > MAX_REQUEST_AGE_SECONDS:
            raise WebhookRejected(401, "request timestamp is more than 5 minutes off (replay?)")
        if not self._verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
            raise WebhookRejected(401, "X-Slack-Signature does not match the signing secret")
