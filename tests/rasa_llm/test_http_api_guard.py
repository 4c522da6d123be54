"""The HTTP API guard on apps made by Rasa's own rasa.core.run.configure_app, served by
Sanic on a loopback port and asked over HTTP.

No model is loaded: the guard answers before Rasa's check for a loaded agent, so a
request it lets through meets that check (409) exactly as on an app without the guard.
The REST channel hands its messages to :class:`MessageRecorder`, in place of the bot.
Each bug's 500 on a real `rasa run`, and that it is gone, is
tests/production/test_fuzz.py's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import jwt
import pytest
import requests
from rasa.core.channels.rest import RestInput
from sanic import Sanic

from rasa_llm.server import http_api_guard as guard
from rasa_llm.server.http_api_checks import MAX_DEPTH, nested_deeper_than
from rasa_llm.server.http_api_guard import HttpApiGuardError, guard_app, install_http_api_guard
from tests.sanic_serving import serving

MARK = "CUSTOMERSAID7Q"  # in every text a customer could have written
REST = "/webhooks/rest/webhook"
ERROR_KEYS = {"version", "status", "message", "reason", "details", "help", "code"}
PARSE_DATA = {"intent": {"name": "greet", "confidence": 1.0}, "entities": []}


@pytest.fixture(scope="module")
def rasa_run() -> Iterator[Tuple[Callable[..., Sanic], Callable[..., Sanic]]]:
    """(Rasa's own configure_app, unguarded; the one install_http_api_guard() wraps).

    rasa_llm guards every Rasa app made in a process that imported it
    (rasa_llm.server.server_guards): the unguarded one is made with Sanic's own app
    registration. These apps have no API token (the API token is tested in
    tests/security/); torch's thread count, which a Rasa server sets, is restored.
    """
    import rasa.core.run
    import torch

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        original = rasa.core.run.configure_app
        patch.setattr(rasa.core.run, "configure_app", original)
        patch.setattr(Sanic, "test_mode", True)  # one app name, many apps
        patch.setenv("RASA_LLM_ALLOW_OPEN_API", "true")
        install_http_api_guard()
        unguarded_registration = Sanic.__dict__["register_app"].__func__.__wrapped__

        def unguarded(*args: Any, **kwargs: Any) -> Sanic:
            with pytest.MonkeyPatch.context() as inner:
                inner.setattr(Sanic, "register_app", classmethod(unguarded_registration))
                return original(*args, **kwargs)

        yield unguarded, rasa.core.run.configure_app
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def guarded(rasa_run: Any) -> Iterator[str]:
    with serving(rasa_run[1]([RestInput()], enable_api=True)) as url:
        yield url


@pytest.fixture(scope="module")
def unguarded(rasa_run: Any) -> Iterator[str]:
    with serving(rasa_run[0]([RestInput()], enable_api=True)) as url:
        yield url


def post(url: str, path: str, body: Any, method: str = "POST", **kw: Any) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.request(method, url + path, data=data, timeout=30, **kw)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# (method, path, body, the parameter named, what the message says)
MALFORMED = [
    ("POST", REST, b"[]", "", "The body is an array, not a JSON object"),
    ("POST", REST, b"", "", "The body is empty"),
    ("POST", REST, f'"{MARK}"'.encode(), "", "The body is a string, not a JSON object"),
    ("POST", REST, b'{"message": "' + MARK.encode(), "", "The body is not valid JSON"),
    ("POST", REST, {"sender": "s", "message": 5}, "message", "'message' is a number"),
    ("POST", REST, {"sender": "s"}, "message", "'message' is missing"),
    ("POST", REST, {"sender": "s", "message": MARK, "metadata": True}, "metadata",
     "'metadata' is a boolean; send an object"),
    ("POST", "/model/parse", {"text": 5}, "text", "'text' is a number; send the text"),
    ("POST", "/model/parse", {"message": MARK}, "text", "'text' is missing"),
    ("POST", "/model/parse", {"text": []}, "text", "'text' is an array"),
    ("POST", "/model/parse", b"[]", "", "not a JSON object"),
    ("POST", "/model/parse", MARK.encode(), "", "not valid JSON"),
    ("POST", "/conversations/c1/messages", b"[]", "", "not a JSON object"),
    ("POST", "/conversations/c1/messages", {"sender": "user", "text": None}, "text",
     "'text' is null; send the message as a string"),
    ("POST", "/conversations/c1/messages", {"sender": "user", "text": 5}, "text",
     "'text' is a number"),
    ("POST", "/conversations/c1/messages", {"sender": MARK, "text": "hi"}, "sender",
     "'sender' must be \"user\""),
    ("POST", "/conversations/c1/messages", {"sender": "user", "text": MARK,
     "parse_data": {"name": MARK}}, "parse_data", "'parse_data' lacks 'intent', 'entities'"),
    ("POST", "/conversations/c1/messages", {"sender": "user", "text": MARK,
     "parse_data": MARK}, "parse_data", "'parse_data' must be an object, not a string"),
    ("POST", "/conversations/c1/trigger_intent", b"[]", "", "not a JSON object"),
    ("POST", "/conversations/c1/trigger_intent", {"name": "greet", "entities": [MARK]},
     "entities", "'entities[0]' must be an object, not a string"),
    ("POST", "/conversations/c1/execute", f'"{MARK}"'.encode(), "", "not a JSON object"),
    ("POST", "/conversations/c1/tracker/events", b"[]", "", "The body holds no event"),
    ("POST", "/conversations/c1/tracker/events", [{"event": "user", "text": MARK}], "0",
     "Event 0 ('user') cannot be read by Rasa (AttributeError)"),
    ("POST", "/conversations/c1/tracker/events", [{"event": "action", "name": "x"},
     {"event": "reminder", "intent": "greet"}], "1", "Event 1 ('reminder') cannot be read"),
    ("POST", "/conversations/c1/tracker/events", [{"event": MARK}], "0",
     "Event 0 has an unknown 'event'; use one of action,"),
    ("POST", "/conversations/c1/tracker/events", [{"event": [MARK]}], "0",
     "Event 0 has an unknown 'event'"),
    ("POST", "/conversations/c1/tracker/events", [{"event": "bot", "text": MARK,
     "timestamp": MARK}], "0", "Event 0, field timestamp, must be a number or null, not a string"),
    ("POST", "/conversations/c1/tracker/events", [{"event": "user", "text": MARK,
     "parse_data": {**PARSE_DATA, "entities": [{"entity": "e", "value": MARK, "start": "0"}]}}],
     "0", "Event 0, field parse_data.entities[0].start, must be an integer"),
    ("POST", "/conversations/c1/tracker/events", b'{"event": "user", "text": "' + MARK.encode()
     + b'", "x": ' + nested(400) + b"}", "", f"more than {MAX_DEPTH} levels deep"),
    ("PUT", "/conversations/c1/tracker/events", {"event": "bot", "text": MARK}, "",
     "send the conversation's events as an array"),
    ("PUT", "/conversations/c1/tracker/events", [{"event": "user", "text": MARK}], "0",
     "Event 0 ('user') cannot be read"),
    ("POST", "/model/predict", [{"event": "bot", "text": MARK, "metadata": MARK}], "0",
     "Event 0, field metadata, must be an object or null"),
    ("POST", "/model/predict", b"[" + nested(900) + b"]", "", "levels deep"),
]  # fmt: skip


@pytest.mark.parametrize("method, path, body, parameter, says", MALFORMED)
def test_a_malformed_request_gets_a_400_in_rasa_s_shape_that_says_what_to_fix(
    guarded: str, caplog: pytest.LogCaptureFixture, method, path, body, parameter, says
):
    with caplog.at_level(logging.INFO):
        response = post(guarded, path, body, method)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert set(answer) == ERROR_KEYS
    assert (answer["status"], answer["reason"], answer["code"]) == ("failure", "BadRequest", 400)
    assert answer["details"] == {"parameter": parameter, "in": "body"}
    assert says in answer["message"]
    assert answer["help"].startswith("https://rasa.com/docs/rasa/")
    # Neither the answer nor the log (Rasa logs the message at error level) quotes it.
    assert MARK not in response.text
    assert answer["message"] in caplog.text
    assert MARK not in caplog.text


# Requests Rasa handles: each meets the same answer with the guard as without it (the
# API's 409 for no model; the REST channel's reply, with the message handed on as sent).
VALID = [
    ("POST", REST, {"sender": "s1", "message": MARK}),
    ("POST", REST, {"sender": 12345, "message": MARK, "metadata": []}),  # Rasa str()s it
    ("POST", REST, {"sender": "s1", "message": "", "metadata": {"page": {"id": [1]}}}),
    ("POST", "/model/parse", {"text": MARK}),
    ("POST", "/model/parse", {"text": [MARK]}),
    ("POST", "/conversations/c1/messages", {"sender": "user", "text": MARK}),
    ("POST", "/conversations/c1/messages", {"sender": "user", "text": None,
                                            "parse_data": PARSE_DATA}),
    ("POST", "/conversations/c1/trigger_intent", {"name": "greet", "entities": {"e": MARK}}),
    ("POST", "/conversations/c1/trigger_intent", {"name": "greet",
                                                  "entities": [{"entity": "e", "value": 1}]}),
    ("POST", "/conversations/c1/trigger_intent", {"name": "greet", "entities": MARK}),
    ("POST", "/conversations/c1/execute", {"name": "utter_greet"}),
    ("POST", "/conversations/c1/tracker/events", {"event": "action", "name": "action_listen"}),
    ("POST", "/conversations/c1/tracker/events", [{"event": "user", "text": MARK,
                                                   "parse_data": PARSE_DATA}]),
    ("PUT", "/conversations/c1/tracker/events", []),
    ("POST", "/model/predict", [{"event": "action", "name": "action_listen"}]),
    ("GET", "/conversations/c1/tracker", None),
]  # fmt: skip


@pytest.mark.parametrize("method, path, body", VALID)
def test_a_request_rasa_handles_gets_the_same_answer_as_without_the_guard(
    guarded: str, unguarded: str, method, path, body
):
    with_guard = post(guarded, path, body, method)
    without = post(unguarded, path, body, method)
    assert (with_guard.status_code, with_guard.json()) == (without.status_code, without.json())
    assert with_guard.status_code == (200 if path == REST else 409), with_guard.text


def test_the_rest_channel_hands_a_message_on_as_sent(rasa_run: Any):
    app = rasa_run[1]([RestInput()], enable_api=True)
    with serving(app) as url:
        body = {"sender": "s1", "message": MARK, "metadata": {"page": "/orders"}}
        assert post(url, REST, body).json() == []
    (message,) = app.ctx.agent.messages
    assert (message.text, message.sender_id, message.metadata) == (MARK, "s1", body["metadata"])


@pytest.mark.parametrize(
    "method, path, headers",
    [
        ("GET", "/no-such-route", {"Accept": "0"}),
        ("DELETE", REST, {"Accept": "0"}),
        ("GET", "/no-such-route", {"Accept": "text/html;q=abc"}),
    ],
)
def test_a_malformed_accept_header_gets_the_error_page_not_a_500(
    guarded: str, unguarded: str, method, path, headers
):
    expected = 405 if method == "DELETE" else 404
    assert requests.request(method, guarded + path, headers=headers).status_code == expected
    # Sanic 21.12's bug, which the guard is there for: when Sanic fixes it, drop the fix.
    assert requests.request(method, unguarded + path, headers=headers).status_code == 500


def test_a_client_without_the_token_still_gets_rasa_s_401(rasa_run: Any):
    app = rasa_run[1]([RestInput()], enable_api=True, auth_token="s3cret-token")
    with serving(app) as url:
        refused = post(url, "/model/parse", b"[]")
        assert refused.status_code == 401 and refused.json()["reason"] == "NotAuthenticated"
        assert post(url, "/model/parse?token=s3cret-token", b"[]").status_code == 400
        assert post(url, "/model/parse?token=s3cret-token", {"text": "hi"}).status_code == 409


def test_a_jwt_user_is_held_to_their_own_conversation_first(rasa_run: Any):
    app = rasa_run[1](
        [RestInput()], enable_api=True, jwt_secret="jwt-secret-0123456789", jwt_method="HS256"
    )
    token = jwt.encode({"user": {"username": "alice", "role": "user"}}, "jwt-secret-0123456789")
    bearer = {"Authorization": f"Bearer {token}"}
    with serving(app) as url:
        assert post(url, "/conversations/alice/messages", b"[]").status_code == 401
        others = post(url, "/conversations/bob/messages", b"[]", headers=bearer)
        assert others.status_code == 403 and others.json()["reason"] == "NotAuthorized"
        assert post(url, "/conversations/alice/messages", b"[]", headers=bearer).status_code == 400


def test_the_rest_channel_alone_is_guarded_too(rasa_run: Any):
    """``rasa run`` without --enable-api: an app without Rasa's ErrorResponse handler."""
    with serving(rasa_run[1]([RestInput()], enable_api=False)) as url:
        response = post(url, REST, b"[]")
        assert response.status_code == 400 and set(response.json()) == ERROR_KEYS
        assert post(url, "/model/parse", {"text": 5}).status_code == 404


def test_an_app_made_before_installing_is_guarded_once(rasa_run: Any):
    """`rasa run` imports rasa_llm with the model, after it has made its app."""
    app = rasa_run[0]([RestInput()], enable_api=True)
    install_http_api_guard()
    middleware = len(app.request_middleware)
    install_http_api_guard()
    guard_app(app)
    assert len(app.request_middleware) == middleware
    with serving(app) as url:
        assert post(url, REST, b"[]").status_code == 400


def test_a_check_that_fails_lets_the_request_through_and_logs_no_text(
    rasa_run: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    def broken(value: Any) -> None:
        raise RuntimeError(f"quoting {MARK}")

    monkeypatch.setitem(
        guard.ROUTES, "parse", dataclasses.replace(guard.ROUTES["parse"], check=broken)
    )
    with serving(rasa_run[1]([RestInput()], enable_api=True)) as url:
        with caplog.at_level(logging.INFO):
            assert post(url, "/model/parse", {"text": 5}).status_code == 409
    assert "the HTTP API guard failed on /model/parse (RuntimeError)" in caplog.text
    assert MARK not in caplog.text


def test_an_api_protected_otherwise_stops_the_server_with_the_fix():
    app = Sanic("not_rasa_http_api")

    @app.post("/model/parse", name="parse")
    async def parse(request: Any) -> Any:  # no requires_auth around it
        return None

    with pytest.raises(HttpApiGuardError, match=r"route 'not_rasa_http_api.parse'.*rasa==3.6.21"):
        guard_app(app)


@pytest.mark.parametrize("depth, deeper", [(0, False), (MAX_DEPTH, False), (MAX_DEPTH + 1, True)])
def test_depth_counts_each_list_and_object(depth: int, deeper: bool):
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    assert nested_deeper_than(value, MAX_DEPTH) is deeper
    # Iterative: far deeper than the recursion limit.
    very_deep: Optional[Dict[str, Any]] = None
    for _ in range(50_000):
        very_deep = {"k": very_deep}
    assert nested_deeper_than(very_deep, MAX_DEPTH)
