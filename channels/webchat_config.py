"""The web chat's settings from ``credentials.yml``, checked strictly at start-up.

``channels.webchat.WebChatInput:`` with no keys is a working web chat on the server's
own host. Every key is optional; an unknown key, a wrong type or a weak secret stops
the server with a message that names the key and says what to write instead, because
Rasa itself would silently ignore a typo such as ``alowed_origins``.

What one caller may cost, and why the defaults are what they are:

- ``rate_limits.conversation`` (``30/minute``): messages and uploads of one session. A
  person types a message every few seconds at most; a burst of 30 covers a page that
  sends everything it queued while offline at once (and the load test's ten at once),
  and one every 2 s after that is still faster than anyone types, while one session can
  no longer ask for more than 1,800 bot turns an hour.
- ``rate_limits.address`` (``1200/minute``): everything one client address sends
  (hellos, messages, uploads). An address can be a whole office or a mobile carrier's
  shared address, so it is generous: a hundred customers behind it can open the chat
  and send ten messages each at once (tests/production/test_load.py does exactly that
  from one loopback address), then 20 requests a second; one machine cannot make one
  worker take more than that.
- ``rate_limits.new_sessions`` (``200/hour``): sessions one address may start. A session
  survives reloads, reconnections and restarts for ``session_ttl_seconds``; only a new
  browser or cleared storage starts another, so 200 at once, then one every 18 s.
- ``max_attachments_per_session`` (20) and ``attachment_quota_bytes`` (50 MiB): files
  one session may store in any 24 hours, counted from the files on disk. A customer
  showing a damaged parcel sends a few photos; ten files of the largest size fit.
- ``attachment_retention_days`` (30): stored files are deleted this long after they
  were stored (checked when the server starts and hourly), long enough for an agent to
  look at a claim; set it to your data-retention policy.

What a new visitor sees: ``greeting`` and ``suggested_questions`` are shown by the page
when it opens on a conversation without messages (never stored in it, so a reload of a
conversation that has begun shows no second greeting). A suggestion is a question in
the customer's words: a click sends it as their text message, so it must not look like
an intent payload (``/intent``), which the bot does not obey from a customer
(:mod:`rasa_llm.server.intent_shortcuts`).

Rate limits are token buckets in each server process (:mod:`channels.rate_limits`): N
workers let N times the rate through. Behind a reverse proxy, configure Sanic's proxy
settings, or every customer shares the proxy's address and its limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from channels.channel_database import DatabaseLocation, database_location
from channels.rate_limits import Rate
from channels.settings import (
    DEFAULT_CONVERSATION_RATE,
    DEFAULT_DEDUP_DB,
    DEFAULT_DEDUP_WINDOW_SECONDS,
    MAKE_SECRET,
    ChannelConfigError,
    SettingsReader,
    merged,
)

CHANNEL = "webchat"
CLASS_PATH = "channels.webchat.WebChatInput"
MIN_SECRET_CHARS = 32

# Types the page offers to attach, and that are stored when their first bytes agree.
DEFAULT_ATTACHMENT_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
)

# The greeting's suggested questions: at most this many, each at most this long (a
# button's title, channels.webchat_frames.MAX_TITLE_CHARS), and a greeting's length.
MAX_SUGGESTED_QUESTIONS = 6
MAX_SUGGESTION_CHARS = 200
MAX_GREETING_CHARS = 1000

# Keys of Rasa's stock socket.io channel that mean nothing for a plain WebSocket.
_SOCKETIO_KEYS = {
    "user_message_evt",
    "bot_message_evt",
    "namespace",
    "session_persistence",
    "socketio_path",
    "jwt_key",
    "jwt_method",
    "metadata_key",
}


def get_default_config() -> Dict[str, Any]:
    """Every key the web chat reads, with its default."""
    return {
        # HMAC key for session tokens, at least 32 characters (use ${ENV_VAR} in
        # credentials.yml). Absent: one is generated once into `session_secret_file`.
        "session_secret": None,
        # Where a generated secret is kept, relative to the server's working directory
        # (where the SQLite tracker store and `dedup_db` live), so tokens survive a restart.
        "session_secret_file": "webchat_session_secret",
        # How long a session token stays valid; every (re)connection gets a fresh one.
        "session_ttl_seconds": 30 * 24 * 60 * 60,
        # Pages allowed to connect, as origins ("https://shop.example.com"), or "*".
        # Empty: only pages served from the same host and port as the server.
        "allowed_origins": [],
        # Page heading and <title>.
        "title": "Customer service",
        # Shown when the page opens on a conversation without messages (not stored in
        # the conversation). null: no greeting (and no suggested questions).
        "greeting": "Hi! I'm the virtual assistant. Ask me anything, or pick a question below.",
        # Buttons under the greeting; a click sends the question as the customer's
        # message. At most 6 of at most 200 characters; [] for none.
        "suggested_questions": [
            "How much does delivery cost?",
            "What is your returns policy?",
            "What are your opening hours?",
        ],
        # Largest WebSocket frame the chat accepts; bigger ones get an error frame.
        "max_frame_bytes": 16 * 1024,
        # Longest customer message, in characters.
        "max_message_chars": 4000,
        # Longest bot bubble; longer replies are split at sentence or word breaks.
        "max_reply_chars": 10000,
        # How many past messages a reloaded page gets back from the tracker store.
        "history_limit": 200,
        # Where uploaded files are stored (relative to the server's working directory);
        # never served back. null: keep only their description in the tracker.
        "attachment_dir": "webchat_uploads",
        "max_attachment_bytes": 5 * 1024 * 1024,
        "attachment_types": list(DEFAULT_ATTACHMENT_TYPES),
        # Files (and bytes) one session may store in any 24 hours; more gets a 429.
        "max_attachments_per_session": 20,
        "attachment_quota_bytes": 50 * 1024 * 1024,
        # Stored files are deleted this many days after they were stored.
        "attachment_retention_days": 30,
        # Requests allowed, as "COUNT/PERIOD" (second, minute, hour, day) or "off"; a
        # burst of COUNT, then COUNT per PERIOD. See the module docstring for why.
        "rate_limits": {
            # Messages and uploads of one session.
            "conversation": DEFAULT_CONVERSATION_RATE,
            # Hellos, messages and uploads from one client address.
            "address": "1200/minute",
            # New sessions started from one client address.
            "new_sessions": "200/hour",
        },
        # Duplicate message ids (a client retrying after a reconnect) are dropped; kept
        # in a SQLite file, or in a database URL (postgresql://...) several servers share.
        "dedup_db": DEFAULT_DEDUP_DB,
        "dedup_window_seconds": DEFAULT_DEDUP_WINDOW_SECONDS,
    }


class WebChatConfigError(ChannelConfigError):
    """A web chat key in credentials.yml that cannot work; the message says how to fix it."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(CHANNEL, key, problem, fix, class_path=CLASS_PATH)


@dataclass(frozen=True)
class WebChatConfig:
    """The web chat's settings, read and checked from ``credentials.yml``."""

    session_secret: Optional[str]
    session_secret_file: Path
    session_ttl_seconds: float
    allowed_origins: Tuple[str, ...]
    title: str
    greeting: Optional[str]
    suggested_questions: Tuple[str, ...]
    max_frame_bytes: int
    max_message_chars: int
    max_reply_chars: int
    history_limit: int
    attachment_dir: Optional[Path]
    max_attachment_bytes: int
    attachment_types: Tuple[str, ...]
    max_attachments_per_session: int
    attachment_quota_bytes: int
    attachment_retention_seconds: float
    conversation_rate: Optional[Rate]
    address_rate: Optional[Rate]
    new_session_rate: Optional[Rate]
    dedup_db: DatabaseLocation
    dedup_window_seconds: float

    @classmethod
    def from_credentials(cls, credentials: Optional[Mapping[str, Any]]) -> WebChatConfig:
        """The settings over the defaults; WebChatConfigError names a bad key and its fix."""
        given = dict(credentials or {})
        defaults = get_default_config()
        for key in given:
            if key in _SOCKETIO_KEYS:
                raise WebChatConfigError(
                    key,
                    "this is a key of Rasa's socket.io channel; the web chat uses a plain "
                    "WebSocket and its own page",
                    "Remove it (sessions always persist; tokens come from `session_secret`).",
                )
            if key not in defaults:
                break  # merged() names it
        values = merged(given, defaults, WebChatConfigError)
        for nullable in ("attachment_dir", "greeting"):
            if nullable in given and given[nullable] is None:
                values[nullable] = None
        read = SettingsReader(values, WebChatConfigError)
        rates = read.rates(defaults=defaults["rate_limits"])
        max_attachment_bytes = int(read.number("max_attachment_bytes", minimum=1))
        max_message_chars = int(read.number("max_message_chars", minimum=1))
        greeting = _greeting(values["greeting"])
        return cls(
            session_secret=(
                read.secret(
                    "session_secret",
                    min_chars=MIN_SECRET_CHARS,
                    noun="a string",
                    fix=f"Generate one with `{MAKE_SECRET}`, or remove the key to have one "
                    "generated into `session_secret_file`.",
                )
                if values["session_secret"] is not None
                else None
            ),
            session_secret_file=read.path("session_secret_file"),
            session_ttl_seconds=read.number("session_ttl_seconds", minimum=60),
            allowed_origins=_origins(values["allowed_origins"]),
            title=read.nonempty_string("title", strip=False),
            greeting=greeting,
            suggested_questions=_suggestions(
                values["suggested_questions"],
                greeting=greeting,
                given="suggested_questions" in given,
                max_message_chars=max_message_chars,
            ),
            max_frame_bytes=int(read.number("max_frame_bytes", minimum=1024)),
            max_message_chars=max_message_chars,
            max_reply_chars=int(read.number("max_reply_chars", minimum=100)),
            history_limit=int(read.number("history_limit", minimum=0)),
            attachment_dir=(
                read.path("attachment_dir") if values["attachment_dir"] is not None else None
            ),
            max_attachment_bytes=max_attachment_bytes,
            attachment_types=_mime_types(values["attachment_types"]),
            max_attachments_per_session=int(read.number("max_attachments_per_session", minimum=1)),
            attachment_quota_bytes=_quota_bytes(read, max_attachment_bytes),
            attachment_retention_seconds=(
                read.number("attachment_retention_days", minimum=1) * 24 * 60 * 60
            ),
            conversation_rate=rates["conversation"],
            address_rate=rates["address"],
            new_session_rate=rates["new_sessions"],
            dedup_db=database_location(read.nonempty_string("dedup_db", strip=False)),
            dedup_window_seconds=read.number("dedup_window_seconds", minimum=1),
        )


def _greeting(value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_GREETING_CHARS:
        raise WebChatConfigError(
            "greeting",
            f"expected a non-empty string of at most {MAX_GREETING_CHARS} characters, "
            f"got {_shown(value)}",
            "Write the words a new visitor should see, or null for no greeting.",
        )
    return value.strip()


def _suggestions(
    value: Any, *, greeting: Optional[str], given: bool, max_message_chars: int
) -> Tuple[str, ...]:
    key = "suggested_questions"
    if greeting is None:
        if given and value:
            raise WebChatConfigError(
                key,
                "suggested questions are shown under the greeting, and `greeting` is null",
                "Write a `greeting`, or remove `suggested_questions`.",
            )
        return ()
    if not isinstance(value, list):
        raise WebChatConfigError(
            key,
            f"expected a list of questions, got {_shown(value)}",
            'Write e.g. ["How much does delivery cost?", "What are your opening hours?"], '
            "or [] for none.",
        )
    if len(value) > MAX_SUGGESTED_QUESTIONS:
        raise WebChatConfigError(
            key,
            f"{len(value)} questions; the greeting offers at most {MAX_SUGGESTED_QUESTIONS}",
            "Keep the questions customers ask most.",
        )
    limit = min(MAX_SUGGESTION_CHARS, max_message_chars)
    questions: List[str] = []
    for index, question in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(question, str) or not question.strip() or len(question) > limit:
            raise WebChatConfigError(
                where,
                f"expected a non-empty string of at most {limit} characters, "
                f"got {_shown(question)}",
                "Write the question as a customer would type it.",
            )
        question = " ".join(question.split())
        if question.startswith("/"):
            raise WebChatConfigError(
                where,
                f"{question[:40]!r} looks like an intent payload; a click sends the "
                "question as the customer's words, and the bot does not obey a `/intent` "
                "typed by a customer (rasa_llm.server.intent_shortcuts)",
                'Write the question as a customer would ask it, e.g. "Where is my order?".',
            )
        if question in questions:
            raise WebChatConfigError(
                where, f"{question!r} is listed twice", "Remove the repeated question."
            )
        questions.append(question)
    return tuple(questions)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _quota_bytes(read: SettingsReader, max_attachment_bytes: int) -> int:
    quota = int(read.number("attachment_quota_bytes", minimum=1))
    if quota < max_attachment_bytes:
        raise WebChatConfigError(
            "attachment_quota_bytes",
            f"{quota} is less than max_attachment_bytes ({max_attachment_bytes}), so no file "
            "of the largest size could ever be stored",
            "Raise it to at least max_attachment_bytes, or lower max_attachment_bytes.",
        )
    return quota


def _origins(value: Any) -> Tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise WebChatConfigError(
            "allowed_origins", f"expected a list, got {value!r}", 'Write ["https://host"].'
        )
    origins = []
    for origin in value:
        if origin == "*":
            origins.append("*")
            continue
        try:
            parts = urlsplit(origin) if isinstance(origin, str) else None
            port_ok = parts is not None and (parts.port is None or parts.port > 0)
        except ValueError:
            parts, port_ok = None, False
        if (
            not port_ok
            or parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
        ):
            raise WebChatConfigError(
                "allowed_origins",
                f"{origin!r} is not an origin",
                'Write scheme and host (and port), e.g. "https://shop.example.com:8443", or "*".',
            )
        origins.append(normalize_origin(origin))
    return tuple(origins)


def _mime_types(value: Any) -> Tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(item, str) and "/" in item for item in value
    ):
        raise WebChatConfigError(
            "attachment_types",
            f"expected a list of MIME types, got {value!r}",
            'Write e.g. ["image/png", "image/jpeg", "application/pdf"].',
        )
    return tuple(item.lower() for item in value)


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without the scheme's default port."""
    parts = urlsplit(origin.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"
