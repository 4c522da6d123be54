"""Fixtures the channels' tests share."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from tests.channels import telegram_payloads as tg


@pytest.fixture
def bot_api() -> Iterator[Any]:
    """A fake Telegram Bot API (its ``api`` records calls); fails on any unexpected one."""
    fake, api = tg.fake_bot_api()
    fake.api = api  # type: ignore[attr-defined]
    yield fake
    fake.stop()
    fake.assert_no_unexpected_calls()
