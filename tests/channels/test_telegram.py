"""The Telegram channel without a Rasa server: settings, the secret token, parsing of
real Update shapes, formatting and splitting, keyboards, and replies sent through
python-telegram-bot to a fake Bot API (retries included), and the webhook command.
"""

from __future__ import annotations

import asyncio
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import httpx
import pytest
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from channels import telegram_webhook
from channels.delivery_log import DeliveryLog
from channels.telegram import TelegramInput
from channels.telegram_buttons import (
    CALLBACK_DATA_LIMIT,
    KEY_PREFIX,
    ButtonPayloads,
    inline_keyboard,
    row_sizes,
)
from channels.telegram_config import (
    SECRET_HEADER,
    SecretTokenVerifier,
    TelegramConfig,
    TelegramConfigError,
)
from channels.telegram_format import MESSAGE_LIMIT, escape, html_pieces, to_html, utf16_length
from channels.telegram_output import TelegramBot, TelegramServerError, classify_telegram_error
from channels.telegram_updates import Incoming, message_attachments, parse_update
from channels.webhook_guard import WebhookRejected
from tests.channels import telegram_payloads as tg
from tests.channels.webhook_calls import posted_together, slow_first_call, webhook_request
from tests.fake_platform import FakePlatform


def credentials(tmp_path: Path, **extra: Any) -> Dict[str, Any]:
    return {
        "access_token": tg.TOKEN,
        "verify": tg.BOT_USERNAME,
        "webhook_url": "https://bot.example.com/webhooks/telegram/webhook",
        "secret_token": tg.SECRET,
        "dedup_db": str(tmp_path / "deliveries.db"),
        **extra,
    }


def channel(tmp_path: Path, **extra: Any) -> TelegramInput:
    made = TelegramInput.from_credentials(credentials(tmp_path, **extra))
    assert isinstance(made, TelegramInput)
    return made


# ------------------------------------------------------------------ settings
def test_the_stock_keys_plus_the_secret_are_enough(tmp_path: Path):
    config = TelegramConfig.from_credentials(credentials(tmp_path, verify="@northwind_help_bot"))
    assert config.verify == "northwind_help_bot"
    assert config.base_url == "https://api.telegram.org/bot"
    assert config.command_map() == {"start": "/greet"}
    assert not config.answer_edited_messages and config.update_clicked_message


@pytest.mark.parametrize("secret", [None, "", "has spaces", "x" * 257, "ünï", "x" * 31])
def test_without_a_valid_secret_token_the_channel_refuses_to_start(tmp_path: Path, secret: Any):
    given = credentials(tmp_path)
    given["secret_token"] = secret
    with pytest.raises(TelegramConfigError) as error:
        TelegramInput.from_credentials(given)
    message = str(error.value)
    assert error.value.key == "secret_token"
    assert "channels.telegram.TelegramInput" in message
    assert "secret_token: ${TELEGRAM_SECRET_TOKEN}" in message
    assert "set-webhook" in message and "token_urlsafe" in message


def test_a_missing_token_or_a_typo_names_the_key(tmp_path: Path):
    given = credentials(tmp_path)
    del given["access_token"]
    with pytest.raises(TelegramConfigError, match="key `access_token`: missing"):
        TelegramConfig.from_credentials(given)
    with pytest.raises(TelegramConfigError, match="key `secret_tokne`: unknown key.*secret_token"):
        TelegramConfig.from_credentials({**credentials(tmp_path), "secret_tokne": "x"})
    with pytest.raises(TelegramConfigError, match="answer_edited_messages.*true or false"):
        TelegramConfig.from_credentials(credentials(tmp_path, answer_edited_messages="yes"))
    with pytest.raises(TelegramConfigError, match="commands"):
        TelegramConfig.from_credentials(credentials(tmp_path, commands={"Start!": "/greet"}))
    with pytest.raises(TelegramConfigError, match="dedup_window_seconds"):
        TelegramConfig.from_credentials(credentials(tmp_path, dedup_window_seconds=0))
    with pytest.raises(TelegramConfigError, match="rate_limits.chat`: unknown key"):
        TelegramConfig.from_credentials(credentials(tmp_path, rate_limits={"chat": "1/second"}))
    with pytest.raises(TelegramConfigError, match="rate_limits.conversation"):
        TelegramConfig.from_credentials(credentials(tmp_path, rate_limits={"conversation": 5}))
    with pytest.raises(TelegramConfigError, match="/restart.*not an intent"):
        TelegramConfig.from_credentials(credentials(tmp_path, commands={"restart": "/"}))
    defaults = TelegramConfig.from_credentials(credentials(tmp_path))
    assert str(defaults.conversation_rate) == "30/minute"


# ------------------------------------------------------------- secret token
def test_the_secret_token_header_is_checked():
    verifier = SecretTokenVerifier(tg.SECRET)
    verifier.verify({SECRET_HEADER: tg.SECRET})
    verifier.verify({SECRET_HEADER.lower(): tg.SECRET})
    with pytest.raises(WebhookRejected) as missing:
        verifier.verify({"Content-Type": "application/json"})
    assert missing.value.status == 401 and SECRET_HEADER in missing.value.reason
    for wrong in ("", tg.SECRET[:-1] + "X", tg.SECRET + "x", "ünïcode"):
        with pytest.raises(WebhookRejected) as forged:
            verifier.verify({SECRET_HEADER: wrong})
        assert forged.value.status == 403
        assert tg.SECRET not in forged.value.reason


# ------------------------------------------------------------------ parsing
def parsed(tmp_path: Path, update: Dict[str, Any], **extra: Any) -> Optional[Incoming]:
    return channel(tmp_path, **extra).updates.incoming(parse_update(update))


def test_a_text_message_is_the_chats_message(tmp_path: Path):
    incoming = parsed(tmp_path, tg.text_message(4242, "where is my order?", update_id=77))
    assert incoming is not None
    assert incoming.chat_id == "4242" and incoming.delivery_id == "77"
    [said] = incoming.messages
    assert said.text == "where is my order?" and said.parse_data is None
    assert said.metadata["telegram"]["chat_id"] == 4242
    assert said.metadata["telegram"]["language_code"] == "en"


def test_one_chats_updates_reach_the_bot_in_arrival_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bot_api: Any
):
    """Telegram posts updates over several connections: a slow database for the first
    one (its de-duplication) does not let the second overtake it."""
    slow_first_call(monkeypatch, DeliveryLog, "first_time_sync")
    updates = [tg.text_message(4243, "first"), tg.text_message(4243, "second")]
    requests = [webhook_request(tg.body(update), tg.headers()) for update in updates]
    posted = channel(tmp_path, base_url=f"{bot_api.url}/bot")  # each turn says "typing…"
    assert posted_together(posted, requests) == ["first", "second"]


@pytest.mark.parametrize(
    "typed, expected, intent",
    [
        ("/start", "/greet", "greet"),
        ("/start@northwind_help_bot", "/greet", "greet"),
        ("/restart@Northwind_Help_Bot", "/restart", None),
        ("/order_status now", "/order_status now", None),
        ('/inform@northwind_help_bot{"a": 1}', '/inform{"a": 1}', None),
        ("/start@some_other_bot", None, None),
    ],
)
def test_commands_are_mapped_and_other_bots_commands_ignored(
    tmp_path: Path, typed: str, expected: Optional[str], intent: Optional[str]
):
    incoming = parsed(tmp_path, tg.text_message(1, typed))
    said = incoming.messages[0] if incoming else None
    assert (said.text if said else None) == expected
    # Only the operator's mapping is an intent; any other command is the customer's text.
    parse = said.parse_data if said else None
    assert (parse["intent"]["name"] if parse else None) == intent


def test_a_photo_with_a_caption_is_an_attachment_then_the_words(tmp_path: Path):
    update = tg.message(5, photo=tg.photo(file_id="PHOTO"), caption="the box arrived crushed")
    incoming = parsed(tmp_path, update)
    assert incoming is not None
    notice, caption = incoming.messages
    meta, meta2 = notice.metadata, caption.metadata
    assert notice.text == (
        '/send_attachment{"attachment_kind": "photo", "attachment_supported": true}'
    )
    assert notice.parse_data is not None and caption.parse_data is None
    assert caption.text == "the box arrived crushed"
    [attachment] = meta["attachments"]
    assert attachment["file_id"] == "PHOTO_1280", "the largest size"
    assert attachment["mime_type"] == "image/jpeg" and attachment["size"] == 1280 * 12
    assert attachment["url"] is None, "a file URL would hold the bot token"
    assert meta2["attachments"] == meta["attachments"] and meta2["telegram"]["chat_id"] == 5


@pytest.mark.parametrize(
    "fields, kind, supported, mime",
    [
        (
            {
                "voice": {
                    "duration": 4,
                    "mime_type": "audio/ogg",
                    "file_id": "VOICE",
                    "file_unique_id": "u1",
                    "file_size": 9000,
                }
            },
            "voice note",
            True,
            "audio/ogg",
        ),
        (
            {
                "document": {
                    "file_name": "invoice.pdf",
                    "mime_type": "application/pdf",
                    "file_id": "DOC",
                    "file_unique_id": "u2",
                    "file_size": 52000,
                }
            },
            "document",
            True,
            "application/pdf",
        ),
        (
            {
                "video": {
                    "duration": 3,
                    "width": 640,
                    "height": 480,
                    "mime_type": "video/mp4",
                    "file_id": "VID",
                    "file_unique_id": "u3",
                    "file_size": 100000,
                }
            },
            "video",
            True,
            "video/mp4",
        ),
        (
            {
                "sticker": {
                    "width": 512,
                    "height": 512,
                    "emoji": "😡",
                    "is_animated": False,
                    "is_video": False,
                    "type": "regular",
                    "file_id": "STICK",
                    "file_unique_id": "u4",
                    "file_size": 3000,
                }
            },
            "sticker",
            False,
            None,
        ),
        ({"location": {"latitude": 52.52, "longitude": 13.4}}, "location", False, None),
        (
            {"contact": {"phone_number": "+4930123", "first_name": "Bob"}},
            "contact card",
            False,
            None,
        ),
    ],
)
def test_attachments_reach_the_bot_with_kind_and_file_id(
    tmp_path: Path, fields: Dict[str, Any], kind: str, supported: bool, mime: Optional[str]
):
    incoming = parsed(tmp_path, tg.message(6, **fields))
    assert incoming is not None
    [said] = incoming.messages
    metadata = said.metadata
    assert json.loads(said.text.removeprefix("/send_attachment")) == {
        "attachment_kind": kind,
        "attachment_supported": supported,
    }
    assert metadata["attachments"][0]["mime_type"] == mime


def test_a_gif_is_an_animation_not_a_document(tmp_path: Path):
    gif = {"file_id": "GIF", "file_unique_id": "g", "mime_type": "video/mp4", "file_size": 10}
    update = tg.message(
        7,
        animation={**gif, "width": 1, "height": 1, "duration": 1},
        document={**gif, "file_name": "a.gif.mp4"},
    )
    [attachment] = message_attachments(parse_update(update).message)  # type: ignore[arg-type]
    assert attachment.kind == "animation" and not attachment.supported


def test_edited_messages_are_ignored_unless_configured(tmp_path: Path):
    update = tg.text_message(8, "where is my order 123?")
    update["edited_message"] = {**update.pop("message"), "edit_date": 1700000100}
    assert parsed(tmp_path, update) is None
    incoming = parsed(tmp_path / "on", update, answer_edited_messages=True)
    assert incoming is not None and incoming.messages[0].text == "where is my order 123?"


def test_service_messages_and_bots_are_ignored(tmp_path: Path):
    joined = tg.message(9, new_chat_members=[tg.customer(10)])
    assert parsed(tmp_path, joined) is None
    from_bot = tg.text_message(9, "hi")
    from_bot["message"]["from"] = tg.BOT_USER
    assert parsed(tmp_path, from_bot) is None
    assert parsed(tmp_path, {"update_id": 3, "my_chat_member": None}) is None


def test_a_button_click_is_the_buttons_payload(tmp_path: Path):
    incoming = parsed(tmp_path, tg.callback_query(11, "/affirm", update_id=90))
    assert incoming is not None and incoming.click is not None
    assert incoming.chat_id == "11" and incoming.delivery_id == "90"
    assert incoming.messages[0].text == "/affirm"
    assert incoming.messages[0].parse_data is None, "a button's payload is text for Rasa"


@pytest.mark.parametrize(
    "data, reason",
    [
        ({"message": {"text": "CUSTOMER_WORDS"}}, "no integer update_id"),
        ({"update_id": "12"}, "no integer update_id"),
        ({"update_id": True}, "no integer update_id"),
        ({"update_id": 1, "message": "CUSTOMER_WORDS"}, "not a Telegram Update"),
        ({"update_id": 1, "message": {"text": "CUSTOMER_WORDS"}}, "not a Telegram Update"),
    ],
)
def test_json_that_is_not_an_update_is_a_400(data: Dict[str, Any], reason: str):
    with pytest.raises(WebhookRejected, match=reason) as error:
        parse_update(data)
    assert error.value.status == 400 and "CUSTOMER" not in error.value.reason


# --------------------------------------------------------------- formatting
def test_text_is_escaped_for_html_and_markdown_spans_become_tags():
    assert escape("a < b && c > d") == "a &lt; b &amp;&amp; c &gt; d"
    assert to_html("<b>not bold</b>") == "&lt;b&gt;not bold&lt;/b&gt;"
    assert to_html('see [our "help" page](https://x.example/h?a=1&b=2) **now** or `A&B`') == (
        'see <a href="https://x.example/h?a=1&amp;b=2">our "help" page</a>'
        " <b>now</b> or <code>A&amp;B</code>"
    )
    assert to_html("[js](javascript:alert(1)) **unclosed") == (
        "[js](javascript:alert(1)) **unclosed"
    )


def test_long_text_is_split_by_its_escaped_length_without_breaking_words():
    text = ("Fish & chips <3 are great. " * 400).strip()
    pieces = html_pieces(text)
    assert len(pieces) > 2
    assert all(utf16_length(p) <= MESSAGE_LIMIT for p in pieces)
    assert max(len(p) for p in pieces) > MESSAGE_LIMIT * 0.9
    plain = " ".join(p.replace("&amp;", "&").replace("&lt;", "<") for p in pieces)
    assert plain.split() == text.split()


def test_emoji_count_twice_and_links_are_never_cut():
    assert utf16_length("👍") == 2
    pieces = html_pieces("👍" * 3000)
    assert [utf16_length(p) for p in pieces] == [4096, 1904]
    link = "[track your parcel here](https://track.example/p/123)"
    text = " ".join([link] * 300)
    pieces = html_pieces(text, limit=500)
    for piece in pieces:
        assert piece.count("<a ") == piece.count("</a>") and "[" not in piece
        assert utf16_length(piece) <= 500


# ------------------------------------------------------------------ buttons
def test_long_payloads_travel_behind_a_stored_key(tmp_path: Path):
    store = ButtonPayloads(tmp_path / "d.db")
    assert store.callback_data_sync("/affirm") == "/affirm"
    long = '/inform{"order_id": "NW-2024-000123", "reason": "the box arrived crushed"}'
    key = store.callback_data_sync(long)
    assert key.startswith(KEY_PREFIX) and len(key.encode()) <= CALLBACK_DATA_LIMIT
    assert store.callback_data_sync(long) == key, "the same payload, the same key"
    assert ButtonPayloads(tmp_path / "d.db").payload_sync(key) == long, "survives a restart"
    assert store.payload_sync(KEY_PREFIX + "unknown") is None
    tricky = KEY_PREFIX + "short"
    assert store.payload_sync(store.callback_data_sync(tricky)) == tricky
    multibyte = "/choose" + "ü" * 30  # 67 bytes in 37 characters
    assert store.callback_data_sync(multibyte).startswith(KEY_PREFIX)


def test_keyboard_layout_follows_button_type_and_label_length(tmp_path: Path):
    assert row_sizes(["Yes, connect me", "No thanks"], None) == [2]
    assert row_sizes(["Track my parcel please", "Cancel my order now"], None) == [1, 1]
    assert row_sizes(["a"] * 10, "inline") == [8, 2]
    assert row_sizes(["a", "b"], "vertical") == [1, 1]
    store = ButtonPayloads(tmp_path / "d.db")
    markup = asyncio.run(
        inline_keyboard(
            [
                {"title": "Yes", "payload": "/affirm"},
                {"title": "Help page", "url": "https://help.example"},
                {"title": "broken"},
            ],
            store,
        )
    )
    assert markup is not None
    assert [[b.to_dict() for b in row] for row in markup.inline_keyboard] == [
        [
            {"text": "Yes", "callback_data": "/affirm"},
            {"text": "Help page", "url": "https://help.example"},
        ]
    ]


# ----------------------------------------------------------- replies (output)
def output(fake: FakePlatform, tmp_path: Path, slept: Optional[List[float]] = None) -> TelegramBot:
    made = channel(tmp_path, base_url=f"{fake.url}/bot").get_output_channel()
    assert isinstance(made, TelegramBot)
    if slept is None:
        return made

    async def no_sleep(seconds: float) -> None:
        slept.append(seconds)  # record the back-off instead of sleeping it

    return TelegramBot(made.bot, made.payloads, sleep=no_sleep)


def test_buttons_become_an_inline_keyboard_under_the_last_piece(bot_api: Any, tmp_path: Path):
    long_payload = '/inform{"order_id": "NW-2024-000123", "reason": "the box arrived crushed"}'
    text = "Please pick one & tell me <more>. " * 200
    buttons = [
        {"title": "Yes", "payload": "/affirm"},
        {"title": "Details", "payload": long_payload},
    ]
    asyncio.run(output(bot_api, tmp_path).send_text_with_buttons("telegram:321", text, buttons))
    messages = tg.sent(bot_api, 321)
    assert len(messages) == 3, "9,800 characters once escaped"
    assert all(m["parse_mode"] == "HTML" for m in messages)
    assert all(utf16_length(m["text"]) <= MESSAGE_LIMIT for m in messages)
    assert "&lt;more&gt;" in messages[0]["text"] and "&amp;" in messages[0]["text"]
    assert all("reply_markup" not in m for m in messages[:-1])
    [[yes, details]] = json.loads(messages[-1]["reply_markup"])["inline_keyboard"]
    assert yes == {"text": "Yes", "callback_data": "/affirm"}
    assert details["callback_data"].startswith(KEY_PREFIX)
    store = ButtonPayloads(tmp_path / "deliveries.db")
    assert store.payload_sync(details["callback_data"]) == long_payload


def test_an_image_with_a_short_text_is_one_photo_with_a_caption(bot_api: Any, tmp_path: Path):
    bot = output(bot_api, tmp_path)
    asyncio.run(
        bot.send_response(
            "telegram:55", {"text": "Your <parcel>", "image": "https://i.example/p.jpg"}
        )
    )
    [photo] = tg.sent(bot_api, 55, method="sendPhoto")
    assert photo["photo"] == "https://i.example/p.jpg"
    assert photo["caption"] == "Your &lt;parcel&gt;" and photo["parse_mode"] == "HTML"
    assert tg.sent(bot_api, 55) == []
    asyncio.run(
        bot.send_custom_json("telegram:55", {"text": "custom hi", "disable_notification": True})
    )
    [custom] = tg.sent(bot_api, 55)
    assert custom["text"] == "custom hi" and custom["disable_notification"] == "true"


def test_quick_replies_cards_files_and_custom_calls(
    bot_api: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    bot = output(bot_api, tmp_path)
    quick = [{"title": "Track", "payload": "/order_status"}]
    asyncio.run(bot.send_response("telegram:56", {"text": "Pick", "quick_replies": quick}))
    [pick] = tg.sent(bot_api, 56)
    assert json.loads(pick["reply_markup"]) == {
        "inline_keyboard": [[{"text": "Track", "callback_data": "/order_status"}]]
    }
    card = {"title": "Order <42>", "subtitle": "shipped", "buttons": quick}
    asyncio.run(bot.send_elements("telegram:57", [card]))
    [element] = tg.sent(bot_api, 57)
    assert element["text"] == "<b>Order &lt;42&gt;</b>\nshipped" and "reply_markup" in element
    asyncio.run(
        bot.send_attachment(
            "telegram:58", {"type": "file", "payload": {"src": "https://f.example/a.pdf"}}
        )
    )
    assert tg.sent(bot_api, 58, method="sendDocument")[0]["document"] == "https://f.example/a.pdf"
    with caplog.at_level(logging.ERROR):
        asyncio.run(bot.send_custom_json("telegram:59", {"method": "banChatMember", "user_id": 1}))
        asyncio.run(bot.send_attachment("telegram:59", "not a url"))
    assert "banChatMember" in caplog.text and "attachment without a URL" in caplog.text
    assert tg.sent(bot_api, 59) == [] and tg.sent(bot_api, 59, method="sendDocument") == []


def test_flood_control_and_unavailable_are_retried(bot_api: Any, tmp_path: Path):
    slept: List[float] = []
    bot_api.api.fail_next(
        77, tg.flood(seconds=7), tg.server_error(status=503), tg.server_error(status=503)
    )
    asyncio.run(output(bot_api, tmp_path, slept).send_text_message("telegram:77", "hello there"))
    attempts = tg.sent(bot_api, 77)
    assert len(attempts) == 4 and attempts[-1]["text"] == "hello there"
    assert slept[0] == 7, "Telegram's retry_after is honoured"


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_server_error_that_may_have_sent_is_not_sent_again(
    bot_api: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int
):
    slept: List[float] = []
    bot_api.api.fail_next(76, tg.server_error(status=status))
    with caplog.at_level(logging.ERROR):
        asyncio.run(output(bot_api, tmp_path, slept).send_text_message("telegram:76", "secret"))
    assert len(tg.sent(bot_api, 76)) == 1 and slept == []
    assert f"possibly undelivered: HTTP {status} (Bad Gateway)" in caplog.text
    assert "secret" not in caplog.text


@pytest.mark.parametrize(
    "failure",
    [
        tg.refused(400, "Bad Request: chat not found"),
        tg.refused(403, "Forbidden: bot was blocked by the user"),
    ],
)
def test_a_refused_reply_is_logged_once_without_text_or_token(
    bot_api: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    failure: Any,
):
    slept: List[float] = []
    bot_api.api.fail_next(78, failure)
    with caplog.at_level(logging.INFO):
        bot = output(bot_api, tmp_path, slept)
        asyncio.run(bot.send_text_message("telegram:78", "my secret order details"))
    assert len(tg.sent(bot_api, 78)) == 1 and slept == []
    assert "sendMessage failed after 1 attempt" in caplog.text
    said = failure[1]["description"].split(": ", 1)[1]  # Telegram's reason, without the prefix
    assert said.lower() in caplog.text.lower()
    assert "secret order" not in caplog.text and tg.TOKEN not in caplog.text


def test_the_error_classification():
    error = RetryAfter(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reading retry_after must not warn
        flood = classify_telegram_error(error)
    assert flood.retryable and flood.retry_after == 3
    timed_out = classify_telegram_error(TimedOut())
    assert timed_out.retryable and timed_out.ambiguous, "the message may have been sent"
    dropped = classify_telegram_error(NetworkError("httpx.RemoteProtocolError: disconnected"))
    assert dropped.retryable and dropped.ambiguous
    for cause in (httpx.ConnectError("refused"), httpx.ConnectTimeout("slow")):
        error = NetworkError("not sent") if isinstance(cause, httpx.ConnectError) else TimedOut()
        error.__cause__ = cause
        failure = classify_telegram_error(error)
        assert failure.retryable and not failure.ambiguous, "nothing left this server"
    unavailable = classify_telegram_error(TelegramServerError(503, "Service Unavailable"))
    assert unavailable.retryable and not unavailable.ambiguous
    assert classify_telegram_error(TelegramServerError(502, "Bad Gateway")).ambiguous
    assert not classify_telegram_error(BadRequest("Message is too long")).retryable
    assert not classify_telegram_error(Forbidden("bot was blocked")).retryable
    leak = classify_telegram_error(NetworkError(f"boom at /bot{tg.TOKEN}/x"), token=tg.TOKEN)
    assert tg.TOKEN not in leak.reason


# -------------------------------------------------------- webhook command
def write_credentials(tmp_path: Path, **extra: Any) -> Path:
    import yaml

    path = tmp_path / "credentials.yml"
    section = {k: v for k, v in credentials(tmp_path, **extra).items() if v is not None}
    path.write_text(yaml.safe_dump({"channels.telegram.TelegramInput": section, "rest": None}))
    return path


@pytest.fixture
def registry() -> Iterator[FakePlatform]:
    fake = FakePlatform("telegram").start()
    yield fake
    fake.stop()
    fake.assert_no_unexpected_calls()


def expect_get_me(fake: FakePlatform) -> None:
    fake.expect("POST", tg.path("getMe"), {"ok": True, "result": tg.BOT_USER}, times=1)


def test_set_webhook_registers_url_secret_and_update_types(
    registry: FakePlatform, tmp_path: Path, capsys: pytest.CaptureFixture
):
    expect_get_me(registry)
    registry.expect(
        "POST",
        tg.path("setWebhook"),
        {"ok": True, "result": True, "description": "Webhook was set"},
        times=1,
    )
    path = write_credentials(tmp_path, access_token="${TELEGRAM_TEST_TOKEN}")
    argv = ["set-webhook", "--credentials", str(path), "--base-url", f"{registry.url}/bot"]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TELEGRAM_TEST_TOKEN", tg.TOKEN)
        assert telegram_webhook.main(argv=[*argv, "--drop-pending-updates"]) == 0
    [call] = registry.calls_to(tg.path("setWebhook"))
    fields = call.fields()
    assert fields["url"] == "https://bot.example.com/webhooks/telegram/webhook"
    assert fields["secret_token"] == tg.SECRET
    assert json.loads(fields["allowed_updates"]) == ["message", "callback_query"]
    assert fields["drop_pending_updates"] == "true"
    out = capsys.readouterr()
    assert "@northwind_help_bot: webhook set" in out.out and tg.SECRET not in out.out + out.err


def test_set_webhook_refuses_what_telegram_would_not_deliver(
    registry: FakePlatform, tmp_path: Path, capsys: pytest.CaptureFixture
):
    base = ["--base-url", f"{registry.url}/bot"]
    path = write_credentials(
        tmp_path, webhook_url="http://bot.example.com/webhooks/telegram/webhook"
    )
    assert telegram_webhook.main(argv=["set-webhook", "--credentials", str(path), *base]) == 2
    assert "https://" in capsys.readouterr().err
    path = write_credentials(tmp_path, webhook_url=None)
    assert telegram_webhook.main(argv=["set-webhook", "--credentials", str(path), *base]) == 2
    assert "webhook_url" in capsys.readouterr().err
    expect_get_me(registry)
    path = write_credentials(tmp_path, verify="someone_elses_bot")
    assert telegram_webhook.main(argv=["set-webhook", "--credentials", str(path), *base]) == 2
    assert "@northwind_help_bot" in capsys.readouterr().err
    assert registry.calls_to(tg.path("setWebhook")) == []


def test_a_rejected_token_is_reported_without_the_token(
    registry: FakePlatform, tmp_path: Path, capsys: pytest.CaptureFixture
):
    registry.expect("POST", tg.path("getMe"), tg.refused(401, "Unauthorized"), times=1)
    path = write_credentials(tmp_path)
    argv = ["webhook-info", "--credentials", str(path), "--base-url", f"{registry.url}/bot"]
    assert telegram_webhook.main(argv=argv) == 1
    err = capsys.readouterr().err
    assert "Bot API call failed" in err and "was rejected" in err
    assert tg.TOKEN not in err, "python-telegram-bot puts the token in this message"


def test_webhook_info_shows_the_last_error(
    registry: FakePlatform, tmp_path: Path, capsys: pytest.CaptureFixture
):
    expect_get_me(registry)
    info = {
        "url": "https://bot.example.com/webhooks/telegram/webhook",
        "has_custom_certificate": False,
        "pending_update_count": 3,
        "last_error_date": 1700000000,
        "last_error_message": "Wrong response from the webhook: 403 Forbidden",
        "allowed_updates": ["message", "callback_query"],
    }
    registry.expect("POST", tg.path("getWebhookInfo"), {"ok": True, "result": info}, times=1)
    path = write_credentials(tmp_path)
    argv = ["webhook-info", "--credentials", str(path), "--base-url", f"{registry.url}/bot"]
    assert telegram_webhook.main(argv=argv) == 0
    out = capsys.readouterr().out
    assert "pending updates: 3" in out and "403 Forbidden" in out
