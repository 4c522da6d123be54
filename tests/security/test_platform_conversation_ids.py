"""Finding 2: a conversation belongs to its channel (Slack, Telegram, SMS).

Each input channel names its conversations with its own prefix (``slack:``,
``telegram:``, ``sms:``), and each output channel sends only to conversations of its
own channel: given another channel's id (a REST conversation named after a phone
number, a web chat session, a bare id from before ids carried their channel), it logs
one line without the id and sends nothing. Rasa's HTTP API sends through these same
output channels (``?output_channel=twilio``), so it cannot reach an SMS number through
a REST conversation either. The platforms are fakes that fail any call not expected.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from channels.slack import SlackInput
from channels.sms import TwilioSmsInput
from channels.telegram import TelegramInput
from tests.channels import sms_support as sms
from tests.channels import telegram_payloads as tg
from tests.channels.slack_payloads import event_request, message_event
from tests.channels.webhook_calls import MessageBot, settle, webhook_request
from tests.fake_platform import FakePlatform
from tests.security.platform_channels import slack_input, sms_input, telegram_input

NUMBER = "+15557770001"
CHAT = 4242001
SLACK_USER = "U0IDS0001"


@pytest.fixture
def platforms() -> Iterator[Dict[str, Any]]:
    slack = FakePlatform("slack").start()
    slack.expect(
        "POST",
        "/api/chat.postMessage",
        lambda call: (200, {"ok": True, "channel": "D1", "ts": "1.1"}, {}),
    )
    telegram, _ = tg.fake_bot_api("sendMessage")
    twilio = sms.TwilioApi()
    yield {"slack": slack, "telegram": telegram, "twilio": twilio.fake}
    for fake in (slack, telegram, twilio.fake):
        fake.stop()
        fake.assert_no_unexpected_calls()


def slack_channel(tmp_path: Path, fake: FakePlatform) -> SlackInput:
    return slack_input(tmp_path / "slack.db", api_url=f"{fake.url}/api/")


def telegram_channel(tmp_path: Path, fake: FakePlatform) -> TelegramInput:
    return telegram_input(tmp_path / "telegram.db", base_url=f"{fake.url}/bot")


def sms_channel(tmp_path: Path, fake: FakePlatform) -> TwilioSmsInput:
    return sms_input(tmp_path / "sms.db", api_base_url=fake.url)


async def close(channel: Any) -> None:
    if isinstance(channel, TwilioSmsInput):
        await channel.messages.close()
    else:
        await channel.close()


# What each channel sends for a reply to its own customer, and where the fake sees it.
Sent = Callable[[Dict[str, Any]], List[str]]
CHANNELS: Dict[str, Tuple[Callable[..., Any], str, Sent]] = {
    "slack": (
        slack_channel,
        f"slack:{SLACK_USER}",
        lambda fakes: [
            c.fields()["channel"] for c in fakes["slack"].calls_to("/api/chat.postMessage")
        ],
    ),
    "telegram": (
        telegram_channel,
        f"telegram:{CHAT}",
        lambda fakes: [
            str(c.fields()["chat_id"]) for c in fakes["telegram"].calls_to(tg.path("sendMessage"))
        ],
    ),
    "twilio": (
        sms_channel,
        f"sms:{NUMBER}",
        lambda fakes: [c.form["To"] for c in fakes["twilio"].calls_to(sms.MESSAGES_PATH)],
    ),
}
FOREIGN = [
    f"rest:{NUMBER}",  # a REST caller naming its conversation after a phone number
    f"rest:{CHAT}",
    f"webchat:{'0' * 32}",
    f"sms:{NUMBER}",
    f"telegram:{CHAT}",
    f"slack:{SLACK_USER}",
    NUMBER,  # bare ids, as before ids carried their channel
    str(CHAT),
    SLACK_USER,
]


@pytest.mark.parametrize("name", list(CHANNELS))
def test_an_output_channel_sends_to_its_own_conversations_only(
    name: str, platforms: Dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    make, own, sent = CHANNELS[name]
    fake = platforms[name]
    channel = make(tmp_path, fake)

    async def replies() -> None:
        try:
            output = channel.get_output_channel()
            for conversation in FOREIGN:
                if conversation != own:
                    await output.send_response(conversation, {"text": "your order 10023"})
        finally:
            await close(channel)

    with caplog.at_level(logging.INFO):
        asyncio.run(replies())
    assert fake.calls == [], f"{name} sent a reply to another channel's conversation"
    refusals = [r for r in caplog.records if "reply not sent" in r.getMessage()]
    assert len(refusals) == len(FOREIGN) - 1, "one line per refused reply"
    for record in refusals:
        message = record.getMessage()
        assert NUMBER not in message and str(CHAT) not in message and SLACK_USER not in message
        assert "10023" not in message

    # Its own conversation is answered, at the platform's id.
    channel = make(tmp_path / "again", fake)

    async def own_reply() -> None:
        try:
            await channel.get_output_channel().send_response(own, {"text": "hello"})
        finally:
            await close(channel)

    asyncio.run(own_reply())
    assert sent(platforms) == [own.partition(":")[2]]


def test_input_channels_name_conversations_with_their_prefix(
    platforms: Dict[str, Any], tmp_path: Path
):
    bot = MessageBot()
    slack = slack_channel(tmp_path, platforms["slack"])
    telegram = telegram_channel(tmp_path, platforms["telegram"])
    twilio = sms_channel(tmp_path, platforms["twilio"])
    slack_request = webhook_request(*event_request(message_event("hello", user=SLACK_USER)))
    telegram_request = webhook_request(tg.body(tg.text_message(CHAT, "hello")), tg.headers())
    sms_request = webhook_request(*sms.signed_request(sms.form(NUMBER, "hello")))

    async def scenario() -> None:
        try:
            for channel, request in (
                (slack, slack_request),
                (telegram, telegram_request),
                (twilio, sms_request),
            ):
                answer = await channel.handle(request, bot)
                assert answer.status == 200
            await settle([*slack._tasks, *telegram._tasks, *twilio._tasks])
        finally:
            for channel in (slack, telegram, twilio):
                await close(channel)

    asyncio.run(scenario())
    assert sorted(m.sender_id for m in bot.messages) == sorted(
        [f"slack:{SLACK_USER}", f"telegram:{CHAT}", f"sms:{NUMBER}"]
    )
