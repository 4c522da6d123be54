"""The REST channel over real HTTP: its token, its own conversations, its limits."""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest
import requests
from rasa.core.channels import channel as rasa_channel
from sanic import Sanic

from channels.rest import RestConfig, RestConfigError, RestInput
from tests.sanic_serving import MessageRecorder, serving

TOKEN = "rest-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET_TEXT = "MYCUSTOMERSECRET42"


def rest_app(**settings: Any) -> Sanic:
    app = Sanic(f"rest_test_{len(Sanic._app_registry)}")
    config = RestConfig.from_credentials({"token": TOKEN, **settings})
    rasa_channel.register([RestInput(config)], app, route="/webhooks/")
    return app


@pytest.fixture()
def server() -> Iterator[Tuple[str, MessageRecorder]]:
    recorder = MessageRecorder(reply="hello from the bot")
    limits = {"conversation": "3/minute", "unauthenticated": "50/minute"}
    with serving(rest_app(rate_limits=limits), recorder) as url:
        yield url + "/webhooks/rest/webhook", recorder


def post(url: str, body: Any, headers: Optional[Dict[str, str]] = None) -> requests.Response:
    return requests.post(url, json=body, headers=AUTH if headers is None else headers, timeout=30)


def test_a_message_reaches_the_bot_in_the_rest_conversation_and_the_reply_names_the_sender(
    server: Tuple[str, MessageRecorder],
):
    url, recorder = server
    answer = post(url, {"sender": "+447700900123", "message": "where is my order"})
    assert answer.status_code == 200
    assert answer.json() == [{"recipient_id": "+447700900123", "text": "hello from the bot"}]
    (message,) = recorder.messages
    # Whatever the caller names, the conversation is the REST channel's own.
    assert message.sender_id == "rest:+447700900123"
    assert message.input_channel == "rest"
    assert message.text == "where is my order"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token-0123456789"}, 403),
        ({"Authorization": TOKEN}, 401),
    ],
)
def test_a_caller_without_the_token_is_refused_and_nothing_reaches_the_bot(
    server: Tuple[str, MessageRecorder], headers: Dict[str, str], status: int
):
    url, recorder = server
    answer = post(url, {"sender": "me", "message": "hello"}, headers=headers)
    assert answer.status_code == status
    assert "token" in answer.json()["error"]
    assert recorder.messages == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"sender": "me", "message": "hi", "input_channel": "twilio"}, "input_channel"),
        ({"sender": "me", "message": "hi", "extra": 1}, "unknown field"),
        ({"sender": "a/b", "message": "hi"}, "`sender`"),
        ({"sender": "", "message": "hi"}, "`sender`"),
        ({"sender": "x" * 129, "message": "hi"}, "`sender`"),
        ({"sender": "me", "message": ""}, "`message`"),
        ({"sender": "me", "message": 5}, "`message`"),
        ({"sender": "me", "message": "hi", "metadata": [1]}, "`metadata`"),
        ([SECRET_TEXT], "expected an object"),
    ],
)
def test_malformed_bodies_get_a_400_that_quotes_nothing(
    server: Tuple[str, MessageRecorder], body: Any, says: str, caplog: pytest.LogCaptureFixture
):
    url, recorder = server
    with caplog.at_level(logging.INFO):
        answer = post(url, body)
    assert answer.status_code == 400
    assert says in answer.json()["error"]
    assert SECRET_TEXT not in answer.text and SECRET_TEXT not in caplog.text
    assert recorder.messages == []


def test_stream_is_refused_with_a_reason(server: Tuple[str, MessageRecorder]):
    url, _ = server
    answer = requests.post(
        url + "?stream=true", json={"sender": "me", "message": "hi"}, headers=AUTH, timeout=30
    )
    assert answer.status_code == 400 and "stream" in answer.json()["error"]


def test_a_long_message_is_refused(server: Tuple[str, MessageRecorder]):
    url, _ = server
    answer = post(url, {"sender": "me", "message": "x" * 4001})
    assert answer.status_code == 413


def test_one_conversation_gets_429_with_retry_after_at_its_rate_others_go_on(
    server: Tuple[str, MessageRecorder],
):
    url, recorder = server
    codes = [post(url, {"sender": "busy", "message": f"m{i}"}).status_code for i in range(3)]
    assert codes == [200, 200, 200]
    refused = post(url, {"sender": "busy", "message": "one more"})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) == 20  # 3/minute: one every 20 s
    assert post(url, {"sender": "calm", "message": "hi"}).status_code == 200
    assert [m.text for m in recorder.messages] == ["m0", "m1", "m2", "hi"]


def test_guessing_the_token_gets_429_and_a_caller_with_it_is_not_limited_as_a_whole():
    with serving(rest_app(rate_limits={"unauthenticated": "2/hour"})) as url:
        url += "/webhooks/rest/webhook"
        wrong = {"Authorization": "Bearer wrong-token-0123456789"}
        codes = [post(url, {"sender": "me", "message": "hi"}, wrong).status_code for _ in range(3)]
        many = [post(url, {"sender": f"c{i}", "message": "hi"}).status_code for i in range(40)]
    assert codes == [403, 403, 429]
    assert set(many) == {200}  # one backend, forty customers


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"token": "short"}, "token"),
        ({"token": None}, "token"),
        ({"token": TOKEN, "tokn": "x"}, "tokn"),
        (
            {"token": TOKEN, "rate_limits": {"conversations": "1/second"}},
            "rate_limits.conversations",
        ),
        ({"token": TOKEN, "rate_limits": {"address": "1/second"}}, "rate_limits.address"),
        (
            {"token": TOKEN, "rate_limits": {"unauthenticated": "lots"}},
            "rate_limits.unauthenticated",
        ),
        ({"token": TOKEN, "rate_limits": "1/second"}, "rate_limits"),
        ({"token": TOKEN, "max_body_bytes": 0}, "max_body_bytes"),
    ],
)
def test_bad_settings_stop_the_server_naming_the_key(settings: Dict[str, Any], key: str):
    with pytest.raises(RestConfigError) as error:
        RestConfig.from_credentials(settings)
    assert error.value.key == key
    assert "channels.rest.RestInput" in str(error.value)


def test_limits_can_be_switched_off():
    config = RestConfig.from_credentials(
        {"token": TOKEN, "rate_limits": {"unauthenticated": "off"}}
    )
    assert config.unauthenticated_rate is None
    assert config.conversation_rate is not None
