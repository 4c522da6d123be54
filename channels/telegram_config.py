"""The Telegram channel's settings from ``credentials.yml``.

The keys are the stock ``TelegramInput``'s (``access_token``, ``verify``,
``webhook_url``), so a bot builder switches by changing one line, plus ``secret_token``,
which the stock channel lacks: Telegram sends it back in the
``X-Telegram-Bot-Api-Secret-Token`` header of every webhook call, and it is the only
proof that a request comes from Telegram. An unknown key, a missing token or a wrong
type stops the server at start-up with a message that names the key, because Rasa
itself would silently ignore a typo. The token is checked by
:class:`channels.verification.TelegramSecretVerifier`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from channels.attachments import channel_intent
from channels.channel_database import DatabaseLocation
from channels.rate_limits import Rate
from channels.settings import (
    DEFAULT_CONVERSATION_RATE,
    DEFAULT_DEDUP_DB,
    DEFAULT_DEDUP_WINDOW_SECONDS,
    MAKE_SECRET,
    ChannelConfigError,
    SettingsReader,
    add_it,
    merged,
)
from channels.verification import TELEGRAM_SECRET_HEADER, TelegramSecretVerifier

CHANNEL = "telegram"
CLASS_PATH = "channels.telegram.TelegramInput"
SECRET_HEADER = TELEGRAM_SECRET_HEADER
# The request verifier, by the name it had before it moved to channels.verification.
SecretTokenVerifier = TelegramSecretVerifier
# Telegram's rule for secret_token: 1 to 256 of these characters. Anyone who knows it
# can post updates as Telegram, so this channel asks for at least MIN_SECRET_CHARS
# (secrets.token_urlsafe(32) makes 43).
MIN_SECRET_CHARS = 32
_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
# Telegram's rule for command names.
_COMMAND_PATTERN = re.compile(r"[a-z0-9_]{1,32}")
_MAKE_SECRET = (
    f"Generate one with `{MAKE_SECRET}`, "
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
        "dedup_db": DEFAULT_DEDUP_DB,
        "dedup_window_seconds": DEFAULT_DEDUP_WINDOW_SECONDS,
        # Messages (and clicks) one chat may send, as COUNT/PERIOD (second, minute,
        # hour, day) or "off". More are acknowledged to Telegram and dropped, counted
        # after verification and de-duplication, per server process.
        "rate_limits": {"conversation": DEFAULT_CONVERSATION_RATE},
    }


class TelegramConfigError(ChannelConfigError):
    """A Telegram key in credentials.yml that cannot work; the message says how to fix it."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(CHANNEL, key, problem, fix, class_path=CLASS_PATH)


@dataclass(frozen=True)
class TelegramConfig:
    """The Telegram channel's settings, read and checked from ``credentials.yml``."""

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
        """The settings over the defaults; TelegramConfigError names a bad key and its fix."""
        defaults = get_default_config()
        values = merged(dict(credentials or {}), defaults, TelegramConfigError)
        read = SettingsReader(values, TelegramConfigError)
        secret = read.optional_text("secret_token", fix=_MAKE_SECRET)
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
        verify = read.optional_text("verify")
        return cls(
            access_token=read.required_text(
                "access_token", missing=add_it("access_token", what="the token @BotFather gave you")
            ),
            verify=verify.lstrip("@") if verify else None,
            webhook_url=read.optional_text("webhook_url"),
            secret_token=secret,
            base_url=read.required_text(
                "base_url", missing=add_it("base_url", what="Telegram's Bot API URL")
            ),
            commands=_commands(values["commands"]),
            answer_edited_messages=read.flag("answer_edited_messages"),
            update_clicked_message=read.flag("update_clicked_message"),
            dedup_db=read.database(
                "dedup_db", missing=add_it("dedup_db", what="a file name or a database URL")
            ),
            dedup_window_seconds=read.seconds("dedup_window_seconds"),
            conversation_rate=read.rates(defaults=defaults["rate_limits"])["conversation"],
        )

    def command_map(self) -> Dict[str, str]:
        """The ``commands`` setting as a mapping of command to the message it stands for."""
        return dict(self.commands)


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
