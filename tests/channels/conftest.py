"""Fixtures the channels' tests share."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.channels import telegram_payloads as tg
from tests.fake_platform import FakePlatform

_databases = itertools.count(1)


@pytest.fixture
def bot_api() -> Iterator[Any]:
    """A fake Telegram Bot API (its ``api`` records calls); fails on any unexpected one."""
    fake, api = tg.fake_bot_api()
    fake.api = api  # type: ignore[attr-defined]
    yield fake
    fake.stop()
    fake.assert_no_unexpected_calls()


@pytest.fixture
def slack_api() -> Iterator[FakePlatform]:
    """A fake Slack Web API for one test; any call it was not told to expect fails it."""
    fake = FakePlatform("slack").start()
    yield fake
    fake.stop()
    fake.assert_no_unexpected_calls()


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Where the channels' tables go, once on each kind: a SQLite file, then a fresh
    database of the test session's PostgreSQL server."""
    if request.param == "sqlite":
        return tmp_path / "channels.db"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"channels_{next(_databases)}")
