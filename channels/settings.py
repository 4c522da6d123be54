"""What every channel's settings share: one error type, typed readers, common defaults.

Each channel's ``*_config.py`` keeps its own keys (``get_default_config()``) and its own
checks that only it needs; everything two channels would otherwise write twice lives
here: the refusal of an unknown key, reading text, flags, numbers, secrets, paths and
rate limits, and the one error a bad setting raises. Rasa reads ``credentials.yml`` and
expands ``${ENV_VAR}`` in it before a channel sees a value, so a secret "from the
environment" reaches these readers as plain text; :func:`add_it` says how to write one.

A bad setting stops the server at start-up with :class:`ChannelConfigError`, whose
message names the channel, the key, the problem and the fix, because Rasa itself
silently ignores a key it does not know. Each channel has a subclass of it (such as
``channels.slack_config.SlackConfigError``), so ``except`` clauses can pick one channel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

from channels.channel_database import DatabaseLocation, database_location
from channels.rate_limits import Rate, RateSettingError, read_rates

__all__ = [
    "DEFAULT_CONVERSATION_RATE",
    "DEFAULT_DEDUP_DB",
    "DEFAULT_DEDUP_WINDOW_SECONDS",
    "DEFAULT_DESK_DB",
    "DEFAULT_HINT",
    "MAKE_SECRET",
    "MAKE_SECRET_SINGLE_QUOTED",
    "ChannelConfigError",
    "ErrorFactory",
    "SettingsReader",
    "add_it",
    "merged",
]

# Where delivered message ids are kept (a SQLite file relative to the server's working
# directory, or a database URL several servers share), and for how long a re-delivery
# is recognised: the same for every channel, so one file serves them all.
DEFAULT_DEDUP_DB = "channel_deliveries.db"
DEFAULT_DEDUP_WINDOW_SECONDS = 24 * 60 * 60
# The agent desk's hand-offs, agents and audit trail.
DEFAULT_DESK_DB = "handoffs.db"
# Messages one conversation may send, unless a channel's ``rate_limits`` says otherwise.
DEFAULT_CONVERSATION_RATE = "30/minute"
# The fix for a value of the wrong type when the key has a working default.
DEFAULT_HINT = "Correct it, or remove the key to use the default."
# The command that makes a good secret, for fixes that ask for one; the second spelling
# is the one the agent desk's and the REST channel's messages have always shown.
MAKE_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
MAKE_SECRET_SINGLE_QUOTED = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class ChannelConfigError(ValueError):
    """A channel's key in credentials.yml that cannot work; the message says how to fix it.

    ``section`` names a mapping the key sits in (the agent desk's ``slack:``), and
    ``class_path`` the class when ``channel`` is a short name.
    """

    def __init__(
        self,
        channel: str,
        key: str,
        problem: str,
        fix: str,
        *,
        class_path: Optional[str] = None,
        section: Optional[str] = None,
    ) -> None:
        where = f"`{channel}` ({class_path})" if class_path else f"`{channel}`"
        shown_key = f"{section}.{key}" if section else key
        super().__init__(f"credentials.yml, channel {where}, key `{shown_key}`: {problem}. {fix}")
        self.channel = channel
        self.class_path = class_path
        self.key = key
        self.problem = problem
        self.fix = fix


# A channel's error class: called with the key, the problem and the fix.
ErrorFactory = Callable[[str, str, str], ChannelConfigError]


def add_it(key: str, *, under: str = "the channel", what: Optional[str] = None) -> str:
    """The fix for a missing key: where to write it, and how for a secret."""
    if what is None:
        return f"Add it under {under} (for a secret, `{key}: ${{ENV_VAR}}`)."
    return f"Add it under {under} ({what}; for a secret `{key}: ${{ENV_VAR}}`)."


def merged(
    given: Mapping[str, Any],
    defaults: Mapping[str, Any],
    error: ErrorFactory,
    *,
    keep_nulls: bool = False,
) -> Dict[str, Any]:
    """``given`` over ``defaults``, after refusing the first key (in ``given``'s order)
    that ``defaults`` lacks.

    A null in ``given`` keeps the default, unless ``keep_nulls``.
    """
    for key in given:
        if key not in defaults:
            raise error(str(key), "unknown key", f"Valid keys: {', '.join(sorted(defaults))}.")
    if keep_nulls:
        return {**defaults, **given}
    return {**defaults, **{key: value for key, value in given.items() if value is not None}}


class SettingsReader:
    """Typed readers over one channel's merged values; each raises the channel's error."""

    def __init__(self, values: Mapping[str, Any], error: ErrorFactory) -> None:
        self.values = values
        self.error = error

    # ------------------------------------------------------------------ text
    def optional_text(
        self, key: str, *, numbers: bool = True, fix: str = "Quote it."
    ) -> Optional[str]:
        """The value as stripped text, or None when it is absent or blank.

        ``numbers``: an unquoted number (YAML reads ``12345`` as one) counts as text.
        """
        value = self.values.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        allowed = (str, int) if numbers else (str,)
        if not isinstance(value, allowed) or isinstance(value, bool):
            raise self.error(key, f"expected text, got {type(value).__name__}", fix)
        return str(value).strip()

    def required_text(
        self,
        key: str,
        *,
        missing: Optional[str] = None,
        numbers: bool = True,
        fix: str = "Quote it.",
    ) -> str:
        """The value as stripped text; ``missing`` is the fix when it is absent or blank."""
        value = self.optional_text(key, numbers=numbers, fix=fix)
        if value is None:
            raise self.error(key, "missing", missing or add_it(key))
        return value

    def nonempty_string(self, key: str, *, strip: bool = True, quote_numbers: bool = False) -> str:
        """A string with something in it (stripped when ``strip``).

        ``quote_numbers``: say that a number lost its quotes (YAML reads an unquoted
        ``+15005550006`` as a number and drops the plus sign).
        """
        value = self.values[key]
        if quote_numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
            raise self.error(
                key, f"read as the number {value!r}", f'Quote it: {key}: "+{value}" or "{value}".'
            )
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a non-empty string, got {value!r}", DEFAULT_HINT)
        return value.strip() if strip else value

    def string(self, key: str) -> str:
        """Any string, the empty one included, as written."""
        value = self.values[key]
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {value!r}", DEFAULT_HINT)
        return value

    def path(self, key: str) -> Path:
        """A non-empty string as a path (relative to the server's working directory)."""
        return Path(self.nonempty_string(key, strip=False))

    def database(self, key: str, *, missing: Optional[str] = None) -> DatabaseLocation:
        """A SQLite file or a database URL (``dedup_db``, ``state_db``, ``db``)."""
        return database_location(self.required_text(key, missing=missing))

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        """One of ``choices``."""
        value = self.values[key]
        if value not in choices:
            raise self.error(
                key, f"expected one of {', '.join(choices)}, got {value!r}", DEFAULT_HINT
            )
        return str(value)

    # ------------------------------------------------------------------ flags, numbers
    def flag(self, key: str, *, fix: str = "Write true or false.") -> bool:
        """``true`` or ``false``, and nothing YAML might turn into one."""
        value = self.values[key]
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}", fix)
        return value

    def number(
        self,
        key: str,
        *,
        minimum: float,
        below: Optional[float] = None,
        unit: str = "",
        fix: str = DEFAULT_HINT,
    ) -> float:
        """A number (whole or not) of at least ``minimum`` and below ``below``.

        ``unit`` is said after "a number", e.g. " of seconds".
        """
        value = self.values[key]
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and value >= minimum
        if not ok or (below is not None and value >= below):
            upper = f" and below {below:g}" if below is not None else ""
            raise self.error(
                key, f"expected a number{unit} of at least {minimum:g}{upper}, got {value!r}", fix
            )
        return float(value)

    def seconds(self, key: str) -> float:
        """A number of seconds of at least 1 (``dedup_window_seconds``)."""
        return self.number(key, minimum=1, unit=" of seconds", fix="Fix the value.")

    def whole(
        self, key: str, *, minimum: int, maximum: Optional[int] = None, fix: str = DEFAULT_HINT
    ) -> int:
        """A whole number of at least ``minimum`` (and at most ``maximum``)."""
        value = self.values[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            wanted = (
                f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
            )
            raise self.error(key, f"expected a whole number {wanted}, got {value!r}", fix)
        return value

    # ------------------------------------------------------------------ secrets, rates
    def secret(self, key: str, *, min_chars: int, fix: str, noun: str = "a secret") -> str:
        """A secret of at least ``min_chars`` characters (a shorter one can be guessed)."""
        value = self.values.get(key)
        if not isinstance(value, str) or len(value) < min_chars:
            raise self.error(key, f"must be {noun} of at least {min_chars} characters", fix)
        return value

    def rates(self, *, defaults: Mapping[str, Any]) -> Dict[str, Optional[Rate]]:
        """The ``rate_limits`` mapping over ``defaults``: each name a rate, or None for off."""
        try:
            return read_rates(self.values["rate_limits"], defaults)
        except RateSettingError as error:
            raise self.error(error.key, error.problem, error.fix) from error
