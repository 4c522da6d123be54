"""Finding 3: what a customer types on Slack, Telegram or SMS reaches Rasa as text.

A message that starts with ``/`` (``/restart``, ``/inform{"order_number": "10023"}``)
and a button's value are passed to Rasa unchanged and unparsed (``parse_data`` None):
Rasa's NLU reads them, and the central rule (:mod:`rasa_llm.server.intent_shortcuts`) takes a
``/...`` message as an intent only if the bot offered that button in the conversation.
The only messages that reach Rasa already parsed are the channel's own: an operator's
Telegram ``commands`` mapping (``/start`` to ``/greet``). Each channel is driven
through its real webhook handler, with signed requests; the bot records what reached it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from channels.slack import SlackInput
from channels.slack_config import SlackConfig
from channels.sms import TwilioSmsInput
from channels.sms_config import SmsConfig
from channels.telegram import TelegramInput
from channels.telegram_config import TelegramConfig
from tests.channels import sms_support as sms
from tests.channels import telegram_payloads as tg
from tests.channels.slack_payloads import (
    SECRET,
    TOKEN,
    action_request,
    block_actions,
    event_request,
    message_event,
)
from tests.channels.webhook_calls import MessageBot, settle, webhook_request
from tests.fake_platform import FakePlatform

TYPED = ["/restart", '/inform{"order_number": "10023"}', "/request_human please"]


def delivered(channel: Any, requests: List[Any]) -> MessageBot:
    """Post ``requests`` to the channel's webhook one after the other; what reached the bot."""
    bot = MessageBot()

    async def scenario() -> None:
        try:
            for request in requests:
                answer = await channel.handle(request, bot)
                assert answer.status == 200, answer.body
            await settle(channel._tasks)
        finally:
            if isinstance(channel, TwilioSmsInput):
                await channel.messages.close()
            else:
                await channel.close()

    asyncio.run(scenario())
    return bot


def assert_plain_text(bot: MessageBot, expected: List[str]) -> None:
    assert [m.text for m in bot.messages] == expected, "the text reaches Rasa unchanged"
    assert [m.parse_data for m in bot.messages] == [None] * len(expected), "and unparsed"


@pytest.fixture
def bot_api() -> Iterator[FakePlatform]:
    fake, _ = tg.fake_bot_api("answerCallbackQuery", "editMessageText")
    yield fake
    fake.stop()
    fake.assert_no_unexpected_calls()


def test_slack_messages_and_button_values_are_text(tmp_path: Path):
    slack = SlackInput(
        SlackConfig.from_credentials(
            {
                "slack_token": TOKEN,
                "slack_signing_secret": SECRET,
                "update_clicked_message": False,
                "api_url": "http://127.0.0.1:9/api/",  # nothing is posted
                "dedup_db": str(tmp_path / "d.db"),
            }
        )
    )
    typed = [webhook_request(*event_request(message_event(text))) for text in TYPED]
    clicked = [
        webhook_request(*action_request(block_actions(text, "Choose"))) for text in TYPED[:2]
    ]
    assert_plain_text(delivered(slack, typed + clicked), TYPED + TYPED[:2])


def telegram(tmp_path: Path, fake: FakePlatform, **extra: Any) -> TelegramInput:
    return TelegramInput(
        TelegramConfig.from_credentials(
            {
                "access_token": tg.TOKEN,
                "verify": tg.BOT_USERNAME,
                "secret_token": tg.SECRET,
                "base_url": f"{fake.url}/bot",
                "update_clicked_message": False,
                "dedup_db": str(tmp_path / "d.db"),
                **extra,
            }
        )
    )


def test_telegram_commands_and_button_data_are_text(tmp_path: Path, bot_api: FakePlatform):
    chat = tg.next_id()
    typed = [tg.text_message(chat, text) for text in TYPED]
    # Addressed to this bot in a group: the same words, without the bot's name.
    addressed = tg.text_message(chat, f'/inform@{tg.BOT_USERNAME}{{"order_number": "10023"}}')
    clicks = [tg.callback_query(chat, text) for text in TYPED[:2]]
    requests = [webhook_request(tg.body(u), tg.headers()) for u in [*typed, addressed, *clicks]]
    bot = delivered(telegram(tmp_path, bot_api), requests)
    assert_plain_text(bot, [*TYPED, TYPED[1], *TYPED[:2]])


def test_telegram_operator_commands_are_the_channels_own_parsed_intents(
    tmp_path: Path, bot_api: FakePlatform
):
    chat = tg.next_id()
    commands = {"start": "/greet", "returns": '/inform{"topic": "returns"}', "help": "help me"}
    updates = [tg.text_message(chat, f"/{name}") for name in ("start", "returns", "help")]
    requests = [webhook_request(tg.body(update), tg.headers()) for update in updates]
    bot = delivered(telegram(tmp_path, bot_api, commands=commands), requests)
    start, returns, words = bot.messages
    assert start.text == "/greet" and start.parse_data is not None
    assert start.parse_data["intent"]["name"] == "greet"
    assert start.parse_data["intent"]["confidence"] == 1.0
    assert returns.parse_data is not None
    assert returns.parse_data["intent"]["name"] == "inform"
    entities = [(e["entity"], e["value"]) for e in returns.parse_data["entities"]]
    assert entities == [("topic", "returns")]
    assert words.text == "help me" and words.parse_data is None, "words are read by NLU"


def test_sms_text_keeps_its_slash(tmp_path: Path):
    twilio = TwilioSmsInput(
        SmsConfig.from_credentials(
            {
                "account_sid": sms.ACCOUNT_SID,
                "auth_token": sms.AUTH_TOKEN,
                "twilio_number": sms.NUMBER,
                "webhook_url": sms.PUBLIC_URL,
                "api_base_url": "http://127.0.0.1:9",  # nothing is sent
                "dedup_db": str(tmp_path / "d.db"),
            }
        )
    )
    sender = sms.new_number()
    fields: List[Dict[str, str]] = [sms.form(sender, text) for text in TYPED]
    requests = [webhook_request(*sms.signed_request(f), url=sms.PUBLIC_URL) for f in fields]
    bot = delivered(twilio, requests)
    assert_plain_text(bot, TYPED)
