"""Chinese (simplified) through the SMS, Slack and Telegram channels, without a Rasa server.

Each channel's webhook is handled as the platform posts it (signed, raw UTF-8), a bot
answers through the message's own output channel, and a fake platform records what would
have been sent: the customer's words reach the bot exactly as typed (nothing folds
full-width characters or changes the normal form), and the reply reaches the platform
exactly as written, split where Chinese may break, in the unit each platform counts.
The web chat's Chinese is tested in ``test_webchat_chinese.py``.
"""

from __future__ import annotations

import asyncio
import json
import unicodedata
from pathlib import Path
from typing import Any, List

import pytest
from twilio.request_validator import RequestValidator

from channels.slack import SlackInput
from channels.slack_config import SlackConfig
from channels.slack_format import TEXT_LIMIT, escape_mrkdwn, split_mrkdwn
from channels.sms import TwilioSmsInput
from channels.sms_config import SmsConfig
from channels.sms_segments import UCS2, SegmentCount, count_segments, split_sms
from channels.telegram import TelegramInput
from channels.telegram_format import html_pieces, utf16_length
from channels.text_splitting import split_text
from tests.channels import telegram_payloads as tg
from tests.channels.slack_payloads import SECRET, TOKEN, message_event, signed_headers
from tests.channels.webhook_calls import MessageBot, settle, webhook_request
from tests.fake_platform import Call, FakePlatform, Reply, TwilioMessageLog

# A reply as the bot gives it in Chinese: 200 characters, sentences and clauses marked
# with full-width punctuation, Chinese quotes and book-title marks, no spaces.
PARAGRAPH = (
    "您好！感谢您联系Northwind客服。您的订单已于昨天发货，预计三到五个工作日内送达。"
    "如果您需要修改收货地址，请在包裹发出前告诉我们；包裹发出后，地址将无法更改。"
    "退货须在收货后三十天内申请，商品须保持原包装完好，详见《退换货政策》。"
    "退款会在我们收到退货后的五到七个工作日内退回到您原来的付款方式。"
    "如有其他问题，请随时回复本消息，或者回复“人工”转接客服人员。我们全年每天在线为您服务。祝您生活愉快！"
)
# Chinese, English, an order number, a link, emoji (two UTF-16 units each, one a ZWJ
# sequence and one with a variation selector) and full-width markup look-alikes.
MIXED = (
    "【订单更新】您的订单 NW-10234 已发货📦，运单号：SF1234567890。"
    "Track it here: https://track.example.com/NW10234 ，预计周五送达😊。"
    "注意：＊请勿＊回复验证码；家庭账户👨‍👩‍👧由主账户管理❤️。"
    "如需帮助请回复“帮助”或《常见问题》里的编号①②③。"
)
# What a customer types: full-width letters, digits and punctuation that NFKC would fold,
# an ideographic space, and a character outside the BMP (𠮷).
CUSTOMER_TEXT = "我的订单ＮＷ－１０２３４还没到，能帮我查一下吗？＊急＊【谢谢】𠮷"


def test_the_texts_are_what_a_customer_and_the_bot_write():
    assert len(PARAGRAPH) == 200
    for text in (PARAGRAPH, MIXED, CUSTOMER_TEXT):
        assert unicodedata.is_normalized("NFC", text)
    assert unicodedata.normalize("NFKC", CUSTOMER_TEXT) != CUSTOMER_TEXT


# ---------------------------------------------------------------- splitting
@pytest.mark.parametrize("limit", [7, 20, 35, 67, 70, 140])
def test_chinese_splits_after_sentences_and_clauses_and_loses_nothing(limit: int):
    pieces = split_text(PARAGRAPH, limit)
    assert "".join(pieces) == PARAGRAPH, "no spaces between Chinese pieces, nothing lost"
    assert all(len(piece) <= limit for piece in pieces)
    # Line-breaking rules: no piece starts with closing punctuation or ends with an
    # opening quote or bracket.
    assert not any(piece[0] in "，。、；：！？”》」）" for piece in pieces)
    assert not any(piece[-1] in "“《「（" for piece in pieces)


def test_a_sentence_or_clause_end_wins_over_a_break_between_characters():
    pieces = split_text(PARAGRAPH, 70)
    assert pieces[:2] == [
        "您好！感谢您联系Northwind客服。您的订单已于昨天发货，预计三到五个工作日内送达。",
        "如果您需要修改收货地址，请在包裹发出前告诉我们；包裹发出后，地址将无法更改。",
    ]
    assert len(pieces) == 4 and all(piece[-1] in "。！" for piece in pieces)
    # Without a sentence end in reach, a clause mark is next best.
    assert (
        split_text(PARAGRAPH, 35)[2]
        == "如果您需要修改收货地址，请在包裹发出前告诉我们；包裹发出后，"
    )
    # A closing quote stays with the sentence it closes.
    assert split_text("他说：“好的。”然后挂了电话。", 10) == ["他说：“好的。”", "然后挂了电话。"]


@pytest.mark.parametrize("cluster", ["👨‍👩‍👧", "❤️", "🇨🇳", "👍🏽", "a\u0301", "葛\U000e0100"])
def test_emoji_sequences_flags_and_variation_selectors_are_never_cut(cluster: str):
    """What shows as one character stays in one piece wherever the limit falls."""
    text = "您" + cluster * 7
    for limit in range(len(cluster) + 1, 4 * len(cluster)):
        pieces = split_text(text, limit)
        assert "".join(pieces) == text
        assert all(piece.startswith(("您", cluster)) for piece in pieces), (limit, pieces)


# ---------------------------------------------------------------- SMS
ACCOUNT_SID = "AC" + "c41e" * 8
AUTH_TOKEN = "chinese-sms-auth-token"
NUMBER = "+15005550006"
CUSTOMER = "+8613800138000"
WEBHOOK_URL = "https://sms.example.com/webhooks/twilio/webhook"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


def test_chinese_sms_is_counted_in_ucs2_units():
    assert count_segments("您" * 70) == SegmentCount(UCS2, 70, 1)
    assert count_segments("您" * 71) == SegmentCount(UCS2, 71, 2)
    assert count_segments("您" * 134).segments == 2 and count_segments("您" * 135).segments == 3
    assert count_segments("𠮷" * 35) == SegmentCount(UCS2, 70, 1), "outside the BMP: two each"
    assert count_segments("您" * 66 + "𠮷" + "您" * 66).segments == 3, "a pair is never split"
    assert count_segments(PARAGRAPH) == SegmentCount(UCS2, 200, 3)


@pytest.mark.parametrize("max_segments", [1, 2, 10])
def test_a_chinese_reply_is_split_into_affordable_messages(max_segments: int):
    for text in (PARAGRAPH, MIXED, PARAGRAPH * 9):
        pieces = split_sms(text, max_segments=max_segments, smart_encoding=True)
        assert all(count_segments(piece).segments <= max_segments for piece in pieces)
        assert all(count_segments(piece).units <= 1600 for piece in pieces)
        assert "".join(pieces).replace(" ", "") == text.replace(" ", "")


def test_smart_encoding_leaves_chinese_punctuation_alone():
    """Look-alikes save nothing in a message that stays UCS-2: Chinese keeps “” and ——."""
    text = "请回复“人工”——我们会尽快联系您……"
    assert split_sms(text, smart_encoding=True) == [text]
    assert split_sms("We’re here – “really”…", smart_encoding=True) == ['We\'re here - "really"...']


class TwilioApi:
    """The fake Twilio Messages resource of one test."""

    def __init__(self) -> None:
        self.fake = FakePlatform("twilio").start()
        self.log = TwilioMessageLog(ACCOUNT_SID)
        self.fake.expect("POST", MESSAGES_PATH, self.created)

    def created(self, call: Call) -> Reply:
        return self.log.create(call)

    def bodies(self) -> List[str]:
        return [call.form["Body"] for call in self.fake.calls_to(MESSAGES_PATH)]


@pytest.fixture
def twilio() -> Any:
    api = TwilioApi()
    yield api
    api.fake.stop()
    api.fake.assert_no_unexpected_calls()


def sms_channel(tmp_path: Path, twilio: TwilioApi, **extra: Any) -> TwilioSmsInput:
    return TwilioSmsInput(
        SmsConfig.from_credentials(
            {
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "twilio_number": NUMBER,
                "webhook_url": WEBHOOK_URL,
                "api_base_url": twilio.fake.url,
                "dedup_db": str(tmp_path / "d.db"),
                **extra,
            }
        )
    )


def text_sms(channel: Any, bot: MessageBot, body: str) -> None:
    """Post a signed webhook for ``body`` (form-encoded UTF-8, as Twilio posts it)."""
    from urllib.parse import urlencode

    fields = {
        "MessageSid": "SM" + "7" * 32,
        "AccountSid": ACCOUNT_SID,
        "From": CUSTOMER,
        "To": NUMBER,
        "Body": body,
        "NumMedia": "0",
        "SmsStatus": "received",
    }
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(WEBHOOK_URL, fields),
    }
    request = webhook_request(urlencode(fields).encode("utf-8"), headers, url=WEBHOOK_URL)

    async def scenario() -> None:
        try:
            answer = await channel.handle(request, bot)
            assert answer.status == 200
            await settle(channel._tasks)
        finally:
            await channel.messages.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("max_segments", [1, 3])
def test_a_chinese_text_in_and_a_chinese_reply_out_through_twilio(
    tmp_path: Path, twilio: TwilioApi, max_segments: int
):
    bot = MessageBot(reply=PARAGRAPH)
    text_sms(sms_channel(tmp_path, twilio, max_segments=max_segments), bot, CUSTOMER_TEXT)
    [message] = bot.messages
    assert message.text == CUSTOMER_TEXT and message.sender_id == f"sms:{CUSTOMER}"
    bodies = twilio.bodies()
    assert "".join(bodies) == PARAGRAPH, "sent as written, in order, nothing cut"
    assert all(count_segments(body).segments <= max_segments for body in bodies)
    if max_segments == 1:
        assert len(bodies) == 4 and all(body[-1] in "。！" for body in bodies)
    else:
        assert bodies == [PARAGRAPH], "200 UCS-2 units: three segments, one message"


def test_a_mixed_chinese_english_emoji_reply_through_twilio(tmp_path: Path, twilio: TwilioApi):
    bot = MessageBot(reply=MIXED)
    text_sms(sms_channel(tmp_path, twilio, max_segments=1), bot, "查一下订单 NW-10234 😊")
    assert bot.messages[0].text == "查一下订单 NW-10234 😊"
    bodies = twilio.bodies()
    assert all(count_segments(body).units <= 70 for body in bodies)
    assert "".join(bodies).replace(" ", "") == MIXED.replace(" ", "")
    assert "👨‍👩‍👧" in "".join(bodies) and "❤️" in "".join(bodies)
    assert "https://track.example.com/NW10234" in bodies[1], "a link is never cut"


# ---------------------------------------------------------------- Slack
SLACK_OK = {"ok": True, "channel": "D0DIRECT01", "ts": "1700000000.000300"}


@pytest.fixture
def slack_posts(slack_api: FakePlatform) -> FakePlatform:
    slack_api.expect("POST", "/api/chat.postMessage", SLACK_OK)
    return slack_api


def slack_turn(tmp_path: Path, fake: FakePlatform, customer_text: str, reply: str) -> MessageBot:
    channel = SlackInput(
        SlackConfig.from_credentials(
            {
                "slack_token": TOKEN,
                "slack_signing_secret": SECRET,
                "api_url": f"{fake.url}/api/",
                "dedup_db": str(tmp_path / "d.db"),
            }
        )
    )
    # Slack posts its JSON as raw UTF-8, not \u escapes.
    body = json.dumps(message_event(customer_text), ensure_ascii=False).encode("utf-8")
    bot = MessageBot(reply=reply)

    async def scenario() -> None:
        try:
            answer = await channel.handle(
                webhook_request(body, signed_headers(body, "application/json")), bot
            )
            assert answer.status == 200
            await settle(channel._tasks)
        finally:
            await channel.close()

    asyncio.run(scenario())
    return bot


def slack_texts(fake: FakePlatform) -> List[str]:
    return [call.fields()["text"] for call in fake.calls_to("/api/chat.postMessage")]


def test_a_chinese_slack_message_in_and_a_chinese_reply_out(
    tmp_path: Path, slack_posts: FakePlatform
):
    reply = PARAGRAPH + "\n＊这不是粗体＊ & <不是链接>"
    bot = slack_turn(tmp_path, slack_posts, CUSTOMER_TEXT, reply)
    [message] = bot.messages
    assert message.text == CUSTOMER_TEXT, "full-width characters and 𠮷 reach the bot as typed"
    assert slack_texts(slack_posts) == [escape_mrkdwn(reply)]
    assert slack_texts(slack_posts)[0].endswith("＊这不是粗体＊ &amp; &lt;不是链接&gt;")


def test_a_long_chinese_slack_reply_is_split_between_sentences(
    tmp_path: Path, slack_posts: FakePlatform
):
    reply = PARAGRAPH * 40  # 8,000 characters without a space
    slack_turn(tmp_path, slack_posts, "你好", reply)
    texts = slack_texts(slack_posts)
    assert len(texts) == 3 and all(len(text) <= TEXT_LIMIT for text in texts)
    assert "".join(texts) == reply and all(text.endswith("！") for text in texts)


def test_slack_measures_escaped_chinese_and_never_splits_an_entity():
    text = "《A&B》" * 1000  # 5,000 characters, 9,000 once escaped
    pieces = split_mrkdwn(text)
    assert all(len(piece) <= TEXT_LIMIT for piece in pieces)
    assert "".join(pieces) == escape_mrkdwn(text)
    assert all(piece.startswith("《") for piece in pieces), "never starts with a closing mark"


# ---------------------------------------------------------------- Telegram
def telegram_turn(
    tmp_path: Path, fake: FakePlatform, chat: int, text: str, reply: str
) -> MessageBot:
    channel = TelegramInput.from_credentials(
        {
            "access_token": tg.TOKEN,
            "secret_token": tg.SECRET,
            "base_url": f"{fake.url}/bot",
            "dedup_db": str(tmp_path / "d.db"),
        }
    )
    assert isinstance(channel, TelegramInput)
    update = tg.text_message(chat, text)
    update["message"]["from"]["language_code"] = "zh-hans"
    # The Bot API posts raw UTF-8.
    body = json.dumps(update, ensure_ascii=False).encode("utf-8")
    bot = MessageBot(reply=reply)

    async def scenario() -> None:
        try:
            answer = await channel.handle(webhook_request(body, tg.headers()), bot)
            assert answer.status == 200
            await settle(channel._tasks)
        finally:
            await channel.close()

    asyncio.run(scenario())
    return bot


def test_a_chinese_telegram_message_in_and_a_chinese_reply_out(
    tmp_path: Path, bot_api: FakePlatform
):
    chat = tg.next_id()
    reply = (
        "**您的订单已发货**，详情见[订单详情](https://shop.example/orders/NW-10234)。"
        "＊注意＊ <包裹> & 《说明》"
    )
    bot = telegram_turn(tmp_path, bot_api, chat, CUSTOMER_TEXT, reply)
    assert [message.text for message in bot.messages] == [CUSTOMER_TEXT]
    [sent] = tg.sent(bot_api, chat)
    assert sent["text"] == (
        "<b>您的订单已发货</b>，详情见"
        '<a href="https://shop.example/orders/NW-10234">订单详情</a>。'
        "＊注意＊ &lt;包裹&gt; &amp; 《说明》"
    )
    assert sent["parse_mode"] == "HTML"


def test_a_long_chinese_telegram_reply_fits_4096_utf16_units(tmp_path: Path, bot_api: FakePlatform):
    chat = tg.next_id()
    # 3,750 characters, 4,430 UTF-16 units: 𠮷 and 😊 count two each for Telegram.
    reply = ("𠮷野家的订单已发货😊。" * 340) + "**谢谢您的耐心等待**"
    assert len(reply) < 4096 < utf16_length(reply)
    telegram_turn(tmp_path, bot_api, chat, "你好", reply)
    texts = [sent["text"] for sent in tg.sent(bot_api, chat)]
    assert len(texts) == 2 and all(utf16_length(text) <= 4096 for text in texts)
    assert texts[0].endswith("。") and texts[1].endswith("<b>谢谢您的耐心等待</b>")
    assert "".join(texts) == html_pieces(reply)[0] + html_pieces(reply)[1]


def test_a_bold_chinese_phrase_is_never_cut_in_two():
    text = "您好" * 10 + "**您的订单已发货请注意查收**" + "谢谢" * 10
    for limit in (25, 30, 40):
        pieces = html_pieces(text, limit=limit)
        assert all(utf16_length(piece) <= limit for piece in pieces)
        assert sum("<b>您的订单已发货请注意查收</b>" in piece for piece in pieces) == 1
        assert "**" not in "".join(pieces)
