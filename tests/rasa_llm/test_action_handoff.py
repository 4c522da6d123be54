"""action_handoff against a loopback desk: pause only when the desk has the hand-off."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List, Tuple

import pytest
from aiohttp import web
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from rasa_llm.handoff.action_handoff import (
    DESK_TOKEN_ENV,
    DESK_URL_ENV,
    ActionHandoff,
    recent_turns,
)

TOKEN = "desk-token-for-tests-0123456789"


def _tracker() -> Tracker:
    events: List[Dict[str, Any]] = [
        {"event": "action", "name": "action_listen"},
        {
            "event": "user",
            "text": "this is useless",
            "timestamp": 10.0,
            "parse_data": {
                "intent": {"name": "complain"},
                "entities": [{"entity": "sentiment", "value": "negative"}],
            },
        },
        {"event": "bot", "text": "I'm really sorry about this."},
        {"event": "action", "name": "utter_apologize"},
        {"event": "action", "name": "action_listen"},
        {
            "event": "user",
            "text": "still nothing works!",
            "timestamp": 20.0,
            "parse_data": {
                "intent": {"name": "complain"},
                "entities": [{"entity": "sentiment", "value": "negative"}],
            },
        },
    ]
    return Tracker("customer-7", {}, events[-1], events, False, None, {}, "action_listen")


async def _run_against(status: int) -> Tuple[List[Dict[str, Any]], Dict[str, Any], List[Any]]:
    received: Dict[str, Any] = {}

    async def handoffs(request: web.Request) -> web.Response:
        received["auth"] = request.headers.get("Authorization")
        received["body"] = await request.json()
        return web.json_response({"status": "open"}, status=status)

    app = web.Application()
    app.router.add_post("/webhooks/agent/handoffs", handoffs)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(DESK_URL_ENV, f"http://127.0.0.1:{port}/webhooks/agent")
            patch.setenv(DESK_TOKEN_ENV, TOKEN)
            dispatcher = CollectingDispatcher()
            events = await ActionHandoff().run(dispatcher, _tracker(), {})
    finally:
        await runner.cleanup()
    return dispatcher.messages, received, events


def test_the_desk_gets_the_handoff_then_the_bot_pauses():
    messages, received, events = asyncio.run(_run_against(201))
    assert received["auth"] == f"Bearer {TOKEN}"
    body = received["body"]
    assert body["sender_id"] == "customer-7" and body["reason"] == "negative_turns"
    assert body["since"] == 20.0
    # The desk takes the channel from the conversation id, not from this body.
    assert "channel" not in body
    assert body["transcript"][-1] == ["customer", "still nothing works!"]
    assert [m["response"] for m in messages] == ["utter_handoff"]
    assert [e["event"] for e in events] == ["pause"]


def test_a_desk_that_refuses_leaves_the_bot_talking():
    messages, _, events = asyncio.run(_run_against(403))
    assert [m["response"] for m in messages] == ["utter_handoff_unavailable"]
    assert events == []


def test_no_token_no_pause(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(DESK_TOKEN_ENV, raising=False)
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionHandoff().run(dispatcher, _tracker(), {}))
    assert events == [] and dispatcher.messages[0]["response"] == "utter_handoff_unavailable"


def test_an_unreachable_desk_fails_fast(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(DESK_TOKEN_ENV, TOKEN)
    monkeypatch.setenv(DESK_URL_ENV, "http://127.0.0.1:9/webhooks/agent")  # discard port
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionHandoff().run(dispatcher, _tracker(), {}))
    assert events == [] and dispatcher.messages[0]["response"] == "utter_handoff_unavailable"


def test_recent_turns_keep_the_last_texts_in_order():
    turns = recent_turns(_tracker().events, turns=2)
    assert turns == [("bot", "I'm really sorry about this."), ("customer", "still nothing works!")]
    assert json.loads(json.dumps(turns)) == [list(t) for t in turns]
