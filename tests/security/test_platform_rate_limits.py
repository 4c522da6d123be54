"""Finding 4: one conversation on Slack, Telegram or SMS cannot send without limit.

Each channel counts a conversation's messages (``rate_limits: {conversation: ...}``)
after the signature check and de-duplication, so a platform's re-delivery is not a
new message. A message over the limit is dropped with a log line (no text, no id, no
number) while the platform still gets its fast 2xx (Slack and Telegram 200, Twilio an
empty TwiML answer): a slow or failing webhook would be retried or disabled by the
platform. Nothing is answered for a dropped message: no SMS is sent for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from channels.sms import TwilioSmsInput
from tests.channels import sms_support as sms
from tests.channels import telegram_payloads as tg
from tests.channels.slack_payloads import event_request, message_event
from tests.channels.webhook_calls import MessageBot, settle, webhook_request
from tests.security.platform_channels import slack_input, sms_input, telegram_input

LIMITS = {"conversation": "3/minute"}
WORDS = ["one", "two", "three", "four", "five"]


def post_all(
    channel: Any, requests: List[Any], bot: MessageBot, caplog: pytest.LogCaptureFixture
) -> List[Any]:
    """Post ``requests`` in order; the answers (all 2xx), with the bot's turns done."""

    async def scenario() -> List[Any]:
        try:
            answers = [await channel.handle(request, bot) for request in requests]
            await settle(channel._tasks)
            return answers
        finally:
            if isinstance(channel, TwilioSmsInput):
                await channel.messages.close()
            else:
                await channel.close()

    with caplog.at_level(logging.INFO):
        answers = asyncio.run(scenario())
    assert [answer.status for answer in answers] == [200] * len(requests)
    return answers


def assert_logged_without_content(caplog: pytest.LogCaptureFixture, drops: int, *ids: str):
    lines = [r.getMessage() for r in caplog.records if "rate limit" in r.getMessage()]
    assert len(lines) == drops, lines
    for line in lines:
        assert "3/minute" in line
        assert not any(word in line for word in WORDS) and not any(i in line for i in ids)


def test_slack_drops_a_conversations_messages_over_its_rate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    slack = slack_input(tmp_path / "d.db", rate_limits=LIMITS)
    envelopes = [message_event(word, user="U0LIMITED") for word in WORDS]
    requests = [webhook_request(*event_request(e)) for e in envelopes]
    # Slack's retry of the first event, before the others: not a new message.
    requests.insert(1, webhook_request(*event_request(envelopes[0])))
    other = message_event("hello", user="U0SOMEONE")
    requests.append(webhook_request(*event_request(other)))
    bot = MessageBot()
    answers = post_all(slack, requests, bot, caplog)
    assert [m.text for m in bot.messages] == ["one", "two", "three", "hello"]
    bodies = [json.loads(answer.body) for answer in answers]
    assert bodies[1] == {"ok": True, "duplicate": True}
    assert all(body["ok"] is True for body in bodies), "Slack always gets its 200"
    assert_logged_without_content(caplog, 2, "U0LIMITED")


def test_telegram_drops_a_chats_updates_over_its_rate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    telegram = telegram_input(tmp_path / "d.db", rate_limits=LIMITS)
    chat, other = tg.next_id(), tg.next_id()
    updates = [tg.text_message(chat, word) for word in WORDS]
    updates.insert(1, updates[0])  # Telegram's re-delivery of the first update
    updates.append(tg.text_message(other, "hello"))
    requests = [webhook_request(tg.body(update), tg.headers()) for update in updates]
    bot = MessageBot()
    post_all(telegram, requests, bot, caplog)
    assert [m.text for m in bot.messages] == ["one", "two", "three", "hello"]
    assert_logged_without_content(caplog, 2, str(chat))


@pytest.fixture
def twilio() -> Iterator[sms.TwilioApi]:
    api = sms.TwilioApi()
    yield api
    api.fake.stop()
    api.fake.assert_no_unexpected_calls()


def test_sms_drops_a_numbers_messages_over_its_rate_and_sends_nothing_for_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, twilio: sms.TwilioApi
):
    channel = sms_input(tmp_path / "d.db", api_base_url=twilio.fake.url, rate_limits=LIMITS)
    sender = sms.new_number()
    fields = [sms.form(sender, word) for word in WORDS]
    fields.insert(1, fields[0])  # Twilio's retry of the first webhook
    fields.append(sms.form(sender, "STOP"))  # an opt-out is recorded whatever the rate
    requests = [webhook_request(*sms.signed_request(f), url=sms.PUBLIC_URL) for f in fields]
    bot = MessageBot(reply="Thanks, noted.")
    answers = post_all(channel, requests, bot, caplog)
    assert [m.text for m in bot.messages] == ["one", "two", "three"]
    assert all(b"<Message" not in answer.body for answer in answers), "empty TwiML answers"
    assert [c.form["Body"] for c in twilio.sent_to(sender)] == ["Thanks, noted."] * 3
    assert channel.store.is_opted_out_sync(sender)
    assert_logged_without_content(caplog, 2, sender, sender.lstrip("+"))
