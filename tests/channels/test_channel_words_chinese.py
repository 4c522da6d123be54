"""The words the SMS and Slack channels write themselves, in the language they belong to.

A word the channel adds to a bot message (the SMS options prompt, Slack's notification
text for a message of buttons, an image's alt text, "You chose: …") follows that
message's language; the answer to an SMS keyword follows the keyword's. Each case goes
through the channel's webhook as the platform posts it and out to a fake platform
(tests/fake_platform.py) that fails any call it does not expect; the bot answers through
Rasa's own ``OutputChannel.send_response``, as a response from the domain would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence
from urllib.parse import urlencode

import pytest
from rasa.core.channels.channel import UserMessage
from twilio.request_validator import RequestValidator

from channels.slack import SlackInput
from channels.slack_config import SlackConfig
from channels.sms import TwilioSmsInput
from channels.sms_config import (
    DEFAULT_HELP_TEXT,
    DEFAULT_HELP_TEXT_ZH,
    DEFAULT_STOP_TEXT_ZH,
    SmsConfig,
    SmsConfigError,
    Wording,
)
from channels.sms_inbound import HELP, STOP, keyword, keyword_language, parse_inbound
from tests.channels.slack_payloads import SECRET, TOKEN, block_actions, message_event
from tests.channels.slack_payloads import signed_headers as slack_headers
from tests.channels.webhook_calls import settle, webhook_request
from tests.fake_platform import Call, FakePlatform, Reply, TwilioMessageLog

Response = Dict[str, Any]

# What the bot says: a question with buttons, in each language (the domain's wording).
BUTTONS_EN = [
    {"title": "Yes, connect me", "payload": "/affirm"},
    {"title": "No thanks", "payload": "/deny"},
]
BUTTONS_ZH = [
    {"title": "好的，转人工", "payload": "/affirm"},
    {"title": "不用了", "payload": "/deny"},
]
QUESTION_EN = "Would you like me to connect you with a member of our team?"
QUESTION_ZH = "需要为您转接人工客服吗？"


class ResponseBot:
    """``on_new_message``: records each message's text and answers it with ``responses``
    through Rasa's ``send_response``."""

    def __init__(self, *responses: Response) -> None:
        self.responses = responses
        self.reached: List[str] = []

    async def __call__(self, message: UserMessage) -> None:
        self.reached.append(message.text or "")
        for response in self.responses:
            await message.output_channel.send_response(message.sender_id, dict(response))


# ---------------------------------------------------------------- SMS
ACCOUNT_SID = "AC" + "a9d3" * 8
AUTH_TOKEN = "chinese-words-auth-token"
NUMBER = "+15005550006"
WEBHOOK_URL = "https://sms.example.com/webhooks/twilio/webhook"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"

_sids = itertools.count(1)
_customers = itertools.count(1)


class Twilio:
    """The fake Twilio Messages resource of one test, and one channel talking to it."""

    def __init__(self, tmp_path: Path) -> None:
        self.fake = FakePlatform("twilio").start()
        self.log = TwilioMessageLog(ACCOUNT_SID)
        self.fake.expect("POST", MESSAGES_PATH, self._created)
        self.tmp_path = tmp_path

    def _created(self, call: Call) -> Reply:
        return self.log.create(call)

    def channel(self, **extra: Any) -> TwilioSmsInput:
        return TwilioSmsInput(SmsConfig.from_credentials(self.credentials(**extra)))

    def credentials(self, **extra: Any) -> Dict[str, Any]:
        return {
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "twilio_number": NUMBER,
            "webhook_url": WEBHOOK_URL,
            "api_base_url": self.fake.url,
            "dedup_db": str(self.tmp_path / "d.db"),
            **extra,
        }

    def bodies(self, customer: str) -> List[str]:
        return [
            call.form["Body"]
            for call in self.fake.calls_to(MESSAGES_PATH)
            if call.form.get("To") == customer
        ]


@pytest.fixture
def twilio(tmp_path: Path) -> Iterator[Twilio]:
    api = Twilio(tmp_path)
    yield api
    api.fake.stop()
    api.fake.assert_no_unexpected_calls()


def new_customer() -> str:
    return f"+86138{next(_customers):08d}"


def texts(channel: TwilioSmsInput, bot: Any, customer: str, *bodies: str, **fields: str) -> None:
    """Post a signed webhook for each of ``bodies`` from ``customer``, one after another."""

    async def scenario() -> None:
        try:
            for body in bodies:
                form = {
                    "MessageSid": f"SM{next(_sids):032x}",
                    "AccountSid": ACCOUNT_SID,
                    "From": customer,
                    "To": NUMBER,
                    "Body": body,
                    "NumMedia": "0",
                    "SmsStatus": "received",
                    **fields,
                }
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(
                        WEBHOOK_URL, form
                    ),
                }
                request = webhook_request(urlencode(form).encode(), headers, url=WEBHOOK_URL)
                assert (await channel.handle(request, bot)).status == 200
                await settle(channel._tasks)
        finally:
            await channel.messages.close()

    asyncio.run(scenario())


def test_a_chinese_reply_with_buttons_gets_the_chinese_options_prompt(twilio: Twilio):
    customer = new_customer()
    bot = ResponseBot({"text": QUESTION_ZH, "buttons": BUTTONS_ZH})
    texts(twilio.channel(), bot, customer, "我的包裹坏了", "1")
    first = "\n".join([QUESTION_ZH, "1. 好的，转人工", "2. 不用了", "请回复选项编号。"])
    assert twilio.bodies(customer) == [first, first]
    assert bot.reached == ["我的包裹坏了", "/affirm"], "the number still picks the option"


def test_an_english_reply_with_buttons_keeps_the_english_prompt(twilio: Twilio):
    customer = new_customer()
    bot = ResponseBot({"text": QUESTION_EN, "buttons": BUTTONS_EN})
    texts(twilio.channel(), bot, customer, "my parcel arrived broken")
    [body] = twilio.bodies(customer)
    assert body.endswith("\n1. Yes, connect me\n2. No thanks\nReply with the number.")


def test_a_reply_whose_text_tells_no_language_follows_its_buttons(twilio: Twilio):
    customer = new_customer()
    bot = ResponseBot({"text": "NW-10234", "buttons": BUTTONS_ZH})
    texts(twilio.channel(), bot, customer, "订单")
    [body] = twilio.bodies(customer)
    assert body.endswith("请回复选项编号。")


def test_one_string_says_the_same_in_every_language(twilio: Twilio):
    """A credentials.yml written before the Chinese texts keeps its wording everywhere."""
    customer = new_customer()
    bot = ResponseBot({"text": QUESTION_ZH, "buttons": BUTTONS_ZH})
    texts(twilio.channel(options_prompt="Reply 1 or 2."), bot, customer, "你好")
    assert twilio.bodies(customer)[0].endswith("2. 不用了\nReply 1 or 2.")


@pytest.mark.parametrize(
    ("body", "answer"),
    [("帮助", DEFAULT_HELP_TEXT_ZH), ("HELP", DEFAULT_HELP_TEXT), ("info", DEFAULT_HELP_TEXT)],
)
def test_help_is_answered_in_the_keywords_language(twilio: Twilio, body: str, answer: str):
    customer = new_customer()
    bot = ResponseBot({"text": "not for a keyword"})
    texts(twilio.channel(), bot, customer, body)
    assert twilio.bodies(customer) == [answer]
    assert bot.reached == [], "a keyword never reaches the bot"


@pytest.mark.parametrize(
    "word", ["退订", "TD", "td", "T", "取消订阅", "退订。", "ＴＤ", "ＳＴＯＰ"]
)
def test_a_chinese_opt_out_word_opts_out_and_is_confirmed_in_chinese(twilio: Twilio, word: str):
    customer = new_customer()
    channel = twilio.channel()
    bot = ResponseBot({"text": "您好！"})
    texts(channel, bot, customer, word, "你好")
    assert channel.store.is_opted_out_sync(customer)
    confirmation = DEFAULT_STOP_TEXT_ZH if "Ｓ" not in word else None
    assert twilio.bodies(customer) == ([confirmation] if confirmation else [])
    assert bot.reached == [], "nothing from an opted-out number reaches the bot"


def test_stop_is_left_to_twilio_to_confirm_and_start_opts_back_in(twilio: Twilio):
    customer = new_customer()
    channel = twilio.channel()
    bot = ResponseBot({"text": "您好！有什么可以帮您？"})
    texts(channel, bot, customer, "STOP", "你好")
    assert channel.store.is_opted_out_sync(customer) and twilio.bodies(customer) == []
    texts(twilio.channel(), bot, customer, "START", "你好")
    assert bot.reached == ["你好"] and twilio.bodies(customer) == ["您好！有什么可以帮您？"]


def test_a_chinese_word_twilio_was_told_about_is_confirmed_in_chinese(twilio: Twilio):
    """Advanced Opt-Out with 退订 added in Twilio's console: OptOutType says STOP."""
    customer = new_customer()
    channel = twilio.channel(stop_text={"en": "You are unsubscribed.", "zh": "已退订。"})
    texts(channel, ResponseBot(), customer, "退订吧", OptOutType="STOP")
    assert channel.store.is_opted_out_sync(customer) and twilio.bodies(customer) == ["已退订。"]


@pytest.mark.parametrize(
    ("body", "opted_out", "word", "language"),
    [
        ("帮助", False, HELP, "zh"),
        ("帮助", True, HELP, "zh"),
        ("HELP", False, HELP, "en"),
        ("退订", False, STOP, "zh"),
        (" TD ", False, STOP, "zh"),
        ("t", False, STOP, "zh"),
        ("stop!", False, STOP, "en"),
        ("我想退订", False, None, None),  # the whole message must be the word, as for Twilio
        ("帮助我查订单", False, None, None),
        ("TDD", False, None, None),
        ("开始", True, None, None),  # opting back in stays Twilio's START, UNSTOP and YES
    ],
)
def test_chinese_keywords(body: str, opted_out: bool, word: Optional[str], language: Optional[str]):
    inbound = parse_inbound({"From": "+8613800138000", "MessageSid": "SM1", "Body": body})
    assert keyword(inbound, opted_out=opted_out) == word
    if word is not None:
        assert keyword_language(inbound) == language


def test_a_mapping_without_chinese_says_the_english_text(twilio: Twilio):
    config = SmsConfig.from_credentials(twilio.credentials(help_text={"en": "Call 555-0100."}))
    assert config.help_text == Wording(en="Call 555-0100.", zh="Call 555-0100.")
    assert config.options_prompt == Wording(en="Reply with the number.", zh="请回复选项编号。")
    assert config.start_text == Wording(en="", zh="")


@pytest.mark.parametrize(
    ("value", "key", "hint"),
    [
        ({"en": "Hi", "fr": "Salut"}, "help_text.fr", "under en, zh"),
        ({"zh": "帮助"}, "help_text.en", "Add the English text"),
        ({"en": "Hi", "zh": 5}, "help_text.zh", "Quote it"),
        (["Hi"], "help_text", "one per language"),
        (12, "help_text", "mapping of language to text"),
    ],
)
def test_a_bad_text_names_the_key_and_the_language(twilio: Twilio, value: Any, key: str, hint: str):
    with pytest.raises(SmsConfigError, match=hint) as raised:
        SmsConfig.from_credentials(twilio.credentials(help_text=value))
    assert raised.value.key == key and "channels.sms.TwilioSmsInput" in str(raised.value)


# ---------------------------------------------------------------- Slack
OK = {"ok": True, "channel": "D0DIRECT01", "ts": "1700000000.000300"}
FORM = "application/x-www-form-urlencoded"


def slack_channel(tmp_path: Path, fake: FakePlatform) -> SlackInput:
    return SlackInput(
        SlackConfig.from_credentials(
            {
                "slack_token": TOKEN,
                "slack_signing_secret": SECRET,
                "api_url": f"{fake.url}/api/",
                "dedup_db": str(tmp_path / "d.db"),
            }
        )
    )


def slack_posts(
    tmp_path: Path, fake: FakePlatform, bodies: Sequence[bytes], bot: Any, content_type: str
) -> None:
    channel = slack_channel(tmp_path, fake)

    async def scenario() -> None:
        try:
            for body in bodies:
                request = webhook_request(body, slack_headers(body, content_type))
                assert (await channel.handle(request, bot)).status == 200
                await settle(channel._tasks)
        finally:
            await channel.close()

    asyncio.run(scenario())


def slack_turn(tmp_path: Path, fake: FakePlatform, *responses: Response) -> List[Dict[str, Any]]:
    """A customer's message in, the bot's ``responses`` out: what was posted."""
    fake.expect("POST", "/api/chat.postMessage", OK)
    body = json.dumps(message_event("你好"), ensure_ascii=False).encode("utf-8")
    slack_posts(tmp_path, fake, [body], ResponseBot(*responses), "application/json")
    return [call.fields() for call in fake.calls_to("/api/chat.postMessage")]


# A link button without a title: a message of only such buttons has no words of its own.
UNTITLED_LINK = [{"url": "https://northwind.example/track", "type": "web_url"}]


@pytest.mark.parametrize(
    ("said", "fallback"),
    [
        ("您的包裹正在运输途中。", "请选择一个选项"),
        ("Your parcel is on its way.", "Choose an option"),
    ],
)
def test_a_message_of_buttons_without_words_says_choose_in_the_turns_language(
    tmp_path: Path, slack_api: FakePlatform, said: str, fallback: str
):
    posted = slack_turn(tmp_path, slack_api, {"text": said}, {"text": "", "buttons": UNTITLED_LINK})
    assert [message["text"] for message in posted] == [said, fallback]


def test_a_message_of_titled_buttons_shows_their_titles(tmp_path: Path, slack_api: FakePlatform):
    [posted] = slack_turn(tmp_path, slack_api, {"text": "", "buttons": BUTTONS_ZH})
    assert posted["text"] == "好的，转人工 / 不用了"


@pytest.mark.parametrize(
    ("said", "alt_text"),
    [
        ("这是您的退货标签。", "客服助手发送的图片"),
        ("Here is your return label.", "image from the assistant"),
    ],
)
def test_an_images_alt_text_is_in_its_texts_language(
    tmp_path: Path, slack_api: FakePlatform, said: str, alt_text: str
):
    image = "https://cdn.example/label.png"
    text, picture = slack_turn(tmp_path, slack_api, {"text": said, "image": image})
    assert text["text"] == said
    assert picture["blocks"] == [{"type": "image", "image_url": image, "alt_text": alt_text}]


@pytest.mark.parametrize(
    ("question", "title", "note"),
    [
        (QUESTION_ZH, "好的，转人工", "您选择了 *好的，转人工*"),
        (QUESTION_EN, "Yes, connect me", "You chose: *Yes, connect me*"),
        ("NW-10234", "好的", "您选择了 *好的*"),  # the question tells nothing: the choice does
    ],
)
def test_the_choice_made_is_shown_in_the_questions_language(
    tmp_path: Path, slack_api: FakePlatform, question: str, title: str, note: str
):
    slack_api.expect("POST", "/api/chat.update", OK)
    payload = block_actions("/affirm", title)
    payload["message"]["text"] = question
    body = urlencode({"payload": json.dumps(payload, ensure_ascii=False)}).encode()
    bot = ResponseBot()
    slack_posts(tmp_path, slack_api, [body], bot, FORM)
    assert bot.reached == ["/affirm"]
    [update] = [call.fields() for call in slack_api.calls_to("/api/chat.update")]
    blocks = update["blocks"]
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    assert blocks[-1]["elements"][0]["text"] == note
