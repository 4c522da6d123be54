"""channels.outbound: which failed sends are retried, and a send that may have arrived.

The classification of real clients' errors (slack_sdk, twilio, python-telegram-bot)
against fakes that answer late is in tests/security/test_duplicate_sends.py; these
tests pin the rules themselves.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, List, Optional

import aiohttp
import pytest

from channels.conversation_ids import recipient
from channels.outbound import (
    AT_MOST_ONCE,
    Failure,
    RetryPolicy,
    call_with_retry,
    connection_failure,
    http_failure,
)

NO_WAIT = RetryPolicy(attempts=4, base_delay=0.0, max_delay=0.0)
AMBIGUOUS = Failure(retryable=True, reason="timed out", ambiguous=True)


async def no_sleep(_: float) -> None:
    return None


def attempts(
    failures: List[Failure],
    *,
    policy: RetryPolicy = NO_WAIT,
    confirm: Any = None,
) -> tuple[Optional[str], int]:
    """(result, calls) of a call that fails with ``failures`` in turn, then succeeds."""
    calls: List[int] = []
    queue = list(failures)

    async def call() -> str:
        calls.append(1)
        if queue:
            raise RuntimeError("failed")
        return "sent"

    def classify(_: BaseException) -> Failure:
        return queue.pop(0)

    result = asyncio.run(
        call_with_retry(
            "test", "send", call, classify, policy=policy, sleep=no_sleep, confirm=confirm
        )
    )
    return result, len(calls)


@pytest.mark.parametrize(
    "status, retryable, ambiguous",
    [
        (429, True, False),
        (503, True, False),
        (500, True, True),
        (502, True, True),
        (504, True, True),
        (None, True, True),
        (400, False, False),
        (403, False, False),
    ],
)
def test_which_statuses_may_have_been_acted_on(
    status: Optional[int], retryable: bool, ambiguous: bool
):
    failure = http_failure(status)
    assert (failure.retryable, failure.ambiguous) == (retryable, ambiguous)


def test_a_connection_that_was_never_opened_is_safe_to_retry():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def refused() -> BaseException:
        async with aiohttp.ClientSession() as session:
            try:
                await session.post(f"http://127.0.0.1:{port}/", data=b"x")
            except aiohttp.ClientError as error:
                return error
        raise AssertionError("the port was open")

    failure = connection_failure(asyncio.run(refused()))
    assert failure.retryable and not failure.ambiguous
    for after_sending in (asyncio.TimeoutError(), aiohttp.ServerDisconnectedError()):
        failure = connection_failure(after_sending)
        assert failure.retryable and failure.ambiguous


def test_safe_failures_are_retried_until_the_call_succeeds():
    safe = Failure(retryable=True, reason="HTTP 503")
    assert attempts([safe, safe], policy=AT_MOST_ONCE) == ("sent", 3)


def test_an_ambiguous_failure_is_not_retried_at_most_once(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.ERROR):
        assert attempts([AMBIGUOUS], policy=AT_MOST_ONCE) == (None, 1)
    assert "test: send possibly undelivered: timed out" in caplog.text


def test_the_default_policy_still_retries_an_ambiguous_failure():
    assert attempts([AMBIGUOUS]) == ("sent", 2)


def test_a_confirmed_attempt_counts_as_sent(caplog: pytest.LogCaptureFixture):
    async def found() -> str:
        return "already there"

    with caplog.at_level(logging.WARNING):
        assert attempts([AMBIGUOUS], policy=AT_MOST_ONCE, confirm=found) == ("already there", 1)
    assert "platform has the message; not sent again" in caplog.text


def test_an_attempt_that_is_not_there_is_made_again():
    looked: List[int] = []

    async def missing() -> None:
        looked.append(1)
        return None

    assert attempts([AMBIGUOUS, AMBIGUOUS], policy=AT_MOST_ONCE, confirm=missing) == ("sent", 3)
    assert len(looked) == 2


def test_when_the_check_fails_nobody_knows_and_nothing_is_sent_again(
    caplog: pytest.LogCaptureFixture,
):
    async def broken() -> None:
        raise ConnectionError("look-up failed")

    with caplog.at_level(logging.ERROR):
        assert attempts([AMBIGUOUS], confirm=broken) == (None, 1)
    assert "checking whether it arrived failed (ConnectionError)" in caplog.text


def test_a_safe_failure_is_retried_without_asking():
    async def never() -> None:
        raise AssertionError("only an ambiguous failure is checked")

    safe = Failure(retryable=True, reason="HTTP 429")
    assert attempts([safe], confirm=never) == ("sent", 2)


def test_a_reply_goes_only_to_a_conversation_of_its_channel(caplog: pytest.LogCaptureFixture):
    assert recipient("twilio", "sms:+447700900123") == "+447700900123"
    assert recipient("telegram", "telegram:4242") == "4242"
    with caplog.at_level(logging.ERROR):
        assert recipient("twilio", "rest:+447700900123") is None
        assert recipient("telegram", "4242") is None
    assert caplog.text.count("reply not sent") == 2
    assert "447700900123" not in caplog.text and "4242" not in caplog.text
