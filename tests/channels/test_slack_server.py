"""The Slack channel in the real bot: `rasa run` with ``channels.slack.SlackInput`` from
credentials.yml, Slack's signed requests posted to its webhook, and a fake Slack Web API
that records every call and fails the test on any it was not told to expect.

One server serves the module (each start costs half a minute or more); the test that
restarts it runs last. Each test speaks as its own Slack user in its own DM channel, so
its replies and its tracker (``slack:<user>``, read through Rasa's HTTP API with its
token) are its own.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
import requests

from tests.channels.bot_replies import APOLOGY, DECLINED, GREETING, OFFER, WELCOME, rasa_with
from tests.channels.slack_payloads import (
    SECRET,
    TOKEN,
    action_request,
    block_actions,
    event_request,
    message_event,
    signed_headers,
    unique,
)
from tests.fake_platform import Call, FakePlatform, Reply, take_failure_or_wait
from tests.rasa_process import RasaServer

pytestmark = pytest.mark.integration

SUPPORT_CHANNEL = "C0SUPPORT1"
REPLY_TIMEOUT = 90


class SlackApi:
    """chat.postMessage / chat.update answers, with per-channel misbehaviour on demand."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failures: Dict[str, List[Reply]] = {}
        self.slow: Dict[str, float] = {}

    def post_message(self, call: Call) -> Reply:
        channel = str(call.fields().get("channel"))
        failure = take_failure_or_wait(self.lock, self.failures, self.slow, channel)
        if failure is not None:
            return failure
        return 200, {"ok": True, "channel": channel, "ts": f"{time.time():.6f}"}, {}


@pytest.fixture(scope="module")
def slack() -> Any:
    fake = FakePlatform("slack").start()
    api = SlackApi()
    fake.expect("POST", "/api/chat.postMessage", api.post_message)
    fake.expect("POST", "/api/chat.update", {"ok": True})
    fake.api = api  # type: ignore[attr-defined]
    yield fake
    fake.stop()
    fake.assert_no_unexpected_calls()


@pytest.fixture(scope="module")
def server(bot_model: Path, slack: FakePlatform, tmp_path_factory: pytest.TempPathFactory) -> Any:
    workdir = tmp_path_factory.mktemp("slack")
    yield from rasa_with(
        bot_model,
        workdir,
        "channels.slack.SlackInput:\n"
        f'  slack_token: "{TOKEN}"\n'
        f'  slack_signing_secret: "{SECRET}"\n'
        f'  slack_channel: "{SUPPORT_CHANNEL}"\n'
        f'  api_url: "{slack.url}/api/"\n',
    )


@pytest.fixture
def dm() -> Tuple[str, str]:
    """A fresh customer and their DM channel."""
    return unique("U"), unique("D")


def webhook(server: RasaServer, path: str = "webhook") -> str:
    return f"{server.url}/webhooks/slack/{path}"


def post(server: RasaServer, body: bytes, headers: Dict[str, str], **kw: Any) -> requests.Response:
    return requests.post(webhook(server, **kw), data=body, headers=headers, timeout=30)


def say(server: RasaServer, text: str, user: str, channel: str, **extra: Any) -> requests.Response:
    envelope = message_event(text, user=user, channel=channel, **extra)
    response = post(server, *event_request(envelope))
    assert response.status_code == 200, response.text
    return response


def replies(slack: FakePlatform, channel: str) -> List[Dict[str, Any]]:
    return [
        fields
        for fields in (call.fields() for call in slack.calls_to("/api/chat.postMessage"))
        if fields.get("channel") == channel
    ]


def wait_for_replies(
    slack: FakePlatform, channel: str, count: int, timeout: float = REPLY_TIMEOUT
) -> List[Dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = replies(slack, channel)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{count} replies to {channel} expected, got {replies(slack, channel)}")


def wait_for_text(slack: FakePlatform, channel: str, start: str) -> Dict[str, Any]:
    deadline = time.monotonic() + REPLY_TIMEOUT
    while time.monotonic() < deadline:
        for message in replies(slack, channel):
            if str(message.get("text", "")).startswith(start):
                return message
        time.sleep(0.1)
    raise AssertionError(f"no reply starting {start!r} in {channel}: {replies(slack, channel)}")


def conversation(user: str) -> str:
    """The Rasa conversation of a Slack user (granularity ``sender``)."""
    return f"slack:{user}"


def user_texts(server: RasaServer, user: str) -> List[Optional[str]]:
    return [event.get("text") for event in server.user_events(conversation(user))]


def assert_user_texts(server: RasaServer, user: str, expected: List[str]) -> None:
    """The tracker's user messages become ``expected`` (Rasa saves it after the replies)."""
    deadline = time.monotonic() + 30
    while (found := user_texts(server, user)) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert found == expected


def settle(server: RasaServer, slack: FakePlatform, user: str, channel: str) -> None:
    """Send "thanks" and wait for its answer: anything sent before it is processed by then."""
    say(server, "thank you", user, channel)
    wait_for_text(slack, channel, WELCOME)


# ------------------------------------------------------------------ end to end
def test_hello_gets_the_greeting_and_the_webhook_answers_at_once(
    server: RasaServer, slack: FakePlatform, dm: Tuple[str, str]
):
    user, channel = dm
    slack.api.slow[channel] = 4.0  # type: ignore[attr-defined]
    started = time.monotonic()
    response = say(server, "hello", user, channel)
    acknowledged = time.monotonic() - started
    assert response.json() == {"ok": True}
    assert acknowledged < 3, f"Slack needs an answer within 3 s, took {acknowledged:.1f} s"
    [greeting] = wait_for_replies(slack, channel, 1)
    assert greeting["text"].startswith(GREETING)
    assert_user_texts(server, user, ["hello"])


def test_a_complaint_offers_buttons_and_a_click_answers_them(
    server: RasaServer, slack: FakePlatform, dm: Tuple[str, str]
):
    user, channel = dm
    say(server, "this is the worst service I have ever had", user, channel)
    wait_for_text(slack, channel, APOLOGY)
    offer = wait_for_text(slack, channel, OFFER)
    section, actions = offer["blocks"]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    buttons = {e["text"]["text"]: e["value"] for e in actions["elements"]}
    assert actions["type"] == "actions"
    assert buttons == {"Yes, connect me": "/affirm", "No thanks": "/deny"}

    # Slack posts the click as a form with the message that held the buttons.
    payload = block_actions(
        buttons["No thanks"],
        "No thanks",
        user=user,
        channel=channel,
        blocks=offer["blocks"],
    )
    response = post(server, *action_request(payload), path="interactive")
    assert response.status_code == 200 and response.json() == {"ok": True}
    declined = wait_for_text(slack, channel, DECLINED)
    assert "blocks" not in declined
    updates = [c.fields() for c in slack.calls_to("/api/chat.update")]
    [update] = [u for u in updates if u["channel"] == channel]
    assert update["ts"] == payload["message"]["ts"]
    assert [b["type"] for b in update["blocks"]] == ["section", "context"]
    assert "No thanks" in update["blocks"][1]["elements"][0]["text"]
    assert_user_texts(server, user, ["this is the worst service I have ever had", "/deny"])

    # The same click again (a replay within the signature's 5 minutes) changes nothing.
    again = post(server, *action_request(payload))
    assert again.json() == {"ok": True, "duplicate": True}


def test_an_attachment_is_acknowledged_by_kind(
    server: RasaServer, slack: FakePlatform, dm: Tuple[str, str]
):
    user, channel = dm
    photo = {
        "id": unique("F"),
        "name": "damaged.jpg",
        "mimetype": "image/jpeg",
        "size": 48213,
        "url_private": "https://files.slack.com/files-pri/T0/damaged.jpg",
    }
    say(server, "", user, channel, files=[photo])
    reply = wait_for_text(slack, channel, "Thanks, I've received your photo.")
    assert "blocks" not in reply
    archive = {**photo, "id": unique("F"), "name": "x.zip", "mimetype": "application/zip"}
    say(server, "", user, channel, files=[archive])
    wait_for_text(slack, channel, "Thanks, but I can't open a file here.")
    metadata = [e["metadata"] for e in server.user_events(conversation(user), count=2)]
    assert metadata[0]["attachments"][0]["file_id"] == photo["id"]
    assert metadata[0]["attachments"][0]["kind"] == "image"


def test_a_mention_in_a_thread_is_answered_in_that_thread(
    server: RasaServer, slack: FakePlatform, dm: Tuple[str, str]
):
    user, _ = dm
    channel = unique("C")
    root = f"{int(time.time())}.000042"
    envelope = message_event(
        "<@U0BOT0001> hello", user=user, channel=channel, event_type="app_mention", thread_ts=root
    )
    assert post(server, *event_request(envelope)).json() == {"ok": True}
    [greeting] = wait_for_replies(slack, channel, 1)
    assert greeting["thread_ts"] == root and greeting["text"].startswith(GREETING)


def test_retried_deliveries_and_duplicates_get_one_reply(
    server: RasaServer, slack: FakePlatform, dm: Tuple[str, str]
):
    user, channel = dm
    envelope = message_event("hello", user=user, channel=channel)
    assert post(server, *event_request(envelope)).json() == {"ok": True}
    assert post(server, *event_request(envelope)).json()["duplicate"] is True
    for number, reason in [(1, "http_timeout"), (2, "http_error"), (3, "unknown_error")]:
        body, headers = event_request(envelope)
        headers.update({"X-Slack-Retry-Num": str(number), "X-Slack-Retry-Reason": reason})
        assert post(server, body, headers).json()["duplicate"] is True
    settle(server, slack, user, channel)
    texts = [m["text"] for m in replies(slack, channel)]
    assert sum(text.startswith(GREETING) for text in texts) == 1
    assert_user_texts(server, user, ["hello", "thank you"])


def test_a_retry_of_a_delivery_that_never_arrived_is_answered(
    server: RasaServer, slack: FakePlatform, dm: Tuple[str, str]
):
    user, channel = dm
    body, headers = event_request(message_event("hello", user=user, channel=channel))
    headers.update({"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_error"})
    assert post(server, body, headers).json() == {"ok": True}
    wait_for_text(slack, channel, GREETING)


def test_the_bots_own_messages_and_other_channels_are_not_answered(
    server: RasaServer, slack: FakePlatform, dm: Tuple[str, str]
):
    user, channel = dm
    own = [
        message_event(GREETING, user="U0BOT0001", channel=channel, bot_id="B0BOT0001"),
        message_event("edited", user=user, channel=channel, subtype="message_changed"),
        message_event("hello", user="U0BOT0001", channel=channel),
    ]
    general = message_event("hello", user=user, channel="C0GENERAL", channel_type="channel")
    for envelope in [*own, general]:
        assert post(server, *event_request(envelope)).json() == {"ok": True, "ignored": True}
    settle(server, slack, user, channel)
    assert len(replies(slack, channel)) == 1
    assert replies(slack, "C0GENERAL") == []
    assert_user_texts(server, user, ["thank you"])
    # Every message of the configured channel is answered, without a mention.
    support = message_event("hello", user=user, channel=SUPPORT_CHANNEL, channel_type="channel")
    assert post(server, *event_request(support)).json() == {"ok": True}
    wait_for_text(slack, SUPPORT_CHANNEL, GREETING)


def test_replies_are_retried_on_429_and_503(
    server: RasaServer, slack: FakePlatform, dm: Tuple[str, str]
):
    """What Slack did not act on is posted again; a 500, 502 or a timeout may have been
    posted and is not (tests/security/test_duplicate_sends.py)."""
    user, channel = dm
    slack.api.failures[channel] = [  # type: ignore[attr-defined]
        (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}),
        (503, {"ok": False, "error": "service_unavailable"}, {}),
    ]
    say(server, "hello", user, channel)
    attempts = wait_for_replies(slack, channel, 3)
    assert all(a["text"].startswith(GREETING) for a in attempts)
    time.sleep(1)
    assert len(replies(slack, channel)) == 3, "one successful post, no more"


# ---------------------------------------------------------- refused requests
def test_url_verification_is_answered_only_when_signed(server: RasaServer):
    body = b'{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",'
    body += b'"type":"url_verification"}'
    answer = post(server, body, signed_headers(body, "application/json"))
    assert answer.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    unsigned = post(server, body, {"Content-Type": "application/json"})
    assert unsigned.status_code == 401


@pytest.mark.parametrize("how", ["forged", "unsigned", "stale", "tampered", "forged-click"])
def test_forged_unsigned_and_stale_requests_are_refused_unprocessed(
    server: RasaServer, slack: FakePlatform, dm: Tuple[str, str], how: str
):
    user, channel = dm
    envelope = message_event("hello", user=user, channel=channel)
    if how == "forged":
        body, headers = event_request(envelope, secret="guessed-secret")
    elif how == "unsigned":
        body, headers = event_request(envelope)
        del headers["X-Slack-Signature"]
    elif how == "stale":
        body, headers = event_request(envelope, timestamp=int(time.time()) - 6 * 60)
    elif how == "tampered":
        body, headers = event_request(envelope)
        body = body.replace(b"hello", b"hellp")
    else:
        payload = block_actions("/affirm", "Yes", user=user, channel=channel)
        body, headers = action_request(payload, secret="guessed-secret")
    response = post(server, body, headers)
    assert response.status_code == 401
    assert "error" in response.json() and "hello" not in response.text
    # A genuine message from the same customer shows the refused one left no trace.
    settle(server, slack, user, channel)
    assert len(replies(slack, channel)) == 1
    assert_user_texts(server, user, ["thank you"])


@pytest.mark.parametrize(
    "body, content_type, status, reason",
    [
        (b'{"type": "event_callback", ', "application/json", 400, "not valid JSON"),
        (b'["event_callback"]', "application/json", 400, "expected an object"),
        (b'{"type": "event_callback", "event": {}}', "application/json", 400, "event_id"),
        ('{"text": "caf\u00e9"}'.encode("latin-1"), "application/json", 400, "not UTF-8"),
        (b"payload=%7Bnot+json", "application/x-www-form-urlencoded", 400, "not valid JSON"),
        (b"other=1", "application/x-www-form-urlencoded", 400, "payload"),
        (b"hello", "text/plain", 415, "content type"),
    ],
    ids=["broken", "array", "no-id", "latin-1", "bad-payload", "no-payload", "text"],
)
def test_malformed_requests_get_a_clear_4xx_and_the_server_keeps_serving(
    server: RasaServer, body: bytes, content_type: str, status: int, reason: str
):
    response = post(server, body, signed_headers(body, content_type))
    assert response.status_code == status
    assert reason in response.json()["error"]
    assert "café".encode("latin-1") not in response.content and "xxxx" not in response.text
    assert requests.get(f"{server.url}/webhooks/slack/", timeout=10).json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["webhook", "interactive"])
def test_a_body_over_the_routes_limit_is_refused_and_the_server_keeps_serving(
    server: RasaServer, path: str
):
    body = b'{"pad": "' + b"x" * 300_000 + b'"}'
    response = post(server, body, signed_headers(body, "application/json"), path=path)
    assert response.status_code == 413
    assert "xxxx" not in response.text
    assert requests.get(f"{server.url}/webhooks/slack/", timeout=10).json() == {"status": "ok"}


def test_refusals_are_logged_without_customer_text(server: RasaServer):
    body, headers = event_request(message_event("my card number is 4111"), secret="wrong")
    post(server, body, headers)
    deadline = time.monotonic() + 10
    while "rejected with 401" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "slack webhook: rejected with 401" in server.log()
    assert "4111" not in server.log()


# ------------------------------------------------------------ last: a restart
def test_a_duplicate_after_a_restart_is_still_dropped(
    server: RasaServer, slack: FakePlatform, dm: Tuple[str, str]
):
    user, channel = dm
    envelope = message_event("hello", user=user, channel=channel)
    assert post(server, *event_request(envelope)).json() == {"ok": True}
    wait_for_text(slack, channel, GREETING)
    server.restart()
    body, headers = event_request(envelope)
    headers.update({"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert post(server, body, headers).json()["duplicate"] is True
    assert post(server, *event_request(envelope)).json()["duplicate"] is True
    settle(server, slack, user, channel)
    assert sum(m["text"].startswith(GREETING) for m in replies(slack, channel)) == 1
    assert_user_texts(server, user, ["hello", "thank you"])
