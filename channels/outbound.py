"""Calls to a platform's API that retry with back-off and never crash a conversation.

A reply that cannot be delivered is logged (channel, operation, reason; never the
customer's text or a token) and dropped: the conversation goes on. 429 and 5xx are
retried, honouring the platform's ``Retry-After`` when it gives one; anything else
(a 4xx, a bad token) fails at once because retrying cannot help.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one outgoing call."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    # Never wait longer than this for a Retry-After the platform asks for.
    max_retry_after: float = 30.0


@dataclass(frozen=True)
class Failure:
    """What went wrong with one attempt, as the channel classifies its client's error."""

    retryable: bool
    reason: str
    retry_after: Optional[float] = None


async def call_with_retry(
    channel: str,
    operation: str,
    call: Callable[[], Awaitable[T]],
    classify: Callable[[BaseException], Failure],
    *,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Optional[T]:
    """The call's result, or None after logging why it could not be made.

    ``classify`` turns the client library's exception into a :class:`Failure`; it must
    not put message text into ``reason``.
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return await call()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - every failure is classified below
            failure = classify(error)
            if not failure.retryable or attempt == policy.attempts:
                logger.error(
                    "%s: %s failed after %d attempt(s): %s",
                    channel,
                    operation,
                    attempt,
                    failure.reason,
                )
                return None
            delay = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
            delay *= 0.5 + random.random() / 2  # jitter: retries from many workers spread out
            if failure.retry_after is not None:
                delay = min(max(delay, failure.retry_after), policy.max_retry_after)
            logger.warning(
                "%s: %s attempt %d failed (%s); retrying in %.1f s",
                channel,
                operation,
                attempt,
                failure.reason,
                delay,
            )
            await sleep(delay)
    return None  # not reached: the loop returns or logs on its last attempt


def http_failure(status: Optional[int], retry_after: Optional[str] = None) -> Failure:
    """Classify an HTTP status the usual way: 429 and 5xx retry, the rest do not."""
    seconds: Optional[float] = None
    if retry_after:
        try:
            seconds = float(retry_after)
        except ValueError:
            seconds = None
    if status is None:
        return Failure(retryable=True, reason="no response (connection error)")
    if status == 429 or status >= 500:
        return Failure(retryable=True, reason=f"HTTP {status}", retry_after=seconds)
    return Failure(retryable=False, reason=f"HTTP {status}")
