"""Finding 10 (Slack, Telegram): a guessable Telegram secret, and tracebacks in the log.

Telegram's ``secret_token`` is the only proof that a webhook comes from Telegram:
Telegram accepts 1 to 256 characters, this channel refuses fewer than 32 at start-up
with a message that names the key and how to make one. A bot turn that fails is logged
at error level without its traceback (which may quote the customer's words); the
traceback is there at debug level, for a developer who turns it on.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, List

import pytest

from channels.telegram_config import TelegramConfig, TelegramConfigError
from tests.channels import telegram_payloads as tg
from tests.channels.slack_payloads import event_request, message_event
from tests.channels.webhook_calls import settle, webhook_request
from tests.security.platform_channels import slack_input, telegram_input

WORDS = "my card number is 4111 1111 1111 1111"


@pytest.mark.parametrize("secret", ["x", "s3cr3t", "s3cr3t-t0ken-16c", "a" * 31])
def test_a_short_telegram_secret_token_stops_the_channel(tmp_path: Path, secret: str):
    with pytest.raises(TelegramConfigError) as refused:
        TelegramConfig.from_credentials(
            {
                "access_token": tg.TOKEN,
                "secret_token": secret,
                "dedup_db": str(tmp_path / "d.db"),
            }
        )
    message = str(refused.value)
    assert refused.value.key == "secret_token"
    assert "at least 32" in message and "secrets.token_urlsafe(32)" in message
    assert secret not in message.replace("secret_token", "")
    TelegramConfig.from_credentials(
        {"access_token": tg.TOKEN, "secret_token": "a" * 32, "dedup_db": str(tmp_path / "d.db")}
    )


async def failing_bot(message: Any) -> None:
    raise RuntimeError(f"could not handle {message.text!r}")


def failed_turn_logs(
    channel: Any, request: Any, caplog: pytest.LogCaptureFixture
) -> List[logging.LogRecord]:
    async def scenario() -> None:
        try:
            assert (await channel.handle(request, failing_bot)).status == 200
            await settle(channel._tasks)
        finally:
            await channel.close()

    with caplog.at_level(logging.DEBUG):
        asyncio.run(scenario())
    return [r for r in caplog.records if r.name.startswith("channels.")]


def assert_no_traceback_above_debug(records: List[logging.LogRecord]) -> None:
    errors = [r for r in records if r.levelno >= logging.ERROR]
    assert errors, "the failure is logged at error level"
    for record in records:
        if record.levelno > logging.DEBUG:
            assert record.exc_info is None, f"traceback at {record.levelname}"
            assert "4111" not in record.getMessage()
    assert any(r.exc_info for r in records if r.levelno == logging.DEBUG), "debug has it"


def test_a_failed_slack_turn_is_logged_without_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    slack = slack_input(tmp_path / "d.db")
    request = webhook_request(*event_request(message_event(WORDS)))
    assert_no_traceback_above_debug(failed_turn_logs(slack, request, caplog))


def test_a_failed_telegram_turn_is_logged_without_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    telegram = telegram_input(tmp_path / "d.db")
    request = webhook_request(tg.body(tg.text_message(tg.next_id(), WORDS)), tg.headers())
    assert_no_traceback_above_debug(failed_turn_logs(telegram, request, caplog))
