"""Calls to a platform's API that retry with back-off, never twice deliver one message,
and never crash a conversation.

A reply that cannot be delivered is logged (channel, operation, reason; never the
customer's text, the recipient or a token) and dropped: the conversation goes on.

Each failed attempt is classified (:class:`Failure`) by what it says about the message:

- **not sent, retry**: the platform refused it without acting on it: a 429 (with its
  ``Retry-After``), a 503 (HTTP's "unable to handle the request now"), or a
  connection that could not be opened, so no request left this server;
- **ambiguous**: the request was sent and may have been acted on: a timeout waiting
  for the answer, a connection dropped after sending, or a 5xx other than 503 (500,
  502, 504: the platform, or a gateway in front of it, may have done the work before
  failing). Sending again could deliver, and bill, the message twice;
- **final**: any other 4xx or a bad token: retrying cannot help.

An ambiguous failure is retried only when the caller can check the platform first
(``confirm``: Twilio lists the messages it has, :mod:`channels.sms_rest`) and the
message is not there; where the platform offers no such check (Slack's and
Telegram's message APIs) a policy with ``retry_ambiguous=False`` gives up and logs the
message as possibly undelivered. The default policy still retries ambiguous failures
(at least once, perhaps twice), for callers to whom a duplicate is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional, TypeVar

import aiohttp

logger = logging.getLogger(__name__)

T = TypeVar("T")
# HTTP statuses that say the request was not acted on: retrying cannot duplicate it.
NOT_ACTED_ON = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one outgoing call."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    # Never wait longer than this for a Retry-After the platform asks for.
    max_retry_after: float = 30.0
    # Retry an ambiguous failure that cannot be checked (no ``confirm``). False for
    # messages a person reads: a possibly lost reply is logged, never sent twice.
    retry_ambiguous: bool = True


# What the channels that send customers' replies use.
AT_MOST_ONCE = RetryPolicy(retry_ambiguous=False)


@dataclass(frozen=True)
class Failure:
    """What went wrong with one attempt, as the channel classifies its client's error."""

    retryable: bool
    reason: str
    retry_after: Optional[float] = None
    # The platform may have acted on the attempt (see the module docstring).
    ambiguous: bool = False


async def call_with_retry(
    channel: str,
    operation: str,
    call: Callable[[], Awaitable[T]],
    classify: Callable[[BaseException], Failure],
    *,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    confirm: Optional[Callable[[], Awaitable[Optional[T]]]] = None,
) -> Optional[T]:
    """The call's result, or None after logging why it could not be made.

    ``classify`` turns the client library's exception into a :class:`Failure`; it must
    not put message text into ``reason``. ``confirm``, after an ambiguous failure,
    looks for what the last attempt would have made: its result counts as the call's
    (nothing is sent again), None means the attempt did not take effect and may be
    repeated, an exception means nobody knows (the call gives up).
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return await call()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - every failure is classified below
            failure = classify(error)
            if failure.retryable and failure.ambiguous:
                if confirm is None and not policy.retry_ambiguous:
                    logger.error(
                        "%s: %s possibly undelivered: %s after the request was sent; "
                        "not retried, so that it cannot arrive twice",
                        channel,
                        operation,
                        failure.reason,
                    )
                    return None
                if confirm is not None:
                    try:
                        found = await confirm()
                    except asyncio.CancelledError:
                        raise
                    except Exception as lookup_error:  # noqa: BLE001 - logged, given up
                        logger.error(
                            "%s: %s possibly undelivered: %s, and checking whether it "
                            "arrived failed (%s); not sent again",
                            channel,
                            operation,
                            failure.reason,
                            type(lookup_error).__name__,
                        )
                        return None
                    if found is not None:
                        logger.warning(
                            "%s: %s attempt %d failed (%s) but the platform has the "
                            "message; not sent again",
                            channel,
                            operation,
                            attempt,
                            failure.reason,
                        )
                        return found
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


def http_failure(status: Optional[int], *, retry_after: Optional[str] = None) -> Failure:
    """Classify an HTTP status: 429 and 5xx retry; a 5xx but 503 may have been acted on."""
    seconds: Optional[float] = None
    if retry_after:
        try:
            seconds = float(retry_after)
        except ValueError:
            seconds = None
    if status is None:
        return Failure(retryable=True, reason="no response (connection error)", ambiguous=True)
    if status in NOT_ACTED_ON:
        return Failure(retryable=True, reason=f"HTTP {status}", retry_after=seconds)
    if status >= 500:
        return Failure(retryable=True, reason=f"HTTP {status}", retry_after=seconds, ambiguous=True)
    return Failure(retryable=False, reason=f"HTTP {status}")


def connection_failure(error: BaseException) -> Failure:
    """An aiohttp (or socket) error: safe to retry only if no connection was opened."""
    name = type(error).__name__
    if isinstance(error, (aiohttp.ClientConnectorError, ConnectionRefusedError)):
        return Failure(retryable=True, reason=f"could not connect ({name})")
    return Failure(retryable=True, reason=f"no answer to the request ({name})", ambiguous=True)
