"""The Slack channel without a Rasa server: verification, settings, parsing, formatting,
and the output channel against a fake Slack Web API (real slack_sdk client)."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from channels.attachments import INTENT
from channels.delivery_log import DeliveryLog
from channels.slack import SlackInput
from channels.slack_config import SlackConfig, SlackConfigError, SlackRequestVerifier
from channels.slack_format import (
    TEXT_LIMIT,
    button_blocks,
    escape_mrkdwn,
    plain_text,
    split_mrkdwn,
    with_choice_shown,
)
from channels.slack_output import SlackBot
from channels.webhook_guard import WebhookRejected
from tests.channels.slack_payloads import (
    BOT_USER,
    SECRET,
    TOKEN,
    block_actions,
    event_request,
    message_event,
)
from tests.channels.webhook_calls import posted_together, slow_first_call, webhook_request
from tests.fake_platform import FakePlatform

NOW = 1_700_000_000.0
OK = {"ok": True, "channel": "D0DIRECT01", "ts": "1700000000.000300"}


# ------------------------------------------------------------- verification
def sign(body: str, timestamp: int, secret: str = SECRET) -> Dict[str, str]:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(timestamp), body=body)
    assert signature
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": signature}


@pytest.fixture
def verifier() -> SlackRequestVerifier:
    return SlackRequestVerifier(SECRET, clock=lambda: NOW)


def test_a_request_signed_now_is_accepted(verifier: SlackRequestVerifier):
    verifier.verify('{"type":"event_callback"}', sign('{"type":"event_callback"}', int(NOW)))
    # Header names are case-insensitive, as Slack's proxies vary them.
    lowered = {k.lower(): v for k, v in sign("x", int(NOW) - 299).items()}
    verifier.verify("x", lowered)


@pytest.mark.parametrize(
    "headers, reason",
    [
        ({}, "not signed"),
        ({"X-Slack-Request-Timestamp": str(int(NOW))}, "not signed"),
        ({"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"}, "not a number"),
        (sign("body", int(NOW) - 301), "5 minutes"),
        (sign("body", int(NOW) + 301), "5 minutes"),
        (sign("body", int(NOW), secret="not-the-secret"), "does not match"),
        (sign("other body", int(NOW)), "does not match"),
    ],
    ids=["unsigned", "no-signature", "bad-timestamp", "stale", "future", "forged", "tampered"],
)
def test_forged_unsigned_and_stale_requests_are_401(
    verifier: SlackRequestVerifier, headers: Dict[str, str], reason: str
):
    with pytest.raises(WebhookRejected) as error:
        verifier.verify("body", headers)
    assert error.value.status == 401
    assert reason in error.value.reason
    assert "body" not in error.value.reason


def test_the_clock_decides_staleness():
    now = [NOW]
    verifier = SlackRequestVerifier(SECRET, clock=lambda: now[0])
    headers = sign("b", int(NOW))
    verifier.verify("b", headers)
    now[0] += 5 * 60 + 1
    with pytest.raises(WebhookRejected):
        verifier.verify("b", headers)


# ----------------------------------------------------------------- settings
def config(**extra: Any) -> SlackConfig:
    return SlackConfig.from_credentials(
        {"slack_token": TOKEN, "slack_signing_secret": SECRET, **extra}
    )


@pytest.mark.parametrize("missing", ["slack_token", "slack_signing_secret"])
def test_a_missing_credential_names_the_key_and_the_channel(missing: str):
    given = {"slack_token": TOKEN, "slack_signing_secret": SECRET}
    given[missing] = ""
    with pytest.raises(SlackConfigError) as error:
        SlackConfig.from_credentials(given)
    assert missing in str(error.value) and "channels.slack.SlackInput" in str(error.value)
    with pytest.raises(SlackConfigError):
        SlackConfig.from_credentials(None)


def test_unknown_keys_and_wrong_types_stop_the_server():
    with pytest.raises(SlackConfigError, match="use_thread.*unknown key"):
        config(use_thread=True)
    with pytest.raises(SlackConfigError, match="use_threads.*true or false"):
        config(use_threads="yes")
    with pytest.raises(SlackConfigError, match="conversation_granularity"):
        config(conversation_granularity="team")
    with pytest.raises(SlackConfigError, match="dedup_window_seconds"):
        config(dedup_window_seconds=0)
    with pytest.raises(SlackConfigError, match="rate_limits.conversations`: unknown key"):
        config(rate_limits={"conversations": "5/minute"})
    with pytest.raises(SlackConfigError, match="rate_limits.conversation`.*30/minute"):
        config(rate_limits={"conversation": "lots"})
    with pytest.raises(SlackConfigError, match="rate_limits`: expected a mapping"):
        config(rate_limits="30/minute")


def test_the_conversation_rate_defaults_to_30_a_minute_and_can_be_off():
    assert str(config().conversation_rate) == "30/minute"
    assert str(config(rate_limits={"conversation": "5/second"}).conversation_rate) == "5/second"
    assert config(rate_limits={"conversation": "off"}).conversation_rate is None


def test_defaults_and_the_stock_channels_keys(caplog: pytest.LogCaptureFixture):
    plain = config()
    assert plain.conversation_granularity == "sender"
    assert plain.api_url == "https://slack.com/api/"
    assert plain.update_clicked_message and not plain.use_threads
    with caplog.at_level(logging.WARNING):
        stock = config(
            use_threads=True,
            slack_channel="C0SUPPORT",
            proxy=None,
            errors_ignore_retry=["http_timeout"],
            slack_retry_number_header="x-slack-retry-num",
        )
    assert stock.conversation_granularity == "thread", "threads keep one conversation each"
    assert stock.slack_channel == "C0SUPPORT"
    assert "errors_ignore_retry" in caplog.text
    assert config(api_url="http://127.0.0.1:9/api").api_url == "http://127.0.0.1:9/api/"


# ----------------------------------------------------------------- formatting
def test_mrkdwn_control_characters_are_escaped_and_formatting_kept():
    assert escape_mrkdwn("*Tom & Jerry* <!channel> a>b") == (
        "*Tom &amp; Jerry* &lt;!channel&gt; a&gt;b"
    )


def test_long_text_splits_under_the_limit_without_breaking_words_or_entities():
    sentence = "Refunds & returns <within 30 days> are free for members. "
    text = sentence * 200  # about 11,600 characters, 13,000 once escaped
    pieces = split_mrkdwn(text)
    assert len(pieces) >= 4
    assert all(len(piece) <= TEXT_LIMIT for piece in pieces)
    words = [w for piece in pieces for w in piece.split()]
    assert words == escape_mrkdwn(text).split(), "no word is cut or lost"
    assert all(not re.search(r"&[a-z]*$", piece) for piece in pieces), "no entity cut"
    assert split_mrkdwn("   ") == []


def test_buttons_become_actions_blocks_within_slacks_limits():
    buttons = [{"title": f"Option {i}", "payload": f'/choose{{"n": {i}}}'} for i in range(30)]
    buttons.append({"title": "x" * 100, "payload": "/affirm"})
    buttons.append({"title": "Too long", "payload": "/" + "p" * 2001})
    buttons.append({"title": "Docs", "url": "https://example.com/help"})
    blocks = button_blocks(buttons)
    assert [b["type"] for b in blocks] == ["actions", "actions"]
    elements = [e for b in blocks for e in b["elements"]]
    assert len(blocks[0]["elements"]) == 25
    assert len(elements) == 32, "the button whose payload Slack cannot hold is left out"
    assert elements[0]["value"] == '/choose{"n": 0}'
    assert len(elements[30]["text"]["text"]) == 75 and elements[30]["text"]["text"].endswith("…")
    assert elements[31]["url"] == "https://example.com/help" and "value" not in elements[31]
    assert len({e["action_id"] for e in elements}) == len(elements)


def test_the_clicked_message_shows_the_choice_instead_of_buttons():
    blocks = block_actions("/affirm", "Yes, connect me")["message"]["blocks"]
    shown = with_choice_shown(blocks, "Yes <now>")
    assert [b["type"] for b in shown] == ["section", "context"]
    assert shown[1]["elements"][0]["text"] == "You chose: *Yes &lt;now&gt;*"
    odd = with_choice_shown(["x", {"type": "actions", "elements": "y"}], "Yes")  # type: ignore
    assert odd[-1]["type"] == "context", "odd blocks from a payload do not crash the update"


def test_incoming_markup_is_turned_into_plain_text():
    text = (
        f"<@{BOT_USER}> my order &amp; refund &lt;3 <https://shop.example/o/1|order 1> "
        "<mailto:a@b.c|a@b.c> <#C123|support> <@U0OTHER> <!here>"
    )
    assert plain_text(text, remove_users=[BOT_USER]) == (
        "my order & refund <3 order 1 a@b.c #support <@U0OTHER>"
    )
    assert plain_text("&amp;lt;") == "&lt;", "typed entities are unescaped once only"


# -------------------------------------------------------------------- parsing
def channel(tmp_path: Path, **extra: Any) -> SlackInput:
    return SlackInput(config(dedup_db=str(tmp_path / "d.db"), **extra))


def test_a_direct_message_is_one_message_for_the_sender(tmp_path: Path):
    envelope = message_event(f"<@{BOT_USER}> hello", event_id="Ev1")
    incoming = channel(tmp_path).events.event_message(envelope)
    assert incoming is not None
    assert incoming.sender_id == "slack:U0CUSTOMER"
    assert incoming.channel == "D0DIRECT01" and incoming.thread_ts is None
    assert incoming.delivery_id == "Ev1"
    [said] = incoming.messages
    assert said.text == "hello" and said.parse_data is None
    assert said.metadata == {"out_channel": "D0DIRECT01", "thread_id": None, "users": [BOT_USER]}


@pytest.mark.parametrize(
    "extra",
    [
        {"bot_id": "B0BOT0001"},
        {"subtype": "bot_message"},
        {"subtype": "message_changed"},
        {"subtype": "channel_join"},
        {"user": BOT_USER},
        {"user": None},
        {"user": ""},
        {"event_type": "reaction_added"},
    ],
    ids=[
        "bot_id",
        "bot_message",
        "edit",
        "join",
        "own-user",
        "no-user",
        "empty-user",
        "other-event",
    ],
)
def test_the_bots_own_messages_and_non_messages_are_ignored(tmp_path: Path, extra: Dict):
    assert channel(tmp_path).events.event_message(message_event("hello", **extra)) is None


def test_channel_messages_are_answered_only_when_meant_for_the_bot(tmp_path: Path):
    slack = channel(tmp_path, slack_channel="C0SUPPORT")
    in_general = message_event("hello", channel="C0GENERAL", channel_type="channel")
    assert slack.events.event_message(in_general) is None
    in_support = message_event("hello", channel="C0SUPPORT", channel_type="channel")
    assert slack.events.event_message(in_support) is not None
    # A mention comes twice (message and app_mention): only the app_mention counts.
    mention_text = f"<@{BOT_USER}> hello"
    as_message = message_event(mention_text, channel="C0SUPPORT", channel_type="channel")
    assert slack.events.event_message(as_message) is None
    as_mention = message_event(mention_text, channel="C0GENERAL", event_type="app_mention")
    incoming = slack.events.event_message(as_mention)
    assert incoming is not None and incoming.messages[0].text == "hello"


def test_threads_answer_in_the_thread_and_keep_a_conversation_per_thread(tmp_path: Path):
    plain = channel(tmp_path)
    in_thread = message_event("hello", channel="C0X", event_type="app_mention", thread_ts="1.5")
    incoming = plain.events.event_message(in_thread)
    assert incoming is not None
    assert incoming.thread_ts == "1.5", "a customer in a thread is answered there"
    assert incoming.sender_id == "slack:U0CUSTOMER", "granularity 'sender' by default"

    threads = channel(tmp_path, use_threads=True)
    top = message_event("hello", channel="C0X", event_type="app_mention", ts="2.5")
    incoming = threads.events.event_message(top)
    assert incoming is not None and incoming.thread_ts == "2.5", "starts a thread"
    assert incoming.sender_id == "slack:U0CUSTOMER_C0X_2.5"
    # The click on a button posted in that thread belongs to the same conversation.
    clicked = block_actions("/affirm", "Yes", channel="C0X", thread_ts="2.5")
    click = threads.events.click_message(clicked)
    assert click is not None and click.sender_id == "slack:U0CUSTOMER_C0X_2.5"
    direct = threads.events.event_message(message_event("hello"))
    assert direct is not None and direct.thread_ts is None, "DMs stay unthreaded"
    assert direct.sender_id == "slack:U0CUSTOMER_D0DIRECT01"


def test_files_become_attachment_messages_then_the_caption(tmp_path: Path):
    files = [
        {
            "id": "F0PHOTO01",
            "name": "broken.jpg",
            "mimetype": "image/jpeg",
            "size": 48213,
            "url_private": "https://files.slack.com/files-pri/T0-F0PHOTO01/broken.jpg",
        }
    ]
    event = message_event("it arrived broken", files=files)
    incoming = channel(tmp_path).events.event_message(event)
    assert incoming is not None
    notice, caption = incoming.messages
    metadata = notice.metadata
    assert notice.text.startswith(f"/{INTENT}") and '"attachment_kind": "photo"' in notice.text
    assert notice.parse_data is not None, "the channel's own notice reaches Rasa parsed"
    assert notice.parse_data["intent"]["name"] == INTENT
    assert caption.text == "it arrived broken" and caption.parse_data is None
    [attachment] = metadata["attachments"]
    assert attachment["kind"] == "image" and attachment["file_id"] == "F0PHOTO01"
    assert attachment["url"].endswith("broken.jpg") and attachment["size"] == 48213
    assert metadata["out_channel"] == "D0DIRECT01"


@pytest.mark.parametrize(
    "event_fields, envelope_fields",
    [
        ({"files": 5}, {}),
        ({"files": [{"id": "F1", "mimetype": 5}]}, {}),
        (
            {"files": [{"id": ["F1"], "name": {"a": 1}, "mimetype": ["image/png"], "size": True}]},
            {},
        ),
        ({}, {"authorizations": 5}),
    ],
    ids=["files-int", "mimetype-int", "file-fields-of-other-types", "authorizations-int"],
)
def test_fields_of_the_wrong_type_are_ignored_not_a_crash(
    tmp_path: Path, event_fields: Dict[str, Any], envelope_fields: Dict[str, Any]
):
    # Found by tests/production/test_fuzz.py: each was a 500 (TypeError, AttributeError).
    envelope = {**message_event("it arrived broken"), **envelope_fields}
    envelope["event"].update(event_fields)
    incoming = channel(tmp_path).events.event_message(envelope)
    assert incoming is not None and incoming.messages[-1].text == "it arrived broken"
    for attachment in incoming.messages[0].metadata.get("attachments", []):
        # Only values of the types Slack documents reach the tracker.
        assert attachment["kind"] == "other" and attachment["mime_type"] is None
        assert all(attachment[key] is None or isinstance(attachment[key], str)
                   for key in ("file_id", "name", "url"))  # fmt: skip
        assert attachment["size"] is None


def test_a_click_is_the_buttons_payload(tmp_path: Path):
    payload = block_actions("/affirm", "Yes, connect me")
    incoming = channel(tmp_path).events.click_message(payload)
    assert incoming is not None
    assert incoming.messages[0].text == "/affirm" and incoming.chosen == "Yes, connect me"
    assert incoming.messages[0].parse_data is None, "a button's value is text for Rasa"
    assert incoming.clicked is not None and incoming.delivery_id.startswith("action:U0CUSTOMER:")
    link = block_actions("/x", "Docs")
    del link["actions"][0]["value"]
    assert channel(tmp_path).events.click_message(link) is None, "a link button says nothing"
    unchanged = channel(tmp_path, update_clicked_message=False)
    assert unchanged.events.click_message(payload).clicked is None


@pytest.mark.parametrize(
    "broken",
    [
        lambda p: p.update(actions=[]),
        lambda p: p.update(user="U0CUSTOMER"),
        lambda p: (p.pop("channel"), p.pop("container")),
    ],
    ids=["no-actions", "user-not-object", "no-channel"],
)
def test_malformed_clicks_are_400(tmp_path: Path, broken: Callable[[Dict], Any]):
    payload = block_actions("/affirm", "Yes")
    broken(payload)
    with pytest.raises(WebhookRejected) as error:
        channel(tmp_path).events.click_message(payload)
    assert error.value.status == 400


def test_an_event_without_id_or_event_is_400(tmp_path: Path):
    envelope = message_event("hello")
    del envelope["event_id"]
    with pytest.raises(WebhookRejected, match="event_id"):
        channel(tmp_path).events.event_message(envelope)
    with pytest.raises(WebhookRejected, match="event"):
        channel(tmp_path).events.event_message({**message_event("hi"), "event": "text"})


@pytest.mark.parametrize(
    "field, value",
    [
        ("user", {"id": "U1"}),
        ("text", ["hello"]),
        ("files", "F1"),
        ("files", [None, 3]),
        ("thread_ts", {"ts": 1}),
        ("channel", None),
        ("subtype", {"x": 1}),
    ],
)
def test_odd_field_types_are_ignored_or_400_never_a_crash(tmp_path: Path, field: str, value: Any):
    envelope = message_event("hello")
    envelope["event"][field] = value
    try:
        channel(tmp_path).events.event_message(envelope)
    except WebhookRejected as error:
        assert error.status == 400
    click = block_actions("/affirm", "Yes")
    click["message"] = value
    click["container"] = value
    try:
        channel(tmp_path).events.click_message(click)
    except WebhookRejected as error:
        assert error.status == 400


def test_one_conversation_is_handled_in_order_and_failures_are_contained(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    slack = channel(tmp_path)
    seen: List[str] = []

    async def on_new_message(message: Any) -> None:
        # Early messages take longest: without the per-conversation lock they would finish last.
        await asyncio.sleep(0.05 if message.text.endswith("0") else 0.0)
        seen.append(f"{message.sender_id}:{message.text}")
        if message.text == "boom":
            raise RuntimeError("model crashed")

    async def run() -> None:
        for index in range(4):
            for user in ("U0A", "U0B"):
                text = "boom" if (user, index) == ("U0B", 1) else f"m{index}"
                incoming = slack.events.event_message(message_event(text, user=user))
                assert incoming is not None
                slack._schedule(incoming, on_new_message)
        while slack._tasks:
            await asyncio.sleep(0.01)
        await slack.close()

    with caplog.at_level(logging.ERROR):
        asyncio.run(asyncio.wait_for(run(), 30))
    assert [s for s in seen if s.startswith("slack:U0A")] == [f"slack:U0A:m{i}" for i in range(4)]
    assert [s.removeprefix("slack:") for s in seen if s.startswith("slack:U0B")] == [
        "U0B:m0",
        "U0B:boom",
        "U0B:m2",
        "U0B:m3",
    ]
    assert "handling delivery" in caplog.text and not slack._conversations
    assert "model crashed" not in caplog.text, "no traceback (it may quote the customer)"


def test_one_conversations_events_reach_the_bot_in_arrival_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Slack posts events over several connections: a slow database for the first one
    (its de-duplication) does not let the second overtake it."""
    slow_first_call(monkeypatch, DeliveryLog, "first_time_sync")
    requests = [webhook_request(*event_request(message_event(t))) for t in ("first", "second")]
    assert posted_together(channel(tmp_path), requests) == ["first", "second"]


# ------------------------------------------------------- output against a fake
def send(fake: FakePlatform, action: Callable[[SlackBot], Any], *, thread: Any = None) -> None:
    async def run() -> None:
        client = AsyncWebClient(token=TOKEN, base_url=f"{fake.url}/api/", retry_handlers=[])
        await action(SlackBot(client, slack_channel="D0DIRECT01", thread_id=thread))

    asyncio.run(asyncio.wait_for(run(), 60))


def posted(fake: FakePlatform) -> List[Dict[str, Any]]:
    return [call.fields() for call in fake.calls_to("/api/chat.postMessage")]


def test_long_replies_are_posted_in_pieces_in_order(slack_api: FakePlatform):
    slack_api.expect("POST", "/api/chat.postMessage", OK)
    text = " ".join(f"word{i}" for i in range(2000))  # about 15,000 characters
    send(slack_api, lambda bot: bot.send_text_message("slack:U0CUSTOMER", text))
    messages = posted(slack_api)
    assert len(messages) == 6
    assert all(len(m["text"]) <= TEXT_LIMIT and m["channel"] == "D0DIRECT01" for m in messages)
    assert " ".join(m["text"] for m in messages) == text
    call = slack_api.calls_to("/api/chat.postMessage")[0]
    assert call.headers["authorization"] == f"Bearer {TOKEN}"


def test_buttons_image_and_thread_in_block_kit(slack_api: FakePlatform):
    slack_api.expect("POST", "/api/chat.postMessage", OK)
    buttons = [
        {"title": "Yes, connect me", "payload": "/affirm"},
        {"title": "No thanks", "payload": "/deny"},
    ]

    async def replies(bot: SlackBot) -> None:
        await bot.send_text_with_buttons("slack:U0CUSTOMER", "Connect you <now>?", buttons)
        await bot.send_image_url("slack:U0CUSTOMER", "https://example.com/label.png")

    send(slack_api, replies, thread="1700000000.000100")
    question, image = posted(slack_api)
    assert question["text"] == "Connect you &lt;now&gt;?"
    assert question["thread_ts"] == "1700000000.000100"
    section, actions = question["blocks"]
    assert section["text"] == {"type": "mrkdwn", "text": "Connect you &lt;now&gt;?"}
    assert [(e["text"]["text"], e["value"]) for e in actions["elements"]] == [
        ("Yes, connect me", "/affirm"),
        ("No thanks", "/deny"),
    ]
    assert image["blocks"] == [
        {
            "type": "image",
            "image_url": "https://example.com/label.png",
            "alt_text": "image from the assistant",
        }
    ]


def test_429_and_503_are_retried_until_slack_takes_the_message(slack_api: FakePlatform):
    slack_api.expect(
        "POST",
        "/api/chat.postMessage",
        (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}),
        times=1,
    )
    slack_api.expect(
        "POST", "/api/chat.postMessage", (503, "<html>upstream busy</html>", {}), times=1
    )
    slack_api.expect("POST", "/api/chat.postMessage", OK, times=1)
    send(slack_api, lambda bot: bot.send_text_message("slack:U0CUSTOMER", "hello"))
    calls = slack_api.calls_to("/api/chat.postMessage")
    assert len(calls) == 3 and all(c.fields()["text"] == "hello" for c in calls)


def test_a_500_may_have_posted_and_is_not_posted_again(
    slack_api: FakePlatform, caplog: pytest.LogCaptureFixture
):
    slack_api.expect("POST", "/api/chat.postMessage", (500, {"ok": False}, {}), times=1)
    with caplog.at_level(logging.ERROR):
        send(slack_api, lambda bot: bot.send_text_message("slack:U0CUSTOMER", "order 42"))
    assert len(slack_api.calls_to("/api/chat.postMessage")) == 1
    assert "possibly undelivered: HTTP 500" in caplog.text and "order 42" not in caplog.text


def test_without_a_channel_a_reply_goes_where_the_conversation_is(slack_api: FakePlatform):
    slack_api.expect("POST", "/api/chat.postMessage", OK)

    async def run() -> None:
        client = AsyncWebClient(token=TOKEN, base_url=f"{slack_api.url}/api/", retry_handlers=[])
        bot = SlackBot(client)
        await bot.send_text_message("slack:U0CUSTOMER", "in the DM")
        await bot.send_text_message("slack:U0CUSTOMER_C0SUPPORT", "in the channel")
        await bot.send_text_message("slack:U0CUSTOMER_C0SUPPORT_1700.5", "in the thread")

    asyncio.run(asyncio.wait_for(run(), 60))
    assert [(m["channel"], m.get("thread_ts"), m["text"]) for m in posted(slack_api)] == [
        ("U0CUSTOMER", None, "in the DM"),
        ("C0SUPPORT", None, "in the channel"),
        ("C0SUPPORT", "1700.5", "in the thread"),
    ]


def test_a_failed_reply_is_logged_without_text_and_does_not_raise(
    slack_api: FakePlatform, caplog: pytest.LogCaptureFixture
):
    slack_api.expect(
        "POST", "/api/chat.postMessage", {"ok": False, "error": "channel_not_found"}, times=1
    )
    slack_api.expect("POST", "/api/chat.postMessage", OK)
    with caplog.at_level(logging.ERROR):
        send(slack_api, lambda bot: bot.send_text_message("slack:U0CUSTOMER", "secret order 42"))
    assert len(slack_api.calls_to("/api/chat.postMessage")) == 1, "a 4xx-like error is final"
    assert "channel_not_found" in caplog.text and "secret order" not in caplog.text


def test_an_unreachable_slack_is_retried_then_given_up(caplog: pytest.LogCaptureFixture):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connections are refused

    async def run() -> None:
        client = AsyncWebClient(
            token=TOKEN, base_url=f"http://127.0.0.1:{port}/api/", retry_handlers=[]
        )
        bot = SlackBot(client, slack_channel="D0DIRECT01")
        await bot.send_text_message("slack:U0CUSTOMER", "hi")

    with caplog.at_level(logging.WARNING):
        asyncio.run(asyncio.wait_for(run(), 60))
    assert "retrying" in caplog.text and "failed after 4 attempt(s)" in caplog.text


def test_the_clicked_message_is_updated(slack_api: FakePlatform):
    slack_api.expect("POST", "/api/chat.update", OK)
    blocks = block_actions("/affirm", "Yes, connect me")["message"]["blocks"]
    send(
        slack_api,
        lambda bot: bot.show_choice("D0DIRECT01", "1.2", blocks, "Would you?", "Yes, connect me"),
    )
    [call] = slack_api.calls_to("/api/chat.update")
    fields = call.fields()
    assert (fields["channel"], fields["ts"]) == ("D0DIRECT01", "1.2")
    assert [b["type"] for b in fields["blocks"]] == ["section", "context"]


def test_a_custom_response_is_a_post_message_body(slack_api: FakePlatform):
    slack_api.expect("POST", "/api/chat.postMessage", OK)
    custom = {"text": "fallback", "blocks": [{"type": "divider"}]}
    send(slack_api, lambda bot: bot.send_custom_json("slack:U0CUSTOMER", custom))
    [message] = posted(slack_api)
    assert message["blocks"] == [{"type": "divider"}] and message["channel"] == "D0DIRECT01"
