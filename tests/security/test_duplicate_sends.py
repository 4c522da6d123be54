"""Finding 8: a reply whose answer timed out after the platform took it is not sent twice.

The fakes take each call at once (a message is created, a post recorded) and answer
it only after the client has given up, as a network that loses the answer would.
With the real twilio, slack_sdk and python-telegram-bot clients:

- Twilio: after the timeout the channel lists the messages Twilio has (``To``,
  ``From``, ``DateSent>=``), finds the one it sent, and does not send it again: one
  SMS per reply. A send that truly failed (a 500 with nothing created) is sent again
  after the look-up finds nothing.
- Slack and Telegram, whose APIs cannot be asked: the reply is logged as possibly
  undelivered and not posted again. A 503 or 429 (the platform did not act) is retried.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Iterator, Tuple

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from telegram import Bot
from telegram.request import HTTPXRequest

from channels.outbound import RetryPolicy
from channels.slack_output import SlackBot
from channels.sms_rest import TwilioMessages
from channels.telegram_buttons import ButtonPayloads
from channels.telegram_output import TelegramBot
from tests.channels import sms_support as sms
from tests.channels import telegram_payloads as tg
from tests.channels.slack_payloads import TOKEN
from tests.channels.webhook_calls import MessageBot, settle, webhook_request
from tests.fake_platform import Call, FakePlatform, Reply, TwilioMessageLog
from tests.security.platform_channels import sms_input

# The clients' timeout, and how much later the fakes answer.
TIMEOUT = 0.5
LATE = 2.0
SLACK_TIMEOUT = 1  # slack_sdk takes whole seconds
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=0.1)
CUSTOMER = "+15558880001"


# ---------------------------------------------------------------------- Twilio
@pytest.fixture
def twilio() -> Iterator[Tuple[FakePlatform, TwilioMessageLog]]:
    fake = FakePlatform("twilio").start()
    log = TwilioMessageLog(sms.ACCOUNT_SID)
    fake.expect("GET", log.path, log.list)
    yield fake, log
    fake.stop()
    fake.assert_no_unexpected_calls()


def twilio_messages(fake: FakePlatform, **options: Any) -> TwilioMessages:
    """A Twilio client of the fake that gives up after TIMEOUT and retries FAST."""
    return TwilioMessages(
        sms.ACCOUNT_SID,
        sms.AUTH_TOKEN,
        sms.NUMBER,
        api_base_url=fake.url,
        policy=FAST,
        timeout=TIMEOUT,
        **options,
    )


def send_sms(fake: FakePlatform, body: str) -> bool:
    messages = twilio_messages(fake)

    async def scenario() -> bool:
        try:
            return await messages.send(CUSTOMER, body)
        finally:
            await messages.close()

    return asyncio.run(scenario())


def test_an_sms_taken_by_twilio_but_answered_too_late_is_sent_once(
    twilio: Tuple[FakePlatform, TwilioMessageLog], caplog: pytest.LogCaptureFixture
):
    fake, log = twilio
    fake.expect("POST", log.path, log.create, times=1, delay=LATE)
    fake.expect("POST", log.path, log.create)
    with caplog.at_level(logging.WARNING):
        assert send_sms(fake, "Your order 10023 ships today.")
    assert [m["body"] for m in log.sent_to(CUSTOMER)] == ["Your order 10023 ships today."]
    assert len(fake.calls_to(log.path)) == 2, "one POST, then one look-up"
    [lookup] = [call for call in fake.calls_to(log.path) if call.method == "GET"]
    assert lookup.query["To"] == [CUSTOMER] and lookup.query["From"] == [sms.NUMBER]
    assert "DateSent>" in lookup.query
    assert "platform has the message" in caplog.text
    assert CUSTOMER not in caplog.text and "10023" not in caplog.text


def test_a_500_after_twilio_created_the_message_is_not_sent_again(
    twilio: Tuple[FakePlatform, TwilioMessageLog],
):
    fake, log = twilio

    def created_then_failed(call: Call) -> Reply:
        log.create(call)
        return 500, {"code": 20500, "message": "Internal Server Error"}, {}

    fake.expect("POST", log.path, created_then_failed, times=1)
    fake.expect("POST", log.path, log.create)
    assert send_sms(fake, "Refund approved.")
    assert [m["body"] for m in log.sent_to(CUSTOMER)] == ["Refund approved."]


def test_an_sms_that_twilio_did_not_take_is_sent_again(
    twilio: Tuple[FakePlatform, TwilioMessageLog],
):
    fake, log = twilio
    fake.expect("POST", log.path, log.create, times=1)
    fake.expect("POST", log.path, (500, {"code": 20500, "message": "oops"}, {}), times=1)
    fake.expect("POST", log.path, log.create)
    messages = TwilioMessages(
        sms.ACCOUNT_SID, sms.AUTH_TOKEN, sms.NUMBER, api_base_url=fake.url, policy=FAST
    )

    async def scenario() -> None:
        try:
            assert await messages.send(CUSTOMER, "Hello again.")
            # The same words, a moment later: the first message is not taken for this one.
            assert await messages.send(CUSTOMER, "Hello again.")
        finally:
            await messages.close()

    asyncio.run(scenario())
    assert [m["body"] for m in log.sent_to(CUSTOMER)] == ["Hello again."] * 2
    assert [c.method for c in fake.calls_to(log.path)] == ["POST", "POST", "GET", "POST"]


def test_one_sms_per_reply_through_the_channel(
    tmp_path: Path, twilio: Tuple[FakePlatform, TwilioMessageLog]
):
    fake, log = twilio
    fake.expect("POST", log.path, log.create, times=1, delay=LATE)
    fake.expect("POST", log.path, log.create)
    channel = sms_input(tmp_path / "d.db", api_base_url=fake.url)
    # The channel's own client, with a timeout the test can outlast.
    channel.messages = twilio_messages(fake, operation_name="twilio")
    bot = MessageBot(reply="Your parcel arrives on Friday.")
    request = webhook_request(*sms.signed_request(sms.form(CUSTOMER, "where is my parcel?")))

    async def scenario() -> None:
        try:
            assert (await channel.handle(request, bot)).status == 200
            await settle(channel._tasks)
        finally:
            await channel.messages.close()

    asyncio.run(scenario())
    assert [m["body"] for m in log.sent_to(CUSTOMER)] == ["Your parcel arrives on Friday."]


# ----------------------------------------------------------------------- Slack
@pytest.fixture
def slack() -> Iterator[FakePlatform]:
    fake = FakePlatform("slack").start()
    yield fake
    fake.stop()
    fake.assert_no_unexpected_calls()


def post_to_slack(fake: FakePlatform, text: str) -> None:
    async def scenario() -> None:
        client = AsyncWebClient(
            token=TOKEN, base_url=f"{fake.url}/api/", timeout=SLACK_TIMEOUT, retry_handlers=[]
        )
        await SlackBot(client).send_text_message("slack:U0CUSTOMER", text)

    asyncio.run(asyncio.wait_for(scenario(), 30))


def slack_ok(call: Call) -> Reply:
    return 200, {"ok": True, "channel": "D0DIRECT01", "ts": "1700000000.000100"}, {}


def test_a_slack_post_answered_too_late_is_posted_once(
    slack: FakePlatform, caplog: pytest.LogCaptureFixture
):
    slack.expect("POST", "/api/chat.postMessage", slack_ok, times=1, delay=LATE)
    slack.expect("POST", "/api/chat.postMessage", slack_ok)
    with caplog.at_level(logging.ERROR):
        post_to_slack(slack, "Your order 10023 ships today.")
    assert len(slack.calls_to("/api/chat.postMessage")) == 1
    assert "possibly undelivered" in caplog.text and "10023" not in caplog.text


@pytest.mark.parametrize(
    "first, posts",
    [
        ((500, {"ok": False, "error": "internal_error"}, {}), 1),
        ((502, "<html>bad gateway</html>", {}), 1),
        ((503, {"ok": False, "error": "service_unavailable"}, {}), 2),
        ((429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0"}), 2),
    ],
    ids=["500-not-retried", "502-not-retried", "503-retried", "429-retried"],
)
def test_slack_retries_only_what_slack_did_not_act_on(
    slack: FakePlatform, first: Reply, posts: int
):
    slack.expect("POST", "/api/chat.postMessage", first, times=1)
    slack.expect("POST", "/api/chat.postMessage", slack_ok)
    post_to_slack(slack, "hello")
    assert len(slack.calls_to("/api/chat.postMessage")) == posts


# -------------------------------------------------------------------- Telegram
def test_a_telegram_message_answered_too_late_is_sent_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    fake = FakePlatform("telegram").start()
    api = tg.BotApi()
    fake.expect("POST", tg.path("sendMessage"), api.answer, times=1, delay=LATE)
    fake.expect("POST", tg.path("sendMessage"), api.answer)

    async def scenario() -> None:
        request = HTTPXRequest(read_timeout=TIMEOUT)
        bot = Bot(tg.TOKEN, base_url=f"{fake.url}/bot", request=request)
        try:
            output = TelegramBot(bot, ButtonPayloads(tmp_path / "d.db"))
            await output.send_text_message("telegram:4242", "Your order 10023 ships today.")
        finally:
            await request.shutdown()

    try:
        with caplog.at_level(logging.ERROR):
            asyncio.run(asyncio.wait_for(scenario(), 30))
        assert len(fake.calls_to(tg.path("sendMessage"))) == 1
        assert "possibly undelivered" in caplog.text and tg.TOKEN not in caplog.text
        fake.assert_no_unexpected_calls()
    finally:
        fake.stop()
