"""Bad input at scale: hypothesis throws random and malformed requests at every webhook of
the bot's channels and at Rasa's REST channel and HTTP API, on one real `rasa run`.

Bodies are random bytes, text that is not UTF-8, broken and deeply nested JSON, JSON of
the wrong shape, numbers Python refuses to parse, huge strings, missing fields and wrong
content types; and, for Slack, Telegram and Twilio, platform payloads *correctly
signed* (Slack's signing secret, Telegram's secret token, Twilio's RequestValidator) but
broken field by field, so the fuzz reaches the parsing behind the signature checks. The
web chat gets the same over its WebSocket (after a real session) and its upload route,
the agent desk with and without its bearer token and through its signed Slack events.

What must hold: no 5xx; refusals before the signature check are the documented 4xx; a
refusal's reason never quotes the body; the server still answers afterwards; and no
customer text reaches its log (every text field carries ``MARKER``; the server runs
without --debug and with the default log redaction). That holds for Rasa's REST channel
and HTTP API too: the 500s Rasa 3.6 and Sanic 21.12 answered malformed requests with are
closed by rasa_llm/server/http_api_guard.py, and each one's smallest request is a case here
(tests/production/rasa_known_bugs.py).

The fake Slack, Telegram and Twilio APIs answer every send a fuzzed message can cause,
and any other call still fails the last test: a broken payload must not make a channel
call something it never calls.

Hypothesis runs derandomized (the same examples on every run) with a bounded number of
examples per endpoint, sized for 2 cores: 150 to 300 for requests refused early, about
100 for signed ones that reach the bot. Every route of Rasa's HTTP API is also fuzzed
without the API token (and with wrong ones): each request must be refused, 401, before
Rasa reads it. The routes that train, replace, unload or evaluate the model
(``POST /model/train``, ``PUT /model``, ``DELETE /model``, ``POST /model/test/*``) are
fuzzed only so: with the token their bodies are the operator's own, Rasa answers bad
training data or a missing model file with its documented 500s (``TrainingError``,
``LoadingError``), and a real run would take minutes of CPU or swap the model under
every other check here. Left out: the SMS channel's ``reply_mode: twiml`` and Slack's
``use_threads`` (one configuration per server; their parsing is the same code).
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import quote

import pytest
import requests
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import InvalidStatusCode

from channels import agent_desk as desk
from channels.desk_agents import AgentDirectory
from tests.channels import slack_payloads as slack
from tests.channels import telegram_payloads as tg
from tests.fake_platform import Call, FakePlatform, Reply
from tests.production import fuzz_payloads as fz
from tests.production.fuzz_payloads import MARKER
from tests.production.fuzz_support import (
    LogWatch,
    around,
    bot_spoke,
    check,
    converse,
    eventually,
    form_fields,
    precheck,
    say,
    send,
    webchat_say,
)
from tests.production.rasa_known_bugs import EXAMPLES, SANIC_BAD_ACCEPT
from tests.rasa_process import (
    RASA_API_ROUTES,
    REST_CREDENTIALS,
    RasaServer,
    free_port,
    rest_headers,
    rest_id,
)

pytestmark = pytest.mark.integration

DESK_TOKEN = "fuzz-test-desk-token-0123456789abcdef"  # the action server's: opens hand-offs
AGENT_USER = "U0AGENT01"  # the Slack agent allowed to answer
AGENT_SECRET = "fuzz-agent-signing-secret-0123456789"
AGENT_CHANNEL = "C0AGENTS01"
MAX_ATTACHMENT = 64 * 1024
MAX_BODY = 256 * 1024  # channels.webhook_guard.DEFAULT_MAX_BODY_BYTES
MAX_SMS_BODY = 64 * 1024  # channels.sms.MAX_BODY_BYTES
REST_MAX_BODY = 64 * 1024  # channels.rest: max_body_bytes
GREETING = "Hi, welcome to Northwind customer service!"

FUZZ = settings(
    derandomize=True,  # the same examples on every run: CI is reproducible
    database=None,
    deadline=None,  # a request that reaches the bot takes what the bot takes
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)


def fuzz(examples: int) -> Any:
    return settings(FUZZ, max_examples=examples)


# ------------------------------------------------------------------ the server
def _ok_slack(call: Call) -> Reply:
    channel = str(call.fields().get("channel"))
    return 200, {"ok": True, "channel": channel, "ts": f"{time.time():.6f}"}, {}


def _ok_telegram(call: Call) -> Reply:
    """A Bot API success for any chat id a fuzzed update may carry."""
    if call.path.endswith("/answerCallbackQuery"):
        return 200, {"ok": True, "result": True}, {}
    chat = str(call.fields().get("chat_id"))
    sent = {
        "message_id": tg.next_id() % 100000,
        "from": tg.BOT_USER,
        "chat": {"id": int(chat) if chat.lstrip("-").isdigit() else 1, "type": "private"},
        "date": int(time.time()),
        "text": "ok",
    }
    return 200, {"ok": True, "result": sent}, {}


@pytest.fixture(scope="module")
def fakes() -> Iterator[Dict[str, FakePlatform]]:
    found = {name: FakePlatform(name).start() for name in ("slack", "telegram", "twilio")}
    found["slack"].expect("POST", "/api/chat.postMessage", _ok_slack)
    found["slack"].expect("POST", "/api/chat.update", {"ok": True})
    for method in tg.METHODS:
        found["telegram"].expect("POST", tg.path(method), _ok_telegram)
    found["twilio"].expect(
        "POST", fz.TWILIO_MESSAGES, (201, {"sid": "SM" + "b" * 32, "status": "queued"}, {})
    )
    yield found
    for fake in found.values():
        fake.stop()


@pytest.fixture(scope="module")
def server(
    bot_model: Path, fakes: Dict[str, FakePlatform], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RasaServer]:
    workdir = tmp_path_factory.mktemp("fuzz")
    credentials = workdir / "credentials.yml"
    credentials.write_text(
        f"{REST_CREDENTIALS}"
        "channels.monitoring.MonitoringInput:\n"
        "  metrics_token: ${RASA_LLM_API_TOKEN}\n"
        "channels.webchat.WebChatInput:\n"
        f'  session_secret: "{fz.WEBCHAT_SECRET}"\n'
        "  attachment_dir: uploads\n"
        f"  max_attachment_bytes: {MAX_ATTACHMENT}\n"
        "channels.agent_desk.AgentDeskInput:\n"
        f'  token: "{DESK_TOKEN}"\n'
        "  slack:\n"
        '    slack_token: "xoxb-fuzz-agent-token"\n'
        f'    slack_signing_secret: "{AGENT_SECRET}"\n'
        f'    agent_channel: "{AGENT_CHANNEL}"\n'
        f'    agent_user_ids: ["{AGENT_USER}"]\n'
        f'    api_url: "{fakes["slack"].url}/api/"\n'
        "channels.slack.SlackInput:\n"
        f'  slack_token: "{slack.TOKEN}"\n'
        f'  slack_signing_secret: "{slack.SECRET}"\n'
        f'  api_url: "{fakes["slack"].url}/api/"\n'
        "channels.telegram.TelegramInput:\n"
        f'  access_token: "{tg.TOKEN}"\n'
        f'  verify: "{tg.BOT_USERNAME}"\n'
        f'  secret_token: "{tg.SECRET}"\n'
        f'  base_url: "{fakes["telegram"].url}/bot"\n'
        "channels.sms.TwilioSmsInput:\n"
        f'  account_sid: "{fz.TWILIO_ACCOUNT}"\n'
        f'  auth_token: "{fz.TWILIO_TOKEN}"\n'
        f'  twilio_number: "{fz.TWILIO_NUMBER}"\n'
        f'  webhook_url: "{fz.TWILIO_URL}"\n'
        f'  api_base_url: "{fakes["twilio"].url}"\n'
    )
    endpoints = workdir / "endpoints.yml"
    # No action server: what the fallback would say is not under test, and an action
    # server that does not answer is one more error path whose log must stay clean.
    endpoints.write_text(
        f'action_endpoint:\n  url: "http://127.0.0.1:{free_port()}/webhook"\n'
        "tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: rasa.db\n"
        "event_broker:\n  type: rasa_llm.server.metrics_event_broker.MetricsEventBroker\n"
    )
    rasa = RasaServer(
        bot_model,
        workdir,
        credentials=credentials,
        endpoints=endpoints,
        # The default, said out loud: a developer's shell must not turn redaction off.
        env={"RASA_LLM_LOG_CUSTOMER_TEXT": "false"},
    )
    with rasa:
        yield rasa


@pytest.fixture(scope="module")
def agent_token(server: RasaServer) -> str:
    """An agent of the desk, in its database in the server's working directory."""
    return AgentDirectory(server.workdir / "handoffs.db").add_sync("fuzz-agent")


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


# ------------------------------------------------------------------ checks
@pytest.fixture
def log(server: RasaServer) -> Iterator[LogWatch]:
    watch = LogWatch(server)
    yield watch
    watch.assert_clean()


content_types = st.sampled_from(fz.CONTENT_TYPES)


def mostly(*expected: str) -> st.SearchStrategy[Optional[str]]:
    """The content type a route takes half the time, so more requests get past it."""
    return st.one_of(st.sampled_from(expected), content_types)


# ------------------------------------------------------------------ Slack
SLACK_PATHS = st.sampled_from(["/webhooks/slack/webhook", "/webhooks/slack/interactive"])


def test_slack_refuses_unsigned_forged_and_stale_requests(http, server, log):
    @fuzz(200)
    @given(
        fz.junk_bodies,
        mostly(fz.JSON, fz.FORM),
        SLACK_PATHS,
        st.sampled_from(["none", "forged", "stale", "junk"]),
    )
    def run(body: bytes, content_type: Optional[str], path: str, how: str) -> None:
        headers = fz.headers_for(content_type)
        if how == "forged":
            headers.update(slack.signed_headers(body, content_type or "", secret="guessed-secret"))
        elif how == "stale":
            headers.update(
                slack.signed_headers(body, content_type or "", timestamp=int(time.time()) - 400)
            )
        elif how == "junk":
            headers.update({"X-Slack-Request-Timestamp": "1e9", "X-Slack-Signature": "v0=00"})
        if content_type is None:
            headers.pop("Content-Type", None)
        expected = precheck(body, content_type, (fz.JSON, fz.FORM), MAX_BODY) or 401
        check(send(http, server, "POST", path, body, headers), expect=expected, what=body)

    run()


def test_slack_signed_junk_passes_the_signature_check_and_gets_no_5xx(http, server, log):
    @fuzz(200)
    @given(
        fz.junk_bodies,
        st.sampled_from([fz.JSON, fz.FORM, "application/json; charset=utf-8"]),
        SLACK_PATHS,
    )
    def run(body: bytes, content_type: str, path: str) -> None:
        response = send(http, server, "POST", path, body, slack.signed_headers(body, content_type))
        check(response, what=body)
        assert response.status_code != 401, "a correctly signed request passes the signature check"

    run()


def test_slack_signed_broken_events_and_clicks(http, server, log):
    requests_ = st.one_of(
        fz.slack_events().map(fz.slack_json),
        fz.slack_clicks().map(fz.slack_form),
        fz.slack_clicks().map(lambda payload: fz.slack_form(fz.dumps_ascii(payload)[:-2])),
        fz.json_values.map(fz.slack_form),
    )

    @fuzz(120)
    @given(requests_, SLACK_PATHS)
    def run(request: Tuple[bytes, Dict[str, str]], path: str) -> None:
        body, headers = request
        response = send(http, server, "POST", path, body, headers)
        check(response, what=body)
        assert response.status_code in (200, 400, 413), response.text

    run()


# ------------------------------------------------------------------ Telegram
TELEGRAM = "/webhooks/telegram/webhook"


def test_telegram_refuses_requests_without_the_secret_token(http, server, log):
    @fuzz(150)
    @given(fz.junk_bodies, content_types, st.one_of(st.none(), fz.header_values))
    def run(body: bytes, content_type: Optional[str], secret: Optional[str]) -> None:
        headers = fz.headers_for(content_type)
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        # A body over the route's limit is refused before anything reads it.
        expected = 413 if len(body) > MAX_BODY else 401 if secret is None else 403
        check(send(http, server, "POST", TELEGRAM, body, headers), expect=expected, what=body)

    run()


def test_telegram_junk_with_the_secret_token_gets_no_5xx(http, server, log):
    @fuzz(200)
    @given(fz.junk_bodies, mostly(fz.JSON))
    def run(body: bytes, content_type: Optional[str]) -> None:
        headers = tg.headers(secret=tg.SECRET, content_type=content_type or "")
        if content_type is None:
            del headers["Content-Type"]
        response = send(http, server, "POST", TELEGRAM, body, headers)
        check(response, what=body)
        expected = precheck(body, content_type, (fz.JSON,), MAX_BODY)
        if expected is not None:
            assert response.status_code == expected

    run()


def test_telegram_broken_updates_with_the_secret_token(http, server, log):
    @fuzz(100)
    @given(fz.telegram_updates())
    def run(update: Any) -> None:
        body = fz.dumps(update)
        response = send(http, server, "POST", TELEGRAM, body, tg.headers())
        check(response, what=body)
        assert response.status_code in (200, 400), response.text

    run()


# ------------------------------------------------------------------ Twilio SMS
TWILIO = "/webhooks/twilio/webhook"


def test_twilio_refuses_unsigned_and_forged_webhooks(http, server, log):
    forms = fz.twilio_forms().map(fz.form_body)

    @fuzz(200)
    @given(
        st.one_of(fz.junk_bodies, forms),
        mostly(fz.FORM),
        st.sampled_from(["none", "forged", "other-url", "junk"]),
    )
    def run(body: bytes, content_type: Optional[str], how: str) -> None:
        headers = fz.headers_for(content_type)
        fields = form_fields(body)
        if how == "forged":
            headers["X-Twilio-Signature"] = fz.twilio_signature(fields or {}, token="guessed")
        elif how == "other-url":
            headers["X-Twilio-Signature"] = fz.twilio_signature(
                fields or {}, url="https://evil.example/webhooks/twilio/webhook"
            )
        elif how == "junk":
            headers["X-Twilio-Signature"] = "AAAA"
        expected = precheck(body, content_type, (fz.FORM,), MAX_SMS_BODY)
        if expected is None and fields is None:
            expected = 400  # not a form
        check(send(http, server, "POST", TWILIO, body, headers), expect=expected or 403, what=body)

    run()


def test_twilio_signed_junk_and_broken_messages(http, server, log):
    bodies = st.one_of(
        fz.junk_bodies, fz.twilio_forms().map(fz.form_body), fz.twilio_forms().map(fz.form_body)
    )

    @fuzz(150)
    @given(bodies, st.sampled_from([fz.FORM, fz.FORM + "; charset=utf-8"]))
    def run(body: bytes, content_type: str) -> None:
        fields = form_fields(body)
        headers = {"Content-Type": content_type}
        if fields is not None:
            headers["X-Twilio-Signature"] = fz.twilio_signature(fields)
        response = send(http, server, "POST", TWILIO, body, headers)
        check(response, what=body)
        if fields is not None and len(body) <= MAX_SMS_BODY:
            assert response.status_code in (200, 400), response.text

    run()


# ------------------------------------------------------------------ web chat
def test_webchat_socket_survives_broken_frames(server, log):
    url = server.url.replace("http://", "ws://") + "/webhooks/webchat/webhook"

    @fuzz(60)
    @given(fz.hello_frames(), st.lists(fz.webchat_frames(), max_size=4))
    def run(hello: Tuple[str, Any], frames: Any) -> None:
        asyncio.run(asyncio.wait_for(converse(url, hello, frames), 120))

    run()


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://127.0.0.1:1", "x://%%", "http://[::1"]
)
def test_webchat_socket_refuses_foreign_pages(server, log, origin: str):
    url = server.url.replace("http://", "ws://") + "/webhooks/webchat/webhook"

    async def connect() -> None:
        with pytest.raises(InvalidStatusCode) as refused:
            await websockets.connect(url, origin=origin, open_timeout=30)  # type: ignore[arg-type]
        assert refused.value.status_code == 403

    asyncio.run(connect())


def test_webchat_upload_refuses_or_takes_any_file(http, server, log):
    @fuzz(100)
    @given(fz.uploads())
    def run(upload: Tuple[Dict[str, str], bytes, Optional[int]]) -> None:
        headers, body, expected = upload
        if headers.get("Origin") == "same":
            headers["Origin"] = server.url
        try:
            response = send(http, server, "POST", "/webhooks/webchat/upload", body, headers)
        except requests.ConnectionError:
            # A body over the limit is refused from its Content-Length, before it is
            # read, and Sanic then closes the connection while the client still writes.
            assert len(body) > MAX_ATTACHMENT
            return
        check(response, expect=expected, what=headers)

    run()


# Accept headers browsers and clients send. A malformed one is Sanic's bug, documented
# by test_sanic_answers_a_4xx_whatever_the_accept_header.
ACCEPT = st.sampled_from(["*/*", "text/html", "application/json", "text/html,*/*;q=0.8", ""])


def test_webchat_page_and_health_routes_ignore_junk_queries(http, server, log):
    paths = st.sampled_from([
        "/webhooks/webchat/", "/webhooks/webchat/webchat.js", "/webhooks/webchat/webchat.css",
        "/webhooks/slack/", "/webhooks/telegram/", "/webhooks/twilio/", "/webhooks/agent/",
        "/webhooks/rest/", "/webhooks/monitoring/health", "/webhooks/monitoring/metrics",
        "/", "/version", "/status", "/domain",
    ])  # fmt: skip

    @fuzz(100)
    @given(
        paths,
        fz.texts,
        st.sampled_from(["GET", "HEAD", "OPTIONS", "DELETE", "PATCH"]),
        ACCEPT,
    )
    def run(path: str, query: str, method: str, accept: str) -> None:
        response = send(http, server, method, f"{path}?{quote(query, errors='surrogatepass')}",
                        headers={"Accept": accept})  # fmt: skip
        check(response, what=query)

    run()


# ------------------------------------------------------------------ agent desk
DESK = "/webhooks/agent"
DESK_ROUTES = st.sampled_from([
    ("POST", "/handoffs"), ("GET", "/handoffs"), ("GET", "/handoffs/{id}"),
    ("POST", "/handoffs/{id}/claim"), ("POST", "/handoffs/{id}/release"),
    ("POST", "/handoffs/{id}/messages"), ("POST", "/handoffs/{id}/handback"),
])  # fmt: skip


def test_agent_desk_refuses_requests_without_the_token(http, server, log):
    @fuzz(150)
    @given(
        DESK_ROUTES,
        fz.sender_ids(),
        fz.junk_bodies,
        content_types,
        st.one_of(st.none(), fz.header_values),
    )
    def run(
        route: Tuple[str, str],
        sender: str,
        body: bytes,
        content_type: Optional[str],
        auth: Optional[str],
    ) -> None:
        method, path = route
        headers = fz.headers_for(content_type)
        if auth is not None:
            headers["Authorization"] = auth
        scheme, _, token = (auth or "").partition(" ")
        expected = 403 if scheme.lower() == "bearer" and token else 401
        if method == "POST" and len(body) > desk_limit(path):
            expected = 413  # refused before anything reads it
        path = DESK + path.format(id=quote(sender, safe=""))
        check(send(http, server, method, path, body, headers), expect=expected, what=body)

    run()


def desk_limit(path: str) -> int:
    """The desk route's body limit (channels/agent_desk.py)."""
    if path.endswith("/messages"):
        return desk.MESSAGE_MAX_BYTES
    if path.endswith(("/claim", "/release", "/handback")):
        return desk.COMMAND_MAX_BYTES
    return desk.OPEN_MAX_BYTES


def _desk_headers(token: str, content_type: Optional[str] = fz.JSON) -> Dict[str, str]:
    return fz.headers_for(content_type, Authorization=f"Bearer {token}")


def test_agent_desk_junk_with_the_tokens_gets_no_5xx(http, server, log, agent_token):
    @fuzz(200)
    @given(
        DESK_ROUTES,
        fz.sender_ids(),
        fz.junk_bodies,
        mostly(fz.JSON),
        st.sampled_from([DESK_TOKEN, "agent"]),
    )
    def run(
        route: Tuple[str, str], sender: str, body: bytes, content_type: Optional[str], token: str
    ) -> None:
        method, path = route
        path = DESK + path.format(id=quote(sender, safe=""))
        headers = _desk_headers(agent_token if token == "agent" else token, content_type)
        check(send(http, server, method, path, body, headers), what=body)

    run()


@pytest.fixture(scope="module")
def desk_customer(http: requests.Session, server: RasaServer) -> str:
    """A REST customer's conversation, so agent messages and hand-backs reach it."""
    sender = fz.unique("desk-customer-")
    answer = say(http, server, sender, "hello")
    assert answer.status_code == 200, answer.text
    return rest_id(sender)


def test_agent_desk_broken_hand_offs_messages_and_hand_backs(
    http, server, log, desk_customer, agent_token
):
    opening = {
        "sender_id": desk_customer,
        "reason": "customer_request",
        "since": 0.0,
        "transcript": [["customer", MARKER], ["bot", "How can I help?"]],
    }
    bodies = st.one_of(
        st.tuples(st.just(("POST", "/handoffs")), fz.mutated(opening)),
        st.tuples(st.just(("POST", "/handoffs/{id}/claim")), fz.mutated({"take_over": True})),
        st.tuples(st.just(("POST", "/handoffs/{id}/messages")), fz.mutated({"text": MARKER})),
        st.tuples(st.just(("POST", "/handoffs/{id}/handback")), fz.mutated({})),
        st.tuples(st.just(("POST", "/handoffs/{id}/release")), fz.mutated({})),
        st.tuples(st.just(("GET", "/handoffs/{id}")), st.none()),
    )  # fmt: skip

    @fuzz(80)
    @given(bodies, st.sampled_from([desk_customer, desk_customer, "rest:fuzz-nobody"]))
    def run(request: Tuple[Tuple[str, str], Any], sender: str) -> None:
        # Keep the hand-off open and claimed, so the fuzzed message or hand-back gets past
        # those checks.
        open_body = fz.dumps(opening)
        send(http, server, "POST", f"{DESK}/handoffs", open_body, _desk_headers(DESK_TOKEN))
        claim = f"{DESK}/handoffs/{quote(desk_customer, safe='')}/claim"
        send(http, server, "POST", claim, b"{}", _desk_headers(agent_token))
        (method, path), value = request
        body = None if value is None and method == "GET" else fz.dumps(value)
        token = DESK_TOKEN if path == "/handoffs" else agent_token
        path = DESK + path.format(id=quote(sender, safe=""))
        check(send(http, server, method, path, body, _desk_headers(token)), what=body)

    run()


def test_agent_desk_slack_events_signed_and_not(http, server, log, desk_customer):
    thread = "1700000000.000100"
    event = {"type": "message", "channel": AGENT_CHANNEL, "user": AGENT_USER, "text": MARKER,
             "ts": "1700000001.000200", "thread_ts": thread}  # fmt: skip

    @st.composite
    def envelopes(draw: st.DrawFn) -> Dict[str, Any]:
        text = draw(st.one_of(fz.marked_text(), st.just("!handback")))
        envelope = {"type": "event_callback", "event_id": fz.unique("EvA"),
                    "event": {**event, "text": text},
                    "authorizations": [{"user_id": "U0BOT0001", "is_bot": True}]}  # fmt: skip
        return draw(fz.mutated(envelope))

    @fuzz(150)
    @given(
        st.one_of(fz.junk_bodies, envelopes().map(fz.dumps)),
        st.sampled_from(["signed", "signed", "customer-secret", "none"]),
    )
    def run(body: bytes, how: str) -> None:
        headers = {"Content-Type": fz.JSON}
        if how == "signed":
            headers.update(slack.signed_headers(body, fz.JSON, secret=AGENT_SECRET))
        elif how == "customer-secret":
            headers.update(slack.signed_headers(body, fz.JSON))
        response = send(http, server, "POST", f"{DESK}/slack/events", body, headers)
        expected = precheck(body, fz.JSON, (fz.JSON,), MAX_BODY)
        check(response, expect=expected or (None if how == "signed" else 401), what=body)

    run()


# ------------------------------------------------------------------ Rasa's REST channel and API
REST = "/webhooks/rest/webhook"


def check_rasa(response: requests.Response, what: Any) -> None:
    """As :func:`check`; Rasa's own answers (not the guard's) may quote the body."""
    check(response, ours=False, what=what)


def test_rest_channel(http, server, log):
    messages = fz.mutated(
        {"sender": fz.unique("fuzz-rest-"), "message": MARKER, "metadata": {"a": 1}}
    )

    @fuzz(150)
    @given(
        st.one_of(fz.small_junk_bodies, messages.map(fz.dumps)),
        mostly(fz.JSON),
        st.sampled_from(["token", "token", "none", "wrong"]),
    )
    def run(body: bytes, content_type: Optional[str], auth: str) -> None:
        headers = fz.headers_for(content_type)
        if auth == "token":
            headers.update(rest_headers())
        elif auth == "wrong":
            headers["Authorization"] = "Bearer not-the-rest-token-0123456789"
        response = send(http, server, "POST", REST, body, headers)
        # The REST channel is ours: its refusals never quote the body. A body over its
        # limit is refused before anything reads it, token or not.
        expected = None if auth == "token" else {"none": 401, "wrong": 403}[auth]
        if len(body) > REST_MAX_BODY:
            expected = 413
        check(response, expect=expected, what=(REST, body))

    run()


def _api_requests() -> st.SearchStrategy[Tuple[str, str, Optional[bytes]]]:
    def at(method: str, path: str, bodies: st.SearchStrategy[Any]) -> Any:
        return st.tuples(
            st.just(method),
            fz.sender_ids().map(lambda s: path.format(id=quote(s, safe=""))),
            bodies,
        )

    parse = fz.mutated({"text": MARKER, "message_id": "m1"}).map(fz.dumps)
    message = fz.mutated({"text": MARKER, "sender": "user", "parse_data": None}).map(fz.dumps)
    events = fz.tracker_events().map(fz.dumps)
    execute = fz.mutated({"name": "utter_greet", "policy": None, "confidence": 1.0}).map(fz.dumps)
    intent = fz.mutated({"name": "greet", "entities": {"order_id": MARKER}}).map(fz.dumps)
    junk = fz.small_junk_bodies
    return st.one_of(
        at("POST", "/model/parse", parse | junk),
        at("POST", "/conversations/{id}/messages", message | junk),
        at("POST", "/conversations/{id}/tracker/events", events | junk),
        at("PUT", "/conversations/{id}/tracker/events", events | junk),
        at("GET", "/conversations/{id}/tracker?include_events=ALL&until=1e12", st.none()),
        at("GET", "/conversations/{id}/story", st.none()),
        at("POST", "/conversations/{id}/execute", execute | junk),
        at("POST", "/conversations/{id}/trigger_intent", intent | junk),
        at("POST", "/conversations/{id}/predict", st.none() | junk),
        at("POST", "/model/predict", events | junk),
    )


def test_rasa_http_api(http, server, log):
    @fuzz(300)
    @given(_api_requests(), st.sampled_from([fz.JSON, fz.JSON, None, "text/plain"]))
    def run(request: Tuple[str, str, Optional[bytes]], content_type: Optional[str]) -> None:
        method, path, body = request
        response = send(http, server, method, path, body, fz.headers_for(content_type))
        check_rasa(response, (path, body))

    run()


API_ROUTES = st.sampled_from(RASA_API_ROUTES)


def test_rasa_http_api_refuses_every_caller_without_the_token(http, server, log):
    @fuzz(250)
    @given(
        API_ROUTES,
        fz.sender_ids(),
        fz.small_junk_bodies,
        st.sampled_from([fz.JSON, "application/x-yaml", None]),
        st.one_of(st.none(), fz.header_values),
        st.one_of(st.none(), fz.texts),
    )
    def run(
        route: Tuple[str, str],
        sender: str,
        body: bytes,
        content_type: Optional[str],
        auth: Optional[str],
        query_token: Optional[str],
    ) -> None:
        method, path = route
        path = path.format(id=quote(sender, safe=""))
        if query_token is not None:
            path += "?token=" + quote(query_token, errors="surrogatepass")
        headers = fz.headers_for(content_type)
        if auth is not None:
            headers["Authorization"] = auth
        response = send(http, server, method, path, body, headers, api_token=False)
        check(response, expect=401, what=(path, auth))

    run()
    # None of it unloaded or replaced the model.
    assert send(http, server, "GET", "/status").json()["model_file"]


# Rasa's stock REST channel's 500 (a body that is not an object) is closed too, for bots
# that keep `rest:`; this server ships channels.rest.RestInput, which never had it, so
# that case is tests/rasa_llm/test_http_api_guard.py's.
@pytest.mark.parametrize("bug", sorted(set(EXAMPLES) - {"rest-not-an-object"}))
def test_a_request_rasa_answered_500_gets_a_400(http, server, log, bug):
    method, path, body, what = EXAMPLES[bug]
    response = send(http, server, method, path, body, {"Content-Type": fz.JSON})
    assert response.status_code == 400, f"{response.status_code} {response.text[:300]}; {what}"
    answer = response.json()
    assert (answer["status"], answer["reason"], answer["code"]) == ("failure", "BadRequest", 400)


@pytest.mark.parametrize("method, path, headers", SANIC_BAD_ACCEPT)
def test_sanic_answers_a_4xx_whatever_the_accept_header(http, server, method, path, headers):
    response = send(http, server, method, path, headers=headers)
    assert response.status_code == (405 if method == "DELETE" else 404), response.text


def test_a_long_message_does_not_stall_the_server(http, server):
    """bot/data/nlu.yml's `email` regex once scanned a long run of letters again from each
    letter, in the event loop: 25,000 characters (Slack allows 40,000; Rasa's HTTP API has
    no limit but its body's) held the whole server for seconds, 250,000 for minutes."""
    # GET /status, again and again while the message is parsed: each waits for whatever
    # holds the event loop.
    worst = 0.0
    long_text = json.dumps({"text": "x" * 25_000}).encode()

    def parse_long() -> requests.Response:
        return send(requests.Session(), server, "POST", "/model/parse", long_text)

    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(parse_long)
        while not sent.done():
            started = time.monotonic()
            assert send(http, server, "GET", "/status").status_code == 200
            worst = max(worst, time.monotonic() - started)
            time.sleep(0.2)
        assert sent.result().status_code == 200
    assert worst < 2, f"GET /status waited {worst:.1f} s behind one long message"


# ------------------------------------------------------------------ leaks found and closed
# Their own marker, so that a leak fails here, where it is named, and not only at the end.
LEAK_PROBE = "LEAKPROBE" + MARKER[len("FUZZSECRET") :]


@pytest.mark.parametrize("route", ["webchat", "telegram", "rest", "trigger_intent"])
def test_a_text_rasa_reads_as_an_intent_stays_out_of_the_log(http, server, fakes, route: str):
    """A text that starts with '/' is read by Rasa as an intent shortcut; when that fails
    (no such intent, text after a Telegram command, bad entities) Rasa warns with the
    whole text through warnings.warn before NLU runs; rasa_llm.server.log_redactor redacts it."""
    probe = LEAK_PROBE + route.upper().replace("_", "")
    before = len(server.log())
    if route == "webchat":
        url = server.url.replace("http://", "ws://") + "/webhooks/webchat/webhook"
        session = asyncio.run(asyncio.wait_for(webchat_say(url, f"/track {probe}"), 120))
        eventually(partial(bot_spoke, http, server, session), "reply")
    elif route == "telegram":
        chat = tg.next_id()
        update = tg.text_message(chat, f"/track {probe}")  # a command Telegram marks as such
        assert send(http, server, "POST", TELEGRAM, tg.body(update), tg.headers()).ok
        eventually(lambda: tg.sent(fakes["telegram"], chat), "reply")
    elif route == "rest":
        assert say(http, server, fz.unique("slash-"), f"/track {probe}").ok
    else:
        body = json.dumps({"name": "greet", "entities": probe}).encode()
        path = f"/conversations/{fz.unique('trigger-')}/trigger_intent"
        assert send(http, server, "POST", path, body, {"Content-Type": fz.JSON}).ok
    assert probe not in server.log()[before:]


# ------------------------------------------------------------------ a message the bot fails on
# A lone surrogate is valid JSON ("\\ud800"); it made the intent classifier's tokenizer
# raise until rasa_llm/models/fine_tuning.py replaced it. Either way: no text in the log.
FAILING_TEXT = f"\ud800 {MARKER} where is my order"


@pytest.mark.parametrize("channel", ["slack", "telegram", "webchat"])
def test_a_message_the_bot_fails_on_is_logged_without_its_text(
    http, server, fakes, log, channel: str
):
    if channel == "slack":
        user, dm = fz.unique("U"), fz.unique("D")
        # JSON escapes the surrogate, as Slack would write it (raw, it is not UTF-8).
        body = fz.dumps_ascii(slack.message_event(FAILING_TEXT, user=user, channel=dm)).encode()
        headers = slack.signed_headers(body, fz.JSON)
        assert send(http, server, "POST", "/webhooks/slack/webhook", body, headers).ok
        failed, answered = "slack: handling delivery", lambda: _slack_replies(fakes, dm)
    elif channel == "telegram":
        chat = tg.next_id()
        body = fz.dumps_ascii(tg.text_message(chat, FAILING_TEXT)).encode()
        assert send(http, server, "POST", TELEGRAM, body, tg.headers()).ok
        failed, answered = "telegram: handling update", lambda: tg.sent(fakes["telegram"], chat)
    else:
        url = server.url.replace("http://", "ws://") + "/webhooks/webchat/webhook"
        session = asyncio.run(asyncio.wait_for(webchat_say(url, FAILING_TEXT), 120))
        failed = "webchat: the bot failed on a message"
        answered = partial(bot_spoke, http, server, session)
    # Failed as today, or answered once the classifier takes such text.
    eventually(lambda: failed in server.log()[log.start :] or bool(answered()), "failure or reply")


def _slack_replies(fakes: Dict[str, FakePlatform], channel: str) -> List[Call]:
    calls = fakes["slack"].calls_to("/api/chat.postMessage")
    return [call for call in calls if call.fields().get("channel") == channel]


def test_a_rest_message_the_bot_fails_on_leaves_no_text_in_the_log(http, server):
    """A lone surrogate made the bot fail, and Rasa's REST channel then logged
    rest.message.received.failure with the exception, whose rendering printed the
    frames' locals (the text, JSON-escaped). The bot now reads such text, and the log
    redactor renders any logged exception without locals (tests/rasa_llm/
    test_log_redactor.py); either way the text stays out of the log."""
    probe = LEAK_PROBE + "REST"
    before = len(server.log())
    answer = say(http, server, fz.unique("leak-"), f"\ud800 {probe} where is my order")
    assert answer.status_code == 200
    assert probe not in server.log()[before:]


# ------------------------------------------------------------------ last: it survived
def _wait_until_quiet(
    server: RasaServer, fakes: Dict[str, FakePlatform], seconds: float = 3.0
) -> None:
    """Until neither the log nor the fakes moved for ``seconds`` (at most 120 s)."""

    def state() -> Tuple[int, int]:
        return len(server.log()), sum(len(fake.calls) for fake in fakes.values())

    deadline = time.monotonic() + 120
    last, since = state(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < seconds:
        time.sleep(0.5)
        now = state()
        if now != last:
            last, since = now, time.monotonic()


def test_the_server_still_answers_and_its_log_holds_no_customer_text(
    http: requests.Session, server: RasaServer, fakes: Dict[str, FakePlatform]
):
    _wait_until_quiet(server, fakes)
    assert server.process is not None and server.process.poll() is None, "the server died"
    assert send(http, server, "GET", "/status").status_code == 200
    health = send(http, server, "GET", "/webhooks/monitoring/health")
    assert health.status_code == 200, health.text
    answer = say(http, server, fz.unique("after-fuzz-"), "hello")
    assert answer.status_code == 200 and answer.json()[0]["text"].startswith(GREETING), answer.text
    log = server.log()
    assert MARKER.lower() not in log.lower(), around(log, MARKER)
    for fake in fakes.values():
        fake.assert_no_unexpected_calls()
