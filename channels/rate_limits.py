"""How much one conversation or one client address may ask of the assistant.

Every message costs a model pass, a database write and perhaps a language-model reply,
so one caller must not be able to take the server's capacity from everybody else.
Each channel limits what it can attribute: messages per conversation, and, where the
caller talks to us directly (web chat, REST), requests per client address. Limits are
token buckets: ``"30/minute"`` lets 30 requests through at once and then one every
2 seconds, refilling to 30 while the caller is quiet.

A channel answers a request over its limit in the way its platform understands: a 429
with ``Retry-After`` where the caller is a browser or a program of ours (REST, web
chat uploads; an ``error`` frame on the web chat's socket), and a fast 2xx with the
message dropped and a log line where the platform would retry or disable a webhook
that is slow or failing (Slack, Twilio, Telegram).

The buckets live in the memory of each server process: N workers let N times the
rate through, and a restart forgets them. That bounds a flood; it is not an account
quota. The client address is the one Sanic reports: behind a reverse proxy set
Sanic's ``PROXIES_COUNT`` / ``REAL_IP_HEADER`` / ``FORWARDED_SECRET`` (as
``SANIC_PROXIES_COUNT`` etc. in the environment), or every customer shares the
proxy's address and its limit.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from sanic.request import Request

from channels.webhook_guard import WebhookRejected

__all__ = [
    "Rate",
    "RateLimited",
    "RateLimiter",
    "RateSettingError",
    "client_address",
    "parse_rate",
    "read_rates",
]

PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)s?\s*$")
# Keys remembered per limiter; the least recently used are forgotten beyond this, so
# a caller inventing ids cannot grow the table without bound.
DEFAULT_MAX_KEYS = 100_000


@dataclass(frozen=True)
class Rate:
    """``count`` requests per ``period_s`` seconds, in bursts of up to ``count``."""

    count: int
    period_s: float

    def __str__(self) -> str:
        name = next((n for n, s in PERIODS.items() if s == self.period_s), None)
        return f"{self.count}/{name}" if name else f"{self.count}/{self.period_s:g}s"


def parse_rate(value: Any) -> Optional[Rate]:
    """``"30/minute"`` as a :class:`Rate`; None (YAML ``null``) or ``"off"`` is no limit.

    Raises ValueError with a message fit for the channel's config error.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "off"):
        return None
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) < 1:
        raise ValueError(
            f"{value!r} is not a rate; write it as COUNT/PERIOD with a COUNT of at least 1 "
            'and a PERIOD of second, minute, hour or day (e.g. "30/minute"), or "off"'
        )
    return Rate(int(match.group(1)), PERIODS[match.group(2)])


class RateSettingError(ValueError):
    """A channel's ``rate_limits`` setting that cannot work: the key, the problem, the fix.

    Each channel turns it into its own config error, which names the channel.
    """

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(f"{key}: {problem}. {fix}")
        self.key, self.problem, self.fix = key, problem, fix


def read_rates(value: Any, defaults: Mapping[str, Any]) -> Dict[str, Optional[Rate]]:
    """A channel's ``rate_limits`` mapping over its ``defaults``, every key a rate or None.

    Raises :class:`RateSettingError` for something that is not a mapping, a key the
    channel does not have, or a value that is not a rate.
    """
    example = ", ".join(f'{key}: "{rate}"' for key, rate in defaults.items())
    fix = f'Write e.g. rate_limits: {{{example}}}; "off" for no limit.'
    if not isinstance(value, Mapping):
        raise RateSettingError("rate_limits", f"expected a mapping, got {value!r}", fix)
    for key in value:
        if key not in defaults:
            raise RateSettingError(
                f"rate_limits.{key}", "unknown key", f"Valid keys: {', '.join(sorted(defaults))}."
            )
    rates: Dict[str, Optional[Rate]] = {}
    for key, rate in {**defaults, **value}.items():
        try:
            rates[key] = parse_rate(rate)
        except ValueError as error:
            raise RateSettingError(f"rate_limits.{key}", str(error), fix) from error
    return rates


class RateLimited(WebhookRejected):
    """A request over its limit: 429, with the seconds after which to try again."""

    def __init__(self, what: str, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(429, f"too many {what}; try again in {seconds} s")
        self.retry_after = seconds


class RateLimiter:
    """Token buckets per key (a conversation, an address), in this process."""

    def __init__(
        self,
        rate: Optional[Rate],
        *,
        clock: Optional[Callable[[], float]] = None,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self.rate = rate
        self._clock = clock or time.monotonic
        self._max_keys = max_keys
        # key -> (tokens left, when they were counted)
        self._buckets: OrderedDict[str, Tuple[float, float]] = OrderedDict()

    def take(self, key: str, *, cost: float = 1.0) -> Optional[float]:
        """Spend ``cost`` from ``key``'s bucket: None if allowed, else seconds to wait.

        A refused request spends nothing, so a caller that waits as told gets through.
        """
        if self.rate is None:
            return None
        capacity = float(self.rate.count)
        per_second = capacity / self.rate.period_s
        now = self._clock()
        tokens, counted = self._buckets.pop(key, (capacity, now))
        tokens = min(capacity, tokens + (now - counted) * per_second)
        if tokens >= cost:
            self._remember(key, tokens - cost, now)
            return None
        self._remember(key, tokens, now)
        return (cost - tokens) / per_second

    def check(self, key: str, what: str, *, cost: float = 1.0) -> None:
        """:meth:`take`, raising :class:`RateLimited` (a 429) when over the limit."""
        wait = self.take(key, cost=cost)
        if wait is not None:
            raise RateLimited(what, wait)

    def _remember(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


def client_address(request: Request) -> str:
    """The caller's address as Sanic reports it (its proxy settings decide)."""
    return str(request.remote_addr or request.ip or "unknown")
