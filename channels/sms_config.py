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
from channels.rate_limits import Rate
from channels.settings import (
    DEFAULT_CONVERSATION_RATE,
    DEFAULT_DEDUP_DB,
    DEFAULT_DEDUP_WINDOW_SECONDS,
    DEFAULT_HINT,
    ChannelConfigError,
    SettingsReader,
    merged,
)
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
        # so one of them does not switch a whole reply to UCS-2 (70 instead of 160);
        # only in a message that becomes GSM-7 (Chinese keeps its “” and ——).
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
        "dedup_db": DEFAULT_DEDUP_DB,
        "dedup_window_seconds": DEFAULT_DEDUP_WINDOW_SECONDS,
        # Opt-outs and last numbered options per sender. Absent: sms_senders.db next
        # to dedup_db, or dedup_db's database when that is a URL.
        "state_db": None,
        # Messages one phone number may send, as COUNT/PERIOD (second, minute, hour,
        # day) or "off". More get Twilio's empty answer and are dropped (no reply, no
        # HELP text); STOP and START are recorded whatever the rate. Counted after
        # verification and de-duplication, per server process.
        "rate_limits": {"conversation": DEFAULT_CONVERSATION_RATE},
    }


class SmsConfigError(ChannelConfigError):
    """A key in credentials.yml that cannot work; the message says how to fix it."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(CHANNEL, key, problem, fix, class_path=INPUT_CLASS)


@dataclass(frozen=True)
class SmsConfig:
    """The SMS channel's settings, read and checked from ``credentials.yml``."""

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
        """The settings over the defaults; SmsConfigError names a bad key and its fix."""
        if credentials is not None and not isinstance(credentials, Mapping):
            raise SmsConfigError(
                "(all)", f"expected a mapping of keys, got {credentials!r}", _REQUIRED_HINT
            )
        given = dict(credentials or {})
        defaults = get_default_config()
        values = merged(given, defaults, SmsConfigError)
        for key in _REQUIRED:
            if given.get(key) in (None, ""):
                raise SmsConfigError(key, "missing", _REQUIRED_HINT)
        read = SettingsReader(values, SmsConfigError)
        dedup_db = database_location(read.nonempty_string("dedup_db", quote_numbers=True))
        return cls(
            account_sid=_account_sid(values["account_sid"]),
            auth_token=read.nonempty_string("auth_token", quote_numbers=True),
            twilio_number=read.nonempty_string("twilio_number", quote_numbers=True),
            webhook_url=_url(values, "webhook_url") if values["webhook_url"] else None,
            trust_proxy_headers=read.flag("trust_proxy_headers", fix=DEFAULT_HINT),
            reply_mode=read.choice("reply_mode", (REST, TWIML)),
            twiml_deadline_seconds=read.number(
                "twiml_deadline_seconds", minimum=0.1, below=TWILIO_TIMEOUT_SECONDS
            ),
            api_base_url=_url(values, "api_base_url").rstrip("/"),
            max_segments=read.whole(
                "max_segments",
                minimum=1,
                maximum=MAX_SEGMENTS,
                fix="Twilio refuses bodies over 1,600 characters and advises at most 10 segments.",
            ),
            smart_encoding=read.flag("smart_encoding", fix=DEFAULT_HINT),
            options_prompt=read.string("options_prompt"),
            options_ttl_seconds=read.number("options_ttl_seconds", minimum=1),
            help_text=read.string("help_text"),
            stop_text=read.string("stop_text"),
            start_text=read.string("start_text"),
            dedup_db=dedup_db,
            dedup_window_seconds=read.number("dedup_window_seconds", minimum=1),
            state_db=_state_db(read, dedup_db),
            conversation_rate=read.rates(defaults=defaults["rate_limits"])["conversation"],
        )


def _state_db(read: SettingsReader, dedup_db: DatabaseLocation) -> DatabaseLocation:
    """``state_db``, or by default beside ``dedup_db``: the same database, or a file next to it."""
    if read.values["state_db"]:
        return database_location(read.nonempty_string("state_db", quote_numbers=True))
    if isinstance(dedup_db, str):  # a database URL holds both channels' tables
        return dedup_db
    return dedup_db.with_name("sms_senders.db")


_REQUIRED_HINT = (
    "The channel needs account_sid, auth_token and twilio_number, as Rasa's stock "
    "`twilio` channel; copy them from the Twilio console, e.g. auth_token: ${TWILIO_AUTH_TOKEN}."
)


def _account_sid(value: Any) -> str:
    if not isinstance(value, str) or not _ACCOUNT_SID.match(value):
        raise SmsConfigError(
            "account_sid",
            "expected AC followed by 32 hexadecimal digits",
            "Copy the Account SID from the Twilio console (not an API key SID starting SK).",
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
