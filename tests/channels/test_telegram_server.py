"""The Telegram channel in the real bot: `rasa run` with ``channels.telegram.TelegramInput``
from credentials.yml, Telegram's webhook updates posted with (and without) the secret
token, and a fake Bot API that records every call and fails the test on any it was not
told to expect.

One server serves the module (each start costs half a minute or more); the test that
restarts it runs last. Each test speaks in its own private chat, so its replies and its
tracker (``telegram:<chat>``, read through Rasa's HTTP API with its token) are its own.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import requests

from channels.telegram_buttons import KEY_PREFIX, ButtonPayloads
from tests.channels import telegram_payloads as tg
from tests.channels.bot_replies import (
    APOLOGY,
    DECLINED,
    GREETING,
    OFFER,
    WELCOME,
    rasa_with,
    trigger_greet,
)
from tests.fake_platform import FakePlatform
from tests.rasa_process import RasaServer

pytestmark = pytest.mark.integration

REPLY_TIMEOUT = 90


@pytest.fixture(scope="module")
def telegram() -> Iterator[FakePlatform]:
    fake, api = tg.fake_bot_api()
    fake.api = api  # type: ignore[attr-defined]
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def no_unexpected_calls(telegram: FakePlatform) -> Iterator[None]:
    yield
    telegram.assert_no_unexpected_calls()


@pytest.fixture(scope="module")
def server(
    bot_model: Path, telegram: FakePlatform, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RasaServer]:
    workdir = tmp_path_factory.mktemp("telegram")
    yield from rasa_with(
        bot_model,
        workdir,
        "channels.telegram.TelegramInput:\n"
        f'  access_token: "{tg.TOKEN}"\n'
        f'  verify: "{tg.BOT_USERNAME}"\n'
        '  webhook_url: "https://bot.example.com/webhooks/telegram/webhook"\n'
        f'  secret_token: "{tg.SECRET}"\n'
        f'  base_url: "{telegram.url}/bot"\n',
    )


@pytest.fixture
def chat() -> int:
    return tg.next_id()


def events(server: RasaServer, chat: int, count: int = 0) -> List[Dict[str, Any]]:
    """The chat's user events (its conversation is ``telegram:<chat>``)."""
    return server.user_events(f"telegram:{chat}", count=count)


def post(
    server: RasaServer,
    update: Any,
    *,
    secret: Optional[str] = tg.SECRET,
    content_type: str = "application/json",
) -> requests.Response:
    data = update if isinstance(update, bytes) else tg.body(update)
    return requests.post(
        f"{server.url}/webhooks/telegram/webhook",
        data=data,
        headers=tg.headers(secret=secret, content_type=content_type),
        timeout=30,
    )


def say(server: RasaServer, chat: int, text: str) -> requests.Response:
    response = post(server, tg.text_message(chat, text))
    assert response.status_code == 200, response.text
    return response


def wait_for(
    fake: FakePlatform, chat: int, count: int, method: str = "sendMessage"
) -> List[Dict[str, Any]]:
    deadline = time.monotonic() + REPLY_TIMEOUT
    while time.monotonic() < deadline:
        found = tg.sent(fake, chat, method=method)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(
        f"{count} {method} to {chat} expected, got {tg.sent(fake, chat, method=method)}"
    )


# ------------------------------------------------------------ end to end
def test_hello_gets_the_greeting_and_the_webhook_does_not_wait_for_it(
    server: RasaServer, telegram: FakePlatform, chat: int
):
    telegram.api.slow[str(chat)] = 4.0  # type: ignore[attr-defined]
    response = say(server, chat, "hello")
    assert response.elapsed.total_seconds() < 4.0, "acknowledged before the reply was sent"
    [reply] = wait_for(telegram, chat, 1)
    assert reply["text"].startswith(GREETING)
    assert reply["parse_mode"] == "HTML" and reply["chat_id"] == str(chat)
    [event] = events(server, chat, 1)
    assert event["text"] == "hello" and event["input_channel"] == "telegram"
    assert event["metadata"]["telegram"]["chat_id"] == chat


def test_typing_is_shown_before_the_reply_and_a_failed_action_loses_nothing(
    server: RasaServer, telegram: FakePlatform, chat: int
):
    say(server, chat, "hello")
    [reply] = wait_for(telegram, chat, 1)
    assert reply["text"].startswith(GREETING)
    time.sleep(0.5)  # anything late would have arrived by now
    calls = tg.calls_in_order(telegram, chat)
    assert calls[0] == tg.CHAT_ACTION and calls[-1] == "sendMessage", calls
    assert set(calls[:-1]) == {tg.CHAT_ACTION}, "no action after the reply"
    assert tg.sent(telegram, chat, method=tg.CHAT_ACTION)[0]["action"] == "typing"
    # Telegram refusing the action: the reply comes all the same, and the log says why.
    other = tg.next_id()
    telegram.api.fail_next_actions(other, tg.server_error(status=502))  # type: ignore[attr-defined]
    say(server, other, "hello")
    [reply] = wait_for(telegram, other, 1)
    assert reply["text"].startswith(GREETING)
    assert tg.calls_in_order(telegram, other) == [tg.CHAT_ACTION, "sendMessage"]
    assert "sendChatAction failed (HTTP 502" in server.log()


def test_a_complaint_gets_a_keyboard_and_a_click_hands_over(
    server: RasaServer, telegram: FakePlatform, chat: int
):
    say(server, chat, "this is the worst service I have ever had")
    apology, offer = wait_for(telegram, chat, 2)
    assert apology["text"].startswith(APOLOGY) and "reply_markup" not in apology
    assert offer["text"] == OFFER
    keyboard = json.loads(offer["reply_markup"])["inline_keyboard"]
    assert keyboard == [
        [
            {"text": "Yes, connect me", "callback_data": "/affirm"},
            {"text": "No thanks", "callback_data": "/deny"},
        ]
    ]

    rows = [[(b["text"], b["callback_data"]) for b in row] for row in keyboard]
    click = tg.callback_query(chat, "/deny", keyboard=tg.keyboard_message(chat, OFFER, rows))
    assert post(server, click).status_code == 200
    telegram.wait_for_calls(tg.path("answerCallbackQuery"), count=1, timeout=REPLY_TIMEOUT)
    answers = [
        call.fields()
        for call in telegram.calls_to(tg.path("answerCallbackQuery"))
        if call.fields()["callback_query_id"] == click["callback_query"]["id"]
    ]
    assert len(answers) == 1 and "text" not in answers[0]
    declined = wait_for(telegram, chat, 3)[-1]
    assert declined["text"].startswith(DECLINED)
    [edited] = tg.sent(telegram, chat, method="editMessageText")
    assert edited["message_id"] == str(click["callback_query"]["message"]["message_id"])
    assert edited["text"].endswith("<i>✓ No thanks</i>") and "reply_markup" not in edited
    assert [e["text"] for e in events(server, chat, 3)][-1] == "/deny"


def test_a_long_payload_button_works_and_an_unknown_key_gets_a_notice(
    server: RasaServer, telegram: FakePlatform, chat: int
):
    long_payload = '/thank{"attachment_kind": "' + "a very long note " * 6 + '"}'
    # The key the channel would have put on the button when it sent it (same file).
    store = ButtonPayloads(server.workdir / "channel_deliveries.db")
    key = store.callback_data_sync(long_payload)
    assert key.startswith(KEY_PREFIX)
    assert post(server, tg.callback_query(chat, key)).status_code == 200
    # The click reaches Rasa as the stored payload. (The bot never offered this button,
    # so Rasa reads it as text: tests/security/test_platform_text_is_text.py.)
    assert events(server, chat, 1)[0]["text"] == long_payload

    unknown = tg.callback_query(chat, KEY_PREFIX + "x" * 32)
    assert post(server, unknown).status_code == 200
    query_id = unknown["callback_query"]["id"]
    deadline = time.monotonic() + REPLY_TIMEOUT
    while time.monotonic() < deadline:
        answers = [
            call.fields()
            for call in telegram.calls_to(tg.path("answerCallbackQuery"))
            if call.fields()["callback_query_id"] == query_id
        ]
        if answers:
            break
        time.sleep(0.1)
    assert answers and "no longer available" in answers[0]["text"]
    time.sleep(1.0)
    assert len(events(server, chat)) == 1, "an unknown key is not sent to the bot"


# ------------------------------------------------------------- contract
def test_requests_without_the_right_secret_are_refused_unprocessed(
    server: RasaServer, telegram: FakePlatform, chat: int
):
    forged = tg.text_message(chat, "hello")
    missing = post(server, forged, secret=None)
    assert missing.status_code == 401 and "Secret-Token" in missing.json()["error"]
    for wrong in ("not-the-secret", tg.SECRET + "x", tg.SECRET.upper()):
        refused = post(server, forged, secret=wrong)
        assert refused.status_code == 403, refused.text
    # Refused before anything else: even a malformed body gets 401/403, not 400.
    assert post(server, b"{not json", secret="wrong").status_code == 403
    # The genuine update with the same id afterwards is the first one the channel saw.
    assert post(server, forged).json() == {"ok": True}
    wait_for(telegram, chat, 1)
    time.sleep(1.0)
    assert len(tg.sent(telegram, chat)) == 1
    assert len(events(server, chat, 1)) == 1


@pytest.mark.parametrize(
    "data, content_type, status, reason",
    [
        (
            b'{"update_id": 1, "message": {"text": "WHISPER',
            "application/json",
            400,
            "not valid JSON",
        ),
        (b"update_id=1&text=WHISPER", "application/x-www-form-urlencoded", 415, "content type"),
        (b'{"text": "WHISPER"}', "text/plain", 415, "content type"),
        (
            b'{"update_id": 1, "message": {"text": "WHISPER \xff"}}',
            "application/json",
            400,
            "UTF-8",
        ),
        (b'["WHISPER"]', "application/json", 400, "expected an object"),
        (b'{"message": {"text": "WHISPER"}}', "application/json", 400, "update_id"),
        (
            b'{"update_id": 5, "message": {"text": "WHISPER"}}',
            "application/json",
            400,
            "not a Telegram Update",
        ),
    ],
)
def test_malformed_requests_get_a_clear_4xx_and_the_server_keeps_serving(
    server: RasaServer, data: bytes, content_type: str, status: int, reason: str
):
    response = post(server, data, content_type=content_type)
    assert response.status_code == status, response.text
    assert reason in response.json()["error"]
    assert requests.get(f"{server.url}/webhooks/telegram/", timeout=10).json() == {"status": "ok"}
    log = server.log()
    assert f"telegram webhook: rejected with {status}" in log
    assert "WHISPER" not in log, "no customer text in the log"


def test_a_body_over_the_routes_limit_is_refused_and_the_server_keeps_serving(
    server: RasaServer,
):
    data = b'{"update_id": 5, "message": {"text": "WHISPER", "pad": "' + b"x" * 300_000 + b'"}}'
    response = post(server, data)
    assert response.status_code == 413
    assert "WHISPER" not in response.text
    assert requests.get(f"{server.url}/webhooks/telegram/", timeout=10).json() == {"status": "ok"}
    assert "WHISPER" not in server.log()


def test_updates_to_ignore_are_acknowledged_without_a_reply(server: RasaServer, chat: int):
    edited = tg.text_message(chat, "where is my order?")
    edited["edited_message"] = {**edited.pop("message"), "edit_date": int(time.time())}
    joined = tg.message(chat, new_chat_members=[tg.customer(chat + 1)])
    for update in (edited, joined, {"update_id": tg.next_id(), "poll_answer": None}):
        response = post(server, update)
        assert response.status_code == 200 and response.json()["ignored"] is True
    assert events(server, chat) == []


def test_a_photo_is_received_and_a_sticker_politely_declined(
    server: RasaServer, telegram: FakePlatform, chat: int
):
    photo = tg.message(chat, photo=tg.photo(file_id="DAMAGED"), caption="thank you")
    assert post(server, photo).status_code == 200
    received, welcome = wait_for(telegram, chat, 2)
    assert received["text"].startswith("Thanks, I've received your photo.")
    assert welcome["text"].startswith(WELCOME)
    first = events(server, chat, 2)[0]
    [attachment] = first["metadata"]["attachments"]
    assert attachment["file_id"] == "DAMAGED_1280" and attachment["mime_type"] == "image/jpeg"
    sticker = {
        "width": 512,
        "height": 512,
        "emoji": "👍",
        "is_animated": False,
        "is_video": False,
        "type": "regular",
        "file_id": "CAACAgIAAxkBAAEL",
        "file_unique_id": "AgADtw",
        "file_size": 20000,
    }
    assert post(server, tg.message(chat, sticker=sticker)).status_code == 200
    declined = wait_for(telegram, chat, 3)[-1]
    assert declined["text"].startswith("Thanks, but I can't open a sticker here.")


def test_flood_control_and_unavailable_are_retried(
    server: RasaServer, telegram: FakePlatform, chat: int
):
    """What Telegram did not act on is sent again; a 500, 502 or a timeout may have been
    sent and is not (tests/security/test_duplicate_sends.py)."""
    telegram.api.fail_next(chat, tg.flood(seconds=1), tg.server_error(status=503))  # type: ignore[attr-defined]
    say(server, chat, "hello")
    attempts = wait_for(telegram, chat, 3)
    assert len({a["text"] for a in attempts}) == 1 and attempts[-1]["text"].startswith(GREETING)
    arrivals = telegram.api.arrivals[str(chat)]  # type: ignore[attr-defined]
    assert arrivals[1] - arrivals[0] >= 0.9, "Telegram's retry_after of 1 s was honoured"
    assert len(events(server, chat, 1)) == 1


def test_the_bot_can_start_a_conversation_through_the_channel(
    server: RasaServer, telegram: FakePlatform, chat: int
):
    trigger_greet(server, f"telegram:{chat}", output_channel="telegram")
    [reply] = wait_for(telegram, chat, 1)
    assert reply["text"].startswith(GREETING)


def test_the_http_api_cannot_reach_a_chat_through_another_channels_conversation(
    server: RasaServer, telegram: FakePlatform, chat: int
):
    before = len(telegram.calls)
    response = server.api(
        "POST",
        f"/conversations/rest:{chat}/trigger_intent",
        params={"output_channel": "telegram"},
        json={"name": "greet"},
    )
    assert response.status_code == 200, response.text
    time.sleep(2.0)
    assert len(telegram.calls) == before, "nothing was sent to Telegram"
    deadline = time.monotonic() + 10
    while "telegram: reply not sent" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "telegram: reply not sent: a conversation of channel 'rest'" in server.log()


# ---------------------------------------------- duplicates (restarts: last)
def test_a_redelivered_update_gets_one_reply_also_after_a_restart(
    server: RasaServer, telegram: FakePlatform, chat: int
):
    update = tg.text_message(chat, "hello")
    answers: List[Dict[str, Any]] = []

    def deliver() -> None:
        answers.append(post(server, update).json())

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(a.get("duplicate", False) for a in answers) == [False, True, True]
    say(server, chat, "thank you so much")
    greeting, welcome = wait_for(telegram, chat, 2)
    assert greeting["text"].startswith(GREETING) and welcome["text"].startswith(WELCOME)

    server.restart()
    assert post(server, update).json() == {"ok": True, "duplicate": True}
    say(server, chat, "hello")
    replies = wait_for(telegram, chat, 3)
    time.sleep(1.0)
    assert len(tg.sent(telegram, chat)) == 3 and replies[-1]["text"].startswith(GREETING)
    texts = [e["text"] for e in events(server, chat, 3)]
    assert texts == ["hello", "thank you so much", "hello"]
    assert tg.TOKEN not in server.log(), "httpx must not log Bot API URLs (they hold the token)"
