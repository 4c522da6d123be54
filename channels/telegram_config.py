"""The Telegram channel's settings from ``credentials.yml``, and how its requests are verified.

The keys are the stock ``TelegramInput``'s (``access_token``, ``verify``,
``webhook_url``), so a bot builder switches by changing one line, plus ``secret_token``,
which the stock channel lacks: Telegram sends it back in the
``X-Telegram-Bot-Api-Secret-Token`` header of every webhook call, and it is the only
proof that a request comes from Telegram. An unknown key, a missing token or a wrong
type stops the server at start-up with a message that names the key, because Rasa
itself would silently ignore a typo.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from channels.attachments import channel_intent
from channels.channel_database import DatabaseLocation, database_location
from channels.rate_limits import Rate, RateSettingError, read_rates
from channels.webhook_guard import WebhookRejected

CHANNEL = "telegram"
CLASS_PATH = "channels.telegram.TelegramInput"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram's rule for secret_token: 1 to 256 of these characters. Anyone who knows it
# can post updates as Telegram, so this channel asks for at least MIN_SECRET_CHARS
# (secrets.token_urlsafe(32) makes 43).
MIN_SECRET_CHARS = 32
_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
# Telegram's rule for command names.
_COMMAND_PATTERN = re.compile(r"[a-z0-9_]{1,32}")
_MAKE_SECRET = (
    'Generate one with `python -c "import secrets; print(secrets.token_urlsafe(32))"`, '
    "put it in the environment (TELEGRAM_SECRET_TOKEN), write "
    "`secret_token: ${TELEGRAM_SECRET_TOKEN}` under the channel, and register the webhook "
    "with `python -m channels.telegram set-webhook --credentials credentials.yml` so "
    "Telegram sends it with every update."
)


def get_default_config() -> Dict[str, Any]:
    """Every key the Telegram channel reads, with its default."""
    return {
        # The bot's token from @BotFather: required. Use ${TELEGRAM_TOKEN}.
        "access_token": None,
        # The bot's username (without @). Commands addressed to another bot in a group
        # ("/start@OtherBot") are ignored; "/start@ThisBot" becomes "/start".
        "verify": None,
        # The public HTTPS URL of /webhooks/telegram/webhook, for `set-webhook`.
        "webhook_url": None,
        # Required: 32-256 characters A-Z a-z 0-9 _ -, sent by Telegram in every request.
        "secret_token": None,
        # Telegram's Bot API; the token is appended (or replaces {token}). Tests point
        # it at a local fake; a self-hosted Bot API server goes here too.
        "base_url": "https://api.telegram.org/bot",
        # What a Telegram command becomes for Rasa: an intent ("/greet", or with
        # entities '/inform{"topic": "returns"}'), which Rasa takes as said, or words
        # for NLU. Commands not listed reach Rasa as the customer's text, read by NLU.
        "commands": {"start": "/greet"},
        # An edited message is ignored (the bot already answered the original, and a
        # second answer to a typo fix confuses); true answers it like a new message.
        "answer_edited_messages": False,
        # After a button click, remove the keyboard and show "You chose: …" under the
        # question, so it cannot be answered twice.
        "update_clicked_message": True,
        # Where delivered update ids (and long button payloads) are kept: a SQLite file
        # relative to the server's working directory, or a database URL such as
        # postgresql://... that several servers share; and for how long a re-delivery
        # is recognised.
        "dedup_db": "channel_deliveries.db",
        "dedup_window_seconds": 24 * 60 * 60,
        # Messages (and clicks) one chat may send, as COUNT/PERIOD (second, minute,
        # hour, day) or "off". More are acknowledged to Telegram and dropped, counted
        # after verification and de-duplication, per server process.
        "rate_limits": {"conversation": "30/minute"},
    }


class TelegramConfigError(ValueError):
    """A Telegram key in credentials.yml that cannot work; the message says how to fix it."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(
            f"credentials.yml, channel `{CHANNEL}` ({CLASS_PATH}), key `{key}`: {problem}. {fix}"
        )
        self.key = key


@dataclass(frozen=True)
class TelegramConfig:
    access_token: str
    verify: Optional[str]
    webhook_url: Optional[str]
    secret_token: str
    base_url: str
    commands: Tuple[Tuple[str, str], ...]
    answer_edited_messages: bool
    update_clicked_message: bool
    dedup_db: DatabaseLocation
    dedup_window_seconds: float
    conversation_rate: Optional[Rate] = None

    @classmethod
    def from_credentials(cls, credentials: Optional[Mapping[str, Any]]) -> TelegramConfig:
        given = dict(credentials or {})
        defaults = get_default_config()
        for key in given:
            if key not in defaults:
                raise TelegramConfigError(
                    key, "unknown key", f"Valid keys: {', '.join(sorted(defaults))}."
                )
        values = {**defaults, **{k: v for k, v in given.items() if v is not None}}
        secret = _text(values, "secret_token", fix=_MAKE_SECRET)
        if not secret:
            raise TelegramConfigError("secret_token", "missing", _MAKE_SECRET)
        if not _SECRET_PATTERN.fullmatch(secret):
            raise TelegramConfigError(
                "secret_token", "Telegram accepts only 1-256 of A-Z a-z 0-9 _ -", _MAKE_SECRET
            )
        if len(secret) < MIN_SECRET_CHARS:
            raise TelegramConfigError(
                "secret_token",
                f"{len(secret)} characters are guessable; use at least {MIN_SECRET_CHARS}",
                _MAKE_SECRET,
            )
        verify = _text(values, "verify")
        return cls(
            access_token=_required(values, "access_token", "the token @BotFather gave you"),
            verify=verify.lstrip("@") if verify else None,
            webhook_url=_text(values, "webhook_url"),
            secret_token=secret,
            base_url=_required(values, "base_url", "Telegram's Bot API URL"),
            commands=_commands(values["commands"]),
            answer_edited_messages=_flag(values, "answer_edited_messages"),
            update_clicked_message=_flag(values, "update_clicked_message"),
            dedup_db=database_location(
                _required(values, "dedup_db", "a file name or a database URL")
            ),
            dedup_window_seconds=_seconds(values, "dedup_window_seconds"),
            conversation_rate=_conversation_rate(values["rate_limits"]),
        )

    def command_map(self) -> Dict[str, str]:
        return dict(self.commands)


def _conversation_rate(value: Any) -> Optional[Rate]:
    try:
        return read_rates(value, get_default_config()["rate_limits"])["conversation"]
    except RateSettingError as error:
        raise TelegramConfigError(error.key, error.problem, error.fix) from error


def _text(values: Mapping[str, Any], key: str, *, fix: str = "Quote it.") -> Optional[str]:
    value = values.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise TelegramConfigError(key, f"expected text, got {type(value).__name__}", fix)
    return str(value).strip()


def _required(values: Mapping[str, Any], key: str, what: str) -> str:
    value = _text(values, key)
    if value is None:
        raise TelegramConfigError(
            key,
            "missing",
            f"Add it under the channel ({what}; for a secret `{key}: ${{ENV_VAR}}`).",
        )
    return value


def _flag(values: Mapping[str, Any], key: str) -> bool:
    value = values[key]
    if not isinstance(value, bool):
        raise TelegramConfigError(
            key, f"expected true or false, got {value!r}", "Write true or false."
        )
    return value


def _seconds(values: Mapping[str, Any], key: str) -> float:
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
        raise TelegramConfigError(
            key, f"expected a number of seconds of at least 1, got {value!r}", "Fix the value."
        )
    return float(value)


def _commands(value: Any) -> Tuple[Tuple[str, str], ...]:
    fix = 'Write a mapping such as `commands: {start: "/greet", help: "I need help"}`.'
    if not isinstance(value, Mapping):
        raise TelegramConfigError("commands", f"expected a mapping, got {value!r}", fix)
    pairs = []
    for command, text in value.items():
        name = str(command).lstrip("/")
        if not _COMMAND_PATTERN.fullmatch(name):
            raise TelegramConfigError(
                "commands", f"{command!r} is not a Telegram command (a-z, 0-9, _)", fix
            )
        if not isinstance(text, str) or not text.strip():
            raise TelegramConfigError("commands", f"/{name} maps to {text!r}, not to text", fix)
        if text.strip().startswith("/"):
            try:
                channel_intent(text.strip())
            except ValueError as error:
                raise TelegramConfigError(
                    "commands",
                    f"/{name} maps to {text.strip()!r}, which is not an intent ({error})",
                    'Write an intent of the domain as /intent or /intent{"entity": "value"}, '
                    "or words without a leading /.",
                ) from error
        pairs.append((name, text.strip()))
    return tuple(pairs)


class SecretTokenVerifier:
    """Telegram's only webhook proof: the secret token, compared in constant time."""

    def __init__(self, secret_token: str) -> None:
        self._secret = secret_token.encode("utf-8")

    def verify(self, headers: Mapping[str, str]) -> None:
        """Return if the request carries the secret token; raise 401 or 403 otherwise."""
        given = _header(headers, SECRET_HEADER)
        if given is None:
            raise WebhookRejected(
                401,
                f"request has no {SECRET_HEADER} header (register the webhook with "
                "`python -m channels.telegram set-webhook`)",
            )
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self._secret):
            raise WebhookRejected(403, f"{SECRET_HEADER} does not match secret_token")


def _header(headers: Mapping[str, str], name: str) -> Optional[str]:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value
