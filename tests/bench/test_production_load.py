"""bench/production_load.py and bench/soak.py: their counting, against a server on loopback.

The benchmarks themselves serve the real bot (minutes); here a small aiohttp server
stands in for Rasa's REST channel so every count can be checked by hand.
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List

import pytest
from aiohttp import web

from bench.production_load import CONVERSATION, ratios, run_level, summarise
from bench.soak import conversation_problem


def test_summary_and_ratios_by_hand():
    figures = summarise([0.1, 0.2, 0.3, 0.4], wall_s=2.0, errors=1, fallbacks=0)
    assert figures["messages"] == 4 and figures["throughput_msg_s"] == 2.0
    assert figures["p50_ms"] == 250.0 and figures["errors"] == 1
    stock = summarise([0.2, 0.4, 0.6, 0.8], wall_s=4.0, errors=0, fallbacks=0)
    assert ratios(figures, stock) == {
        "throughput_msg_s": 2.0, "p50_ms": 0.5, "p95_ms": 0.5, "p99_ms": 0.5
    }  # fmt: skip


def test_run_level_counts_replies_errors_and_fallbacks():
    """Every third message fails (HTTP 500), 'are you a robot' gets the fallback text."""
    seen: List[Dict[str, Any]] = []

    async def webhook(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        if len(seen) % 3 == 0:
            return web.json_response({"error": "boom"}, status=500)
        if body["message"] == "are you a robot":
            return web.json_response([{"text": "Sorry, I can't answer that myself."}])
        return web.json_response([{"text": "ok"}])

    async def scenario() -> Dict[str, Any]:
        app = web.Application()
        app.router.add_post("/webhooks/rest/webhook", webhook)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            return await run_level(f"http://127.0.0.1:{port}", 1, len(CONVERSATION), "t")
        finally:
            await runner.cleanup()

    figures = asyncio.run(scenario())
    assert len(seen) == len(CONVERSATION) == 5
    assert {body["sender"] for body in seen} == {seen[0]["sender"]}  # one conversation
    # Message 3 failed; the others were answered, message 4 with the fallback.
    assert figures["errors"] == 1 and figures["messages"] == 4
    assert figures["fallback_replies"] == 1


def user(text: str) -> Dict[str, Any]:
    return {"event": "user", "text": text}


BOT = {"event": "bot", "text": "hi"}
LISTEN = {"event": "action", "name": "action_listen"}


@pytest.mark.parametrize(
    "events, sent, problem",
    [
        ([user("a"), BOT, LISTEN, user("b"), BOT, LISTEN], ["a", "b"], None),
        ([user("a"), BOT, LISTEN], ["a", "b"], "lost"),
        ([user("a"), BOT, LISTEN, user("a"), BOT, LISTEN], ["a"], "duplicated"),
        ([user("b"), BOT, LISTEN, user("a"), BOT, LISTEN], ["a", "b"], "out of order"),
        ([user("a"), LISTEN, user("b"), BOT, LISTEN], ["a", "b"], "unanswered"),
        ([user("a"), BOT, user("b"), LISTEN, BOT, LISTEN], ["a", "b"], "interleaved"),
    ],
)
def test_conversation_problems(events: List[Dict[str, Any]], sent: List[str], problem: Any):
    assert conversation_problem(events, sent) == problem
