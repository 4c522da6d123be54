"""The agent desk's Slack bridge: settings, hand-off threads posted to a fake Slack Web API
(real slack_sdk client), and agents' replies from Events API requests signed for real."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

import pytest
from sanic.compat import Header
from sanic.request import Request
from sanic.response import HTTPResponse

from channels.agent_slack_bridge import (
    AgentSlackConfig,
    AgentSlackConfigError,
    AgentSlackError,
    AgentSlackEvent,
    SlackAgentBridge,
    agent_text,
)
from channels.outbound import RetryPolicy
from channels.slack_format import TEXT_LIMIT
from tests.channels.slack_payloads import (
    BOT_USER,
    SECRET,
    TOKEN,
    event_request,
    message_event,
    signed_headers,
)
from tests.fake_platform import Call, FakePlatform, Reply

NOW = 1_700_000_000.0
AGENTS = "C0AGENTS01"
AGENT = "U0AGENT001"
PARENT_TS = "1700000000.000100"
# Retries as production makes them, only with waits of milliseconds.
FAST = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.01, max_retry_after=0.01)
POST = "/api/chat.postMessage"


# ----------------------------------------------------------------- settings
def settings(**changes: Any) -> Dict[str, Any]:
    values: Dict[str, Any] = {
        "slack_token": TOKEN,
        "slack_signing_secret": SECRET,
        "agent_channel": AGENTS,
        "agent_user_ids": [AGENT, "W0AGENT002"],
    }
    values.update(changes)
    return {key: value for key, value in values.items() if value is not ...}


def test_settings_with_defaults():
    config = AgentSlackConfig.from_credentials(settings())
    assert (config.slack_token, config.slack_signing_secret) == (TOKEN, SECRET)
    assert config.agent_channel == AGENTS
    assert config.agent_user_ids == frozenset({AGENT, "W0AGENT002"})
    assert config.api_url == "https://slack.com/api/"
    assert config.dedup_db == "channel_deliveries.db"
    local = AgentSlackConfig.from_credentials(settings(api_url="http://127.0.0.1:9/api"))
    assert local.api_url == "http://127.0.0.1:9/api/"


@pytest.mark.parametrize(
    "missing", ["slack_token", "slack_signing_secret", "agent_channel", "agent_user_ids"]
)
def test_a_missing_setting_names_the_key_and_the_desk(missing: str):
    for absent in (..., "", None, "  "):
        with pytest.raises(AgentSlackConfigError) as error:
            AgentSlackConfig.from_credentials(settings(**{missing: absent}))
        message = str(error.value)
        assert f"slack.{missing}" in message
        assert "missing" in message or "expected a non-empty list" in message
        assert "channels.agent_desk.AgentDeskInput" in message
        assert error.value.key == missing


@pytest.mark.parametrize(
    "changes, key, hint",
    [
        ({"agent_chanel": AGENTS}, "agent_chanel", "Valid keys: agent_channel, agent_user_ids"),
        ({"slack_channel": AGENTS}, "slack_channel", "unknown key"),
        ({"agent_channel": "#agents"}, "agent_channel", "channel's id"),
        ({"agent_channel": "agents"}, "agent_channel", "not a channel id"),
        ({"slack_token": "xoxp-user-token"}, "slack_token", "xoxb-"),
        ({"slack_signing_secret": 12345}, "slack_signing_secret", "expected text"),
        ({"dedup_db": ["a.db"]}, "dedup_db", "expected text"),
        ({"agent_user_ids": []}, "agent_user_ids", "non-empty list"),
        ({"agent_user_ids": AGENT}, "agent_user_ids", "non-empty list"),
        ({"agent_user_ids": [AGENT, "@anna"]}, "agent_user_ids", "'@anna' is not a Slack user id"),
        ({"agent_user_ids": ["C0AGENTS01"]}, "agent_user_ids", "Copy member ID"),
    ],
)
def test_unknown_keys_and_unusable_values_stop_the_server(
    changes: Dict[str, Any], key: str, hint: str
):
    with pytest.raises(AgentSlackConfigError) as error:
        AgentSlackConfig.from_credentials(settings(**changes))
    assert error.value.key == key
    assert f"`slack.{key}`" in str(error.value) and hint in str(error.value)


def test_settings_that_are_not_a_mapping_are_refused():
    for odd in (None, True, "xoxb-1"):
        with pytest.raises(AgentSlackConfigError, match="expected a mapping"):
            AgentSlackConfig.from_credentials(odd)  # type: ignore[arg-type]


# ------------------------------------------------------ output against a fake
def new_bridge(tmp_path: Path, api_url: str = "http://127.0.0.1:9/api/") -> SlackAgentBridge:
    config = AgentSlackConfig(
        slack_token=TOKEN,
        slack_signing_secret=SECRET,
        agent_channel=AGENTS,
        agent_user_ids=frozenset({AGENT}),
        api_url=api_url,
        dedup_db=str(tmp_path / "deliveries.db"),
    )
    return SlackAgentBridge(config, clock=lambda: NOW, retry_policy=FAST)


def with_bridge(tmp_path: Path, fake: FakePlatform, use: Callable[[SlackAgentBridge], Awaitable]):
    """Run ``use`` with a bridge talking to ``fake``; the bridge is closed in the same loop."""

    async def run() -> Any:
        bridge = new_bridge(tmp_path, f"{fake.url}/api/")
        try:
            return await use(bridge)
        finally:
            await bridge.close()

    return asyncio.run(asyncio.wait_for(run(), 30))


def slack_posts(call: Call) -> Reply:
    """chat.postMessage: a parent gets PARENT_TS, a reply a ts of its own."""
    fields = call.fields()
    ts = f"1700000001.{len(fields.get('text', '')):06d}" if fields.get("thread_ts") else PARENT_TS
    return 200, {"ok": True, "channel": fields.get("channel"), "ts": ts}, {}


def posted(fake: FakePlatform) -> List[Dict[str, Any]]:
    return [call.fields() for call in fake.calls_to(POST)]


TRANSCRIPT = [
    ("customer", "My order #1042 arrived broken <!channel>"),
    ("bot", "I'm really sorry about this.\nWould you like me to connect you?"),
    ("customer", "yes & quickly"),
]


def test_open_thread_posts_the_parent_then_the_transcript_in_its_thread(
    tmp_path: Path, slack_api: FakePlatform
):
    slack_api.expect("POST", POST, slack_posts)

    async def use(bridge: SlackAgentBridge) -> str:
        return await bridge.open_thread(
            handoff_id="h-0123456789ab",
            customer_channel="slack",
            reason="customer asked for a human <@U0EVERYONE>",
            transcript=TRANSCRIPT,
        )

    assert with_bridge(tmp_path, slack_api, use) == PARENT_TS
    parent, history = posted(slack_api)
    assert parent["channel"] == AGENTS and "thread_ts" not in parent
    assert parent["text"] == (
        "Hand-off: customer asked for a human &lt;@U0EVERYONE&gt; — customer on slack "
        "(h-0123456789ab). Reply in this thread to answer: your first reply claims it for you "
        "(`!claim` claims it without a reply, `!release` lets another agent take it); write "
        "`!handback` to give the conversation back to the bot."
    )
    assert parent["mrkdwn"] is True and parent["unfurl_links"] is False
    assert history["channel"] == AGENTS and history["thread_ts"] == PARENT_TS
    assert history["text"] == (
        "Recent conversation:\n"
        "Customer: My order #1042 arrived broken &lt;!channel&gt;\n"
        "Bot: I'm really sorry about this. Would you like me to connect you?\n"
        "Customer: yes &amp; quickly"
    )
    call = slack_api.calls_to(POST)[0]
    assert call.headers["authorization"] == f"Bearer {TOKEN}"


def test_a_long_transcript_is_split_to_slacks_limit_and_an_empty_one_is_not_posted(
    tmp_path: Path, slack_api: FakePlatform
):
    slack_api.expect("POST", POST, slack_posts)
    long = [("customer", "where is my parcel & why <so> late " * 20)] * 40  # ~30,000 chars

    async def use(bridge: SlackAgentBridge) -> Tuple[str, str]:
        first = await bridge.open_thread(
            handoff_id="h-000000000001", customer_channel="sms", reason="r", transcript=long
        )
        second = await bridge.open_thread(
            handoff_id="h-000000000002",
            customer_channel="sms",
            reason="r",
            transcript=[("bot", "  ")],
        )
        return first, second

    assert with_bridge(tmp_path, slack_api, use) == (PARENT_TS, PARENT_TS)
    messages = posted(slack_api)
    parents = [m for m in messages if "thread_ts" not in m]
    history = [m for m in messages if m.get("thread_ts") == PARENT_TS]
    assert len(parents) == 2 and len(messages) == len(parents) + len(history)
    assert len(history) >= 10, "30,000 characters do not fit in fewer pieces"
    assert all(len(m["text"]) <= TEXT_LIMIT for m in history)
    assert history[0]["text"].startswith("Recent conversation:\nCustomer: where is my parcel")
    assert sum(m["text"].count("&lt;so&gt;") for m in history) == 40 * 20, "nothing is lost"


def test_customer_messages_and_notes_go_into_the_thread(tmp_path: Path, slack_api: FakePlatform):
    slack_api.expect("POST", POST, slack_posts)
    long = "The label says <fragile> & heavy. " * 200  # ~7,000 characters escaped

    async def use(bridge: SlackAgentBridge) -> None:
        await bridge.post_customer_message(PARENT_TS, "Is anyone there? <!here>")
        await bridge.post_customer_message(PARENT_TS, "   ")
        await bridge.post_customer_message(PARENT_TS, long)
        await bridge.post_note(PARENT_TS, f"Handed back to the bot by <@{AGENT}> <!channel>")

    with_bridge(tmp_path, slack_api, use)
    short, *pieces, note = posted(slack_api)
    assert all(m["thread_ts"] == PARENT_TS and m["channel"] == AGENTS for m in posted(slack_api))
    assert short["text"] == "*Customer:* Is anyone there? &lt;!here&gt;"
    assert len(pieces) == 3 and all(len(m["text"]) <= TEXT_LIMIT for m in pieces)
    assert pieces[0]["text"].startswith("*Customer:* The label says &lt;fragile&gt; &amp; heavy.")
    assert not any("Customer" in m["text"] for m in pieces[1:]), "the label goes on once"
    assert sum(m["text"].count("&lt;fragile&gt;") for m in pieces) == 200
    assert note["text"] == f"Handed back to the bot by <@{AGENT}> &lt;!channel&gt;"


def test_429_and_5xx_are_retried_until_slack_takes_the_message(
    tmp_path: Path, slack_api: FakePlatform
):
    limited: Reply = (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "30"})
    slack_api.expect("POST", POST, limited, times=1)
    slack_api.expect("POST", POST, (503, "<html>upstream busy</html>", {}), times=1)
    slack_api.expect("POST", POST, slack_posts)

    async def use(bridge: SlackAgentBridge) -> str:
        return await bridge.open_thread(
            handoff_id="h-000000000003", customer_channel="webchat", reason="r", transcript=[]
        )

    assert with_bridge(tmp_path, slack_api, use) == PARENT_TS
    calls = posted(slack_api)
    assert len(calls) == 3 and all(c["text"].startswith("Hand-off: r") for c in calls)


async def open_with_a_secret_transcript(bridge: SlackAgentBridge) -> str:
    """Open a thread whose transcript holds text no log may show (``secret order``)."""
    return await bridge.open_thread(
        handoff_id="h-000000000003",
        customer_channel="slack",
        reason="r",
        transcript=[("customer", "secret order 42")],
    )


def test_a_parent_that_cannot_be_posted_raises_with_slacks_reason_and_no_text(
    tmp_path: Path, slack_api: FakePlatform, caplog: pytest.LogCaptureFixture
):
    slack_api.expect("POST", POST, {"ok": False, "error": "channel_not_found"}, times=1)

    with caplog.at_level(logging.DEBUG), pytest.raises(AgentSlackError) as error:
        with_bridge(tmp_path, slack_api, open_with_a_secret_transcript)
    assert error.value.operation.startswith("chat.postMessage")
    assert "channel_not_found" in error.value.reason
    assert len(posted(slack_api)) == 1, "an error retrying cannot fix is not retried"
    assert "secret order" not in caplog.text


def test_failures_that_outlast_the_retries_raise(tmp_path: Path, slack_api: FakePlatform):
    slack_api.expect("POST", POST, (500, {"ok": False}, {}))

    async def use(bridge: SlackAgentBridge) -> None:
        await bridge.post_customer_message(PARENT_TS, "hello")

    with pytest.raises(AgentSlackError, match="HTTP 500"):
        with_bridge(tmp_path, slack_api, use)
    assert len(posted(slack_api)) == FAST.attempts


def test_a_transcript_that_cannot_be_posted_still_opens_the_thread(
    tmp_path: Path, slack_api: FakePlatform, caplog: pytest.LogCaptureFixture
):
    slack_api.expect("POST", POST, slack_posts, times=1)
    slack_api.expect("POST", POST, {"ok": False, "error": "msg_too_long"}, times=1)

    with caplog.at_level(logging.ERROR):
        assert with_bridge(tmp_path, slack_api, open_with_a_secret_transcript) == PARENT_TS
    assert "transcript of hand-off thread" in caplog.text and "msg_too_long" in caplog.text
    assert "secret order" not in caplog.text


# -------------------------------------------------------------------- input
def sanic_request(body: bytes, headers: Dict[str, str]) -> Request:
    """A sanic request as the server hands it to a route, body read."""
    no_transport: Any = None  # the body is set below, never read from a connection
    no_app: Any = None
    request = Request(
        b"/webhooks/agent/slack/events", Header(headers), "1.1", "POST", no_transport, no_app
    )
    request.body = body
    return request


def handle(
    tmp_path: Path, body: bytes, headers: Dict[str, str]
) -> Tuple[Optional[AgentSlackEvent], HTTPResponse]:
    async def run() -> Tuple[Optional[AgentSlackEvent], HTTPResponse]:
        bridge = new_bridge(tmp_path)
        try:
            return await bridge.handle_request(sanic_request(body, headers))
        finally:
            await bridge.close()

    return asyncio.run(asyncio.wait_for(run(), 30))


def reply_envelope(text: str, **extra: Any) -> Dict[str, Any]:
    """An agent's reply in the hand-off thread, as Slack posts it."""
    fields: Dict[str, Any] = {
        "user": AGENT,
        "channel": AGENTS,
        "channel_type": "channel",
        "thread_ts": PARENT_TS,
        "ts": "1700000050.000200",
    }
    fields.update(extra)
    return message_event(text, **fields)


def signed(envelope: Dict[str, Any]) -> Tuple[bytes, Dict[str, str]]:
    return event_request(envelope, timestamp=int(NOW))


def answer(http: HTTPResponse) -> Dict[str, Any]:
    assert http.body is not None
    return json.loads(http.body)


def test_an_agents_reply_in_the_thread_is_a_message_for_the_customer(tmp_path: Path):
    text = "Hi! I'm Ana &amp; I'll check &lt;now&gt;.\nSee <https://shop.example/returns|returns>"
    event, http = handle(tmp_path, *signed(reply_envelope(text)))
    assert http.status == 200 and answer(http) == {"ok": True}
    assert event == AgentSlackEvent(
        "message",
        thread_ts=PARENT_TS,
        text="Hi! I'm Ana & I'll check <now>.\nSee returns (https://shop.example/returns)",
        agent=AGENT,
    )
    # A reply also sent to the channel is still a reply in the thread.
    broadcast = reply_envelope("also here", subtype="thread_broadcast")
    event, _ = handle(tmp_path, *signed(broadcast))
    assert event is not None and (event.kind, event.text) == ("message", "also here")


def test_authorizations_of_the_wrong_type_are_ignored_not_a_crash(tmp_path: Path):
    # Found by tests/production/test_fuzz.py: a TypeError, answered 500.
    envelope = {**reply_envelope("on it"), "authorizations": 5}
    event, http = handle(tmp_path, *signed(envelope))
    assert http.status == 200 and event is not None and event.text == "on it"


@pytest.mark.parametrize("typed", ["!handback", "  !HandBack \n", "!HANDBACK"])
def test_handback_gives_the_conversation_back(tmp_path: Path, typed: str):
    event, http = handle(tmp_path, *signed(reply_envelope(typed)))
    assert http.status == 200
    assert event == AgentSlackEvent("handback", thread_ts=PARENT_TS, agent=AGENT)
    event, _ = handle(tmp_path, *signed(reply_envelope("!handback please, when done")))
    assert event is not None and event.kind == "message"


@pytest.mark.parametrize(
    "typed, kind", [("!claim", "claim"), (" !Release ", "release"), ("!CLAIM", "claim")]
)
def test_claim_and_release_commands(tmp_path: Path, typed: str, kind: str):
    event, http = handle(tmp_path, *signed(reply_envelope(typed)))
    assert http.status == 200
    assert event == AgentSlackEvent(kind, thread_ts=PARENT_TS, agent=AGENT)  # type: ignore[arg-type]


@pytest.mark.parametrize("typed", ["Here is your refund link", "!handback", "!claim"])
def test_someone_not_in_agent_user_ids_is_reported_without_their_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, typed: str
):
    with caplog.at_level(logging.DEBUG):
        event, http = handle(tmp_path, *signed(reply_envelope(typed, user="U0VISITOR1")))
    assert http.status == 200 and answer(http) == {"ok": True}
    assert event == AgentSlackEvent("not_agent", thread_ts=PARENT_TS, agent="U0VISITOR1")
    assert "refund link" not in caplog.text


@pytest.mark.parametrize(
    "changes",
    [
        {"bot_id": "B0BOT0001"},
        {"subtype": "bot_message"},
        {"subtype": "message_changed"},
        {"subtype": "message_deleted"},
        {"subtype": "channel_join"},
        {"user": BOT_USER},
        {"user": None},
        {"thread_ts": None},
        {"thread_ts": "1700000050.000200"},
        {"channel": "C0GENERAL1"},
        {"event_type": "reaction_added"},
        {"text": "   "},
    ],
    ids=[
        "bot_id",
        "bot_message",
        "edit",
        "delete",
        "join",
        "own-user",
        "no-user",
        "top-level",
        "thread-parent",
        "other-channel",
        "other-event",
        "blank",
    ],
)
def test_everything_but_an_agents_reply_is_ignored_with_200(
    tmp_path: Path, changes: Dict[str, Any]
):
    text = changes.pop("text", "a reply")
    event, http = handle(tmp_path, *signed(reply_envelope(text, **changes)))
    assert http.status == 200 and answer(http) == {"ok": True, "ignored": True}
    assert event == AgentSlackEvent("ignored")


def test_other_envelopes_are_ignored(tmp_path: Path):
    event, http = handle(tmp_path, *signed({"type": "app_rate_limited", "minute_rate_limited": 1}))
    assert http.status == 200 and event == AgentSlackEvent("ignored")


def test_url_verification_answers_the_challenge(tmp_path: Path):
    body, headers = signed({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNF"})
    event, http = handle(tmp_path, body, headers)
    assert http.status == 200 and answer(http) == {"challenge": "3eZbrw1aBm2rZgRNF"}
    assert event == AgentSlackEvent("challenge", text="3eZbrw1aBm2rZgRNF")


def test_a_retried_event_is_taken_in_once_even_after_a_restart(tmp_path: Path):
    envelope = reply_envelope("I'll refund it", event_id="Ev0AGENT1")
    first, _ = handle(tmp_path, *signed(envelope))
    assert first is not None and first.kind == "message"
    body, headers = signed(envelope)
    headers.update({"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    # handle() builds a new bridge each time: the ids are kept in the SQLite file.
    again, http = handle(tmp_path, body, headers)
    assert http.status == 200 and answer(http) == {"ok": True, "duplicate": True}
    assert again == AgentSlackEvent("ignored")
    other, _ = handle(tmp_path, *signed(reply_envelope("I'll refund it", event_id="Ev0AGENT2")))
    assert other is not None and other.kind == "message", "a new event id is a new message"


def bad_requests() -> List[Tuple[str, bytes, Dict[str, str], int, str]]:
    body, headers = signed(reply_envelope("secret order 42"))
    forged = {**headers, **signed_headers(body, "application/json", secret="wrong-secret")}
    forged["X-Slack-Request-Timestamp"] = headers["X-Slack-Request-Timestamp"]
    stale = signed_headers(body, "application/json", timestamp=int(NOW) - 301)
    unsigned = {"Content-Type": "application/json"}
    tampered = body.replace(b"secret order 42", b"secret order 43")
    not_json = b"{secret order 42"
    as_form = signed_headers(body, "application/x-www-form-urlencoded", timestamp=int(NOW))
    envelope = reply_envelope("secret order 42")
    del envelope["event_id"]
    no_id, no_id_headers = signed(envelope)
    return [
        ("forged", body, forged, 401, "does not match"),
        ("stale", body, stale, 401, "5 minutes"),
        ("unsigned", body, unsigned, 401, "not signed"),
        ("tampered", tampered, headers, 401, "does not match"),
        (
            "not-json",
            not_json,
            signed_headers(not_json, "application/json", timestamp=int(NOW)),
            400,
            "not valid JSON",
        ),
        ("form", body, as_form, 415, "content type"),
        ("no-event-id", no_id, no_id_headers, 400, "event_id"),
    ]


@pytest.mark.parametrize("name, body, headers, status, reason", bad_requests())
def test_refused_requests_are_4xx_and_logged_without_their_text(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    name: str,
    body: bytes,
    headers: Dict[str, str],
    status: int,
    reason: str,
):
    with caplog.at_level(logging.DEBUG):
        event, http = handle(tmp_path, body, headers)
    assert event is None
    assert http.status == status and reason in answer(http)["error"]
    assert reason in caplog.text and "secret order" not in caplog.text


def test_agent_text_keeps_what_the_customer_needs():
    assert agent_text("<mailto:help@shop.example|help@shop.example>") == "help@shop.example"
    assert agent_text("<https://a.example/x>") == "https://a.example/x"
    assert agent_text("ask <@U0BOSS01|maria> in <#C0SHIP01|shipping>") == (
        "ask @maria in #shipping"
    )
    assert agent_text("<!here> line one  \n\n  line   two") == "line one\n\nline two"
    assert agent_text("&amp;lt;") == "&lt;", "typed entities are unescaped once only"
