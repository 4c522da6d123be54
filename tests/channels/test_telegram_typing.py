"""Telegram's "typing…" while the bot's turn runs: the channel's webhook handled without
a Rasa server, a bot that takes its time, and a fake Bot API that records the order of
every call (and fails any it was not told to expect)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path
from typing import Any, List

import pytest
from rasa.core.channels.channel import UserMessage

from channels import telegram_typing
from channels.telegram import TelegramInput
from channels.telegram_typing import ChatTyping
from tests.channels import telegram_payloads as tg
from tests.channels.webhook_calls import settle, webhook_request
from tests.fake_platform import FakePlatform

ACTION = tg.CHAT_ACTION


def channel(tmp_path: Path, fake: FakePlatform) -> TelegramInput:
    made = TelegramInput.from_credentials(
        {
            "access_token": tg.TOKEN,
            "secret_token": tg.SECRET,
            "base_url": f"{fake.url}/bot",
            "dedup_db": str(tmp_path / "deliveries.db"),
        }
    )
    assert isinstance(made, TelegramInput)
    return made


class ThinkingBot:
    """``on_new_message``: thinks for ``seconds`` (a language model writing), then
    answers with ``replies`` through the message's output channel."""

    def __init__(self, seconds: float, *replies: str) -> None:
        self.seconds = seconds
        self.replies = replies or ("Delivery costs £3.95.",)
        self.send_took: List[float] = []  # seconds each reply took to send

    async def __call__(self, message: UserMessage) -> None:
        await asyncio.sleep(self.seconds)
        for reply in self.replies:
            started = time.monotonic()
            await message.output_channel.send_text_message(message.sender_id, reply)
            self.send_took.append(time.monotonic() - started)


def post(tmp_path: Path, fake: FakePlatform, bot: Any, *texts: str, chat: int) -> TelegramInput:
    """Post the chat's messages to the webhook and wait for the bot's turns."""
    telegram = channel(tmp_path, fake)

    async def scenario() -> None:
        try:
            for text in texts:
                request = webhook_request(tg.body(tg.text_message(chat, text)), tg.headers())
                answer = await telegram.handle(request, bot)
                assert answer.status == 200
            await settle(telegram._tasks)
        finally:
            await telegram.close()

    asyncio.run(scenario())
    return telegram


def test_typing_is_sent_before_the_turn_and_the_reply_follows_it(
    bot_api: FakePlatform, tmp_path: Path
):
    chat = tg.next_id()
    post(tmp_path, bot_api, ThinkingBot(0.3), "how much is delivery?", chat=chat)
    assert tg.calls_in_order(bot_api, chat) == [ACTION, "sendMessage"]
    [action] = tg.sent(bot_api, chat, method=ACTION)
    assert action["action"] == "typing"
    [reply] = tg.sent(bot_api, chat)
    assert reply["text"] == "Delivery costs £3.95."


def test_a_long_turn_repeats_typing_every_few_seconds_and_never_after_the_reply(
    bot_api: FakePlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Telegram shows an action for 5 s (repeated every 4 s); here time runs 20 times faster.
    monkeypatch.setattr(telegram_typing, "REPEAT_SECONDS", 0.2)
    chat = tg.next_id()
    bot = ThinkingBot(1.0, "First part.", "Second part.")
    post(tmp_path, bot_api, bot, "do you ship to Switzerland?", "thanks", chat=chat)
    calls = tg.calls_in_order(bot_api, chat)
    # Each turn: an action every 0.2 s of its 1 s (fewer on a busy machine), then its
    # two replies, and no action between or after them.
    turns = "".join("a" if call == ACTION else "m" for call in calls)
    assert re.fullmatch(r"a{2,6}mma{2,6}mm", turns), calls
    time.sleep(0.5)  # nothing more arrives once the turns are over
    assert tg.calls_in_order(bot_api, chat) == calls


@pytest.mark.parametrize(
    "failure, reason",
    [
        (tg.refused(403, "Forbidden: bot was blocked by the user"), "forbidden"),
        (tg.server_error(status=502), "HTTP 502"),
        (tg.flood(seconds=30), "flood control"),
    ],
)
def test_a_failing_chat_action_is_logged_once_and_the_reply_still_goes(
    bot_api: FakePlatform,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    failure: Any,
    reason: str,
):
    chat = tg.next_id()
    bot_api.api.fail_next_actions(chat, failure)  # type: ignore[attr-defined]
    with caplog.at_level(logging.INFO):
        post(tmp_path, bot_api, ThinkingBot(0.1, "my secret order details"), "hi", chat=chat)
    assert tg.calls_in_order(bot_api, chat) == [ACTION, "sendMessage"], "not retried"
    [reply] = tg.sent(bot_api, chat)
    assert reply["text"] == "my secret order details"
    failed = [r for r in caplog.records if "sendChatAction failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].levelno == logging.WARNING
    assert reason in failed[0].getMessage()
    assert "secret order" not in caplog.text and tg.TOKEN not in caplog.text


def test_a_hanging_chat_action_holds_the_reply_at_most_a_second(
    bot_api: FakePlatform, tmp_path: Path
):
    chat = tg.next_id()
    bot_api.api.slow_actions[str(chat)] = 6.0  # type: ignore[attr-defined]
    bot = ThinkingBot(0.0, "Our phone lines open at 8:00.")
    post(tmp_path, bot_api, bot, "when do you open?", chat=chat)
    [reply] = tg.sent(bot_api, chat)
    assert reply["text"] == "Our phone lines open at 8:00."
    # SETTLE_SECONDS (1 s) and the send; not the action's own 3 s limit, nor its answer.
    assert bot.send_took[0] < 2.5, "the reply waited for the action's answer"


def test_a_bot_that_fails_ends_the_typing_too(bot_api: FakePlatform, tmp_path: Path):
    async def failing(message: Any) -> None:
        await asyncio.sleep(0.2)
        raise RuntimeError("the model server is down")

    chat = tg.next_id()
    post(tmp_path, bot_api, failing, "hello?", chat=chat)
    time.sleep(0.3)
    assert tg.calls_in_order(bot_api, chat) == [ACTION]


def test_the_indicator_stops_cleanly_before_it_has_started_and_twice():
    sent: List[int] = []

    async def send() -> None:
        sent.append(1)

    async def scenario() -> None:
        never = ChatTyping(send)
        await never.stop()
        await never.start()  # a stopped indicator stays stopped
        twice = ChatTyping(send, repeat_s=0.01)
        await twice.start()
        await asyncio.sleep(0.05)
        await twice.stop()
        await twice.stop()
        count = len(sent)
        await asyncio.sleep(0.05)
        assert len(sent) == count and twice.sent == count

    asyncio.run(scenario())
    assert sent, "the started one sent"
