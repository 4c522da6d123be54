"""The SMS channel's settings from ``credentials.yml``, checked strictly at start-up.

The first three keys are those of Rasa's stock ``twilio`` channel, so switching is one
line: ``twilio:`` becomes ``channels.sms.TwilioSmsInput:``. Everything else is
optional. A missing or misspelt key stops the server with a message that names the
key and the channel and says what to write, because Rasa itself would silently ignore
a typo such as ``auth_tokne`` and the channel would then accept nothing.

The texts the channel writes itself (``options_prompt``, ``help_text``, ``stop_text``,
``start_text``) are in each of the bot's languages: a mapping ``{en: ..., zh: ...}``
(a language left out says the ``en`` text), or one string that every language says,
as before there was a Chinese one. :func:`reply_language` tells which one a text
added to a reply follows: the reply's own.
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
from rasa_llm.language.detection import BOT_LANGUAGES, first_language_told

CHANNEL = "twilio"
INPUT_CLASS = "channels.sms.TwilioSmsInput"
REST = "rest"
TWIML = "twiml"
# Twilio gives up on a webhook after 15 s; a TwiML answer must leave it margin.
TWILIO_TIMEOUT_SECONDS = 15.0

# The bot's languages, its first (main) one first: a text in no language of these, or
# in none that can be told, gets the first one's wording.
LANGUAGES = BOT_LANGUAGES
CHINESE = "zh"

DEFAULT_HELP_TEXT = (
    "This is Northwind customer service's automated assistant. Ask about orders, returns, "
    "refunds, payments or your account, or ask for a person. Reply STOP to opt out, "
    "START to opt back in. Msg&data rates may apply."
)
DEFAULT_HELP_TEXT_ZH = (
    "这里是Northwind客服的自动助手。您可以咨询订单、退货、退款、付款或账户问题，"
    "也可以要求转人工客服。回复“退订”或STOP停止接收消息，回复START重新订阅。"
    "可能产生短信费用。"
)
# Twilio confirms its own keywords (STOP); a Chinese opt-out word it does not know
# (退订, TD) is confirmed by the channel, and in Chinese.
DEFAULT_STOP_TEXT_ZH = "您已退订，本号码不会再向您发送消息。回复START可重新订阅。"

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
        # Said after the numbered options that stand in for buttons, in the reply's
        # language. Each text the channel writes is {en: ..., zh: ...} or one string.
        "options_prompt": {"en": "Reply with the number.", "zh": "请回复选项编号。"},
        # How long a reply "1" still means the first option of the last buttons.
        "options_ttl_seconds": 24 * 60 * 60,
        # Answer to HELP/INFO (en) and 帮助 (zh); "" leaves it to Twilio's own opt-out
        # management.
        "help_text": {"en": DEFAULT_HELP_TEXT, "zh": DEFAULT_HELP_TEXT_ZH},
        # Said after an opt-out word: STOP and the like (en; Twilio confirms them
        # itself), 退订, TD or T (zh; Twilio does not know them). "": nothing.
        "stop_text": {"en": "", "zh": DEFAULT_STOP_TEXT_ZH},
        # Said after START. Empty by default: Twilio confirms it itself.
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


@dataclass(frozen=True)
class Wording:
    """One text the channel writes itself, in each of the bot's languages."""

    en: str
    zh: str

    def said_in(self, language: Optional[str]) -> str:
        """The text in ``language``; the main language's for any other or None."""
        return self.zh if language == CHINESE else self.en


def reply_language(*texts: str) -> str:
    """The language of the first of ``texts`` that tells one among the bot's; the main
    language when none does ("OK", an order number, nothing).
    """
    return first_language_told(texts, LANGUAGES) or LANGUAGES[0]


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
    options_prompt: Wording
    options_ttl_seconds: float
    help_text: Wording
    stop_text: Wording
    start_text: Wording
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
            options_prompt=_wording(read, "options_prompt"),
            options_ttl_seconds=read.number("options_ttl_seconds", minimum=1),
            help_text=_wording(read, "help_text"),
            stop_text=_wording(read, "stop_text"),
            start_text=_wording(read, "start_text"),
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


def _wording(read: SettingsReader, key: str) -> Wording:
    """A text in each language: one string for all, or a mapping of language to text."""
    value = read.values[key]
    if isinstance(value, str):
        return Wording(en=value, zh=value)
    languages = ", ".join(LANGUAGES)
    if not isinstance(value, Mapping):
        raise SmsConfigError(
            key,
            f"expected text, or a mapping of language to text, got {value!r}",
            f"Write one text for every language, or one per language ({languages}), e.g. "
            f'{key}: {{en: "...", zh: "..."}}.',
        )
    for language in value:
        if language not in LANGUAGES:
            raise SmsConfigError(
                f"{key}.{language}",
                "not one of the bot's languages",
                f"Write the texts under {languages}.",
            )
        if not isinstance(value[language], str):
            raise SmsConfigError(
                f"{key}.{language}",
                f"expected text, got {value[language]!r}",
                'Quote it; "" says nothing in that language.',
            )
    if "en" not in value:
        raise SmsConfigError(
            f"{key}.en",
            "missing",
            "Add the English text: it is also said in a language without its own.",
        )
    return Wording(en=value["en"], zh=value.get(CHINESE, value["en"]))


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
