"""The SMS channel's settings from ``credentials.yml``, checked strictly at start-up.

The first three keys are those of Rasa's stock ``twilio`` channel, so switching is one
line: ``twilio:`` becomes ``channels.sms.TwilioSmsInput:``. Everything else is
optional. A missing or misspelt key stops the server with a message that names the
key and the channel and says what to write, because Rasa itself would silently ignore
a typo such as ``auth_tokne`` and the channel would then accept nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional
from urllib.parse import urlsplit

from channels.channel_database import DatabaseLocation, database_location
from channels.rate_limits import Rate, RateSettingError, read_rates
from channels.sms_segments import MAX_SEGMENTS

CHANNEL = "twilio"
INPUT_CLASS = "channels.sms.TwilioSmsInput"
REST = "rest"
TWIML = "twiml"
# Twilio gives up on a webhook after 15 s; a TwiML answer must leave it margin.
TWILIO_TIMEOUT_SECONDS = 15.0

DEFAULT_HELP_TEXT = (
    "This is Northwind customer service's automated assistant. Ask about orders, returns, "
    "refunds, payments or your account, or ask for a person. Reply STOP to opt out, "
    "START to opt back in. Msg&data rates may apply."
)

_REQUIRED = ("account_sid", "auth_token", "twilio_number")
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")


def get_default_config() -> Dict[str, Any]:
    """Every key the SMS channel reads, with its default (None: required or derived)."""
    return {
        # Required, as for Rasa's stock channel (Twilio console > Account info).
        "account_sid": None,
        "auth_token": None,
        # The number (or alphanumeric sender id) replies are sent from, e.g. "+15005550006".
        "twilio_number": None,
        # The webhook URL exactly as configured in Twilio (with any query string); the
        # signature covers it. Absent: rebuilt from the request (see trust_proxy_headers).
        "webhook_url": None,
        # Rebuild the URL from X-Forwarded-Proto/-Host/-Port. Only behind a proxy that
        # sets them: otherwise a client chooses the URL that is checked.
        "trust_proxy_headers": False,
        # "rest": answer an empty TwiML at once and reply through the REST API.
        # "twiml": put the replies in the webhook's answer (falls back to REST after
        # twiml_deadline_seconds, so Twilio's 15 s limit is never hit).
        "reply_mode": REST,
        "twiml_deadline_seconds": 10.0,
        # Twilio's REST API; tests point it at a fake.
        "api_base_url": "https://api.twilio.com",
        # A reply longer than this many segments is sent as several messages (1 to 10).
        "max_segments": MAX_SEGMENTS,
        # Replace curly quotes, dashes and the like by GSM-7 characters before sending,
        # so one of them does not switch a whole reply to UCS-2 (70 instead of 160).
        "smart_encoding": True,
        # Said after the numbered options that stand in for buttons.
        "options_prompt": "Reply with the number.",
        # How long a reply "1" still means the first option of the last buttons.
        "options_ttl_seconds": 24 * 60 * 60,
        # Answer to HELP/INFO; "" leaves it to Twilio's own opt-out management.
        "help_text": DEFAULT_HELP_TEXT,
        # Said after STOP / START. Empty by default: Twilio confirms them itself.
        "stop_text": "",
        "start_text": "",
        # Twilio re-sends a webhook it thinks was lost: MessageSids seen in this window
        # are dropped, also across a restart (SQLite file, relative to the server's cwd,
        # or a database URL such as postgresql://... that several servers share).
        "dedup_db": "channel_deliveries.db",
        "dedup_window_seconds": 24 * 60 * 60,
        # Opt-outs and last numbered options per sender. Absent: sms_senders.db next
        # to dedup_db, or dedup_db's database when that is a URL.
        "state_db": None,
        # Messages one phone number may send, as COUNT/PERIOD (second, minute, hour,
        # day) or "off". More get Twilio's empty answer and are dropped (no reply, no
        # HELP text); STOP and START are recorded whatever the rate. Counted after
        # verification and de-duplication, per server process.
        "rate_limits": {"conversation": "30/minute"},
    }


class SmsConfigError(ValueError):
    """A key in credentials.yml that cannot work; the message says how to fix it."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(
            f"credentials.yml, channel `{CHANNEL}` ({INPUT_CLASS}), key `{key}`: {problem}. {fix}"
        )
        self.key = key


@dataclass(frozen=True)
class SmsConfig:
    account_sid: str
    auth_token: str
    twilio_number: str
    webhook_url: Optional[str]
    trust_proxy_headers: bool
    reply_mode: str
    twiml_deadline_seconds: float
    api_base_url: str
    max_segments: int
    smart_encoding: bool
    options_prompt: str
    options_ttl_seconds: float
    help_text: str
    stop_text: str
    start_text: str
    dedup_db: DatabaseLocation
    dedup_window_seconds: float
    state_db: DatabaseLocation
    conversation_rate: Optional[Rate] = None

    @classmethod
    def from_credentials(cls, credentials: Optional[Mapping[str, Any]]) -> SmsConfig:
        if credentials is not None and not isinstance(credentials, Mapping):
            raise SmsConfigError(
                "(all)", f"expected a mapping of keys, got {credentials!r}", _REQUIRED_HINT
            )
        given = dict(credentials or {})
        defaults = get_default_config()
        for key in given:
            if key not in defaults:
                raise SmsConfigError(
                    key, "unknown key", f"Valid keys: {', '.join(sorted(defaults))}."
                )
        for key in _REQUIRED:
            if given.get(key) in (None, ""):
                raise SmsConfigError(key, "missing", _REQUIRED_HINT)
        values = {**defaults, **{k: v for k, v in given.items() if v is not None}}
        dedup_db = database_location(_text(values, "dedup_db"))
        return cls(
            account_sid=_account_sid(values["account_sid"]),
            auth_token=_text(values, "auth_token"),
            twilio_number=_text(values, "twilio_number"),
            webhook_url=_url(values, "webhook_url") if values["webhook_url"] else None,
            trust_proxy_headers=_flag(values, "trust_proxy_headers"),
            reply_mode=_choice(values, "reply_mode", (REST, TWIML)),
            twiml_deadline_seconds=_number(
                values, "twiml_deadline_seconds", minimum=0.1, below=TWILIO_TIMEOUT_SECONDS
            ),
            api_base_url=_url(values, "api_base_url").rstrip("/"),
            max_segments=_segments(values["max_segments"]),
            smart_encoding=_flag(values, "smart_encoding"),
            options_prompt=_string(values, "options_prompt"),
            options_ttl_seconds=_number(values, "options_ttl_seconds", minimum=1),
            help_text=_string(values, "help_text"),
            stop_text=_string(values, "stop_text"),
            start_text=_string(values, "start_text"),
            dedup_db=dedup_db,
            dedup_window_seconds=_number(values, "dedup_window_seconds", minimum=1),
            state_db=_state_db(values, dedup_db),
            conversation_rate=_conversation_rate(values["rate_limits"]),
        )


def _state_db(values: Dict[str, Any], dedup_db: DatabaseLocation) -> DatabaseLocation:
    """``state_db``, or by default beside ``dedup_db``: the same database, or a file next to it."""
    if values["state_db"]:
        return database_location(_text(values, "state_db"))
    if isinstance(dedup_db, str):  # a database URL holds both channels' tables
        return dedup_db
    return dedup_db.with_name("sms_senders.db")


_REQUIRED_HINT = (
    "The channel needs account_sid, auth_token and twilio_number, as Rasa's stock "
    "`twilio` channel; copy them from the Twilio console, e.g. auth_token: ${TWILIO_AUTH_TOKEN}."
)
_DEFAULT_HINT = "Correct it, or remove the key to use the default."


def _conversation_rate(value: Any) -> Optional[Rate]:
    try:
        return read_rates(value, get_default_config()["rate_limits"])["conversation"]
    except RateSettingError as error:
        raise SmsConfigError(error.key, error.problem, error.fix) from error


def _account_sid(value: Any) -> str:
    if not isinstance(value, str) or not _ACCOUNT_SID.match(value):
        raise SmsConfigError(
            "account_sid",
            "expected AC followed by 32 hexadecimal digits",
            "Copy the Account SID from the Twilio console (not an API key SID starting SK).",
        )
    return value


def _text(values: Dict[str, Any], key: str) -> str:
    value = values[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # YAML reads an unquoted +15005550006 as a number and drops the plus sign.
        raise SmsConfigError(
            key, f"read as the number {value!r}", f'Quote it: {key}: "+{value}" or "{value}".'
        )
    if not isinstance(value, str) or not value.strip():
        raise SmsConfigError(key, f"expected a non-empty string, got {value!r}", _DEFAULT_HINT)
    return value.strip()


def _string(values: Dict[str, Any], key: str) -> str:
    value = values[key]
    if not isinstance(value, str):
        raise SmsConfigError(key, f"expected a string, got {value!r}", _DEFAULT_HINT)
    return value


def _flag(values: Dict[str, Any], key: str) -> bool:
    value = values[key]
    if not isinstance(value, bool):
        raise SmsConfigError(key, f"expected true or false, got {value!r}", _DEFAULT_HINT)
    return value


def _choice(values: Dict[str, Any], key: str, choices: tuple) -> str:
    value = values[key]
    if value not in choices:
        raise SmsConfigError(
            key, f"expected one of {', '.join(choices)}, got {value!r}", _DEFAULT_HINT
        )
    return str(value)


def _number(
    values: Dict[str, Any], key: str, *, minimum: float, below: Optional[float] = None
) -> float:
    value = values[key]
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and value >= minimum
    if not ok or (below is not None and value >= below):
        upper = f" and below {below:g}" if below is not None else ""
        raise SmsConfigError(
            key, f"expected a number of at least {minimum:g}{upper}, got {value!r}", _DEFAULT_HINT
        )
    return float(value)


def _segments(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SEGMENTS:
        raise SmsConfigError(
            "max_segments",
            f"expected a whole number from 1 to {MAX_SEGMENTS}, got {value!r}",
            "Twilio refuses bodies over 1,600 characters and advises at most 10 segments.",
        )
    return value


def _url(values: Dict[str, Any], key: str) -> str:
    value = values[key]
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise SmsConfigError(
            key,
            f"expected an http(s) URL, got {value!r}",
            "Write the full URL, e.g. https://bot.example.com/webhooks/twilio/webhook.",
        )
    return str(value)
