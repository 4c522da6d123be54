"""Load: 200 conversations at once, 2,000 messages, over the REST channel and the web chat.

Half the conversations use Rasa's REST channel, each message to another server than the
one before; half use the web chat on the two-worker server, each over one WebSocket
that sends all its ten messages at once without waiting for replies. Afterwards, for
every conversation, the tracker in PostgreSQL must hold its ten messages once each, in
the order sent, each answered before the next was handled, and the customer must have
received exactly the replies the tracker records, in that order (a page whose socket
closes opens it again and is shown the history, as the real page is).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any, Dict, List, Tuple

import aiohttp
import pytest
import websockets

from tests.production.conftest import Production
from tests.production.test_scale_out import assert_handled_in_turn
from tests.rasa_process import api_headers, rest_headers, rest_id

pytestmark = [pytest.mark.integration, pytest.mark.load]

CONVERSATIONS = 200
# Ten texts from the bot's own examples, so no message needs the generative fallback:
# this measures the serving path, not a language model on two cores.
TEXTS = [
    "hello there", "how are you", "are you a robot", "thanks so much", "what's your name",
    "hey bot", "is this a bot", "thank you very much", "who made you", "see you later",
]  # fmt: skip
# Seconds for the whole run: about 220 s on two quiet cores, 700 s with other heavy
# jobs sharing them (2026-12-02).
DEADLINE = 900.0


async def tracker(http: aiohttp.ClientSession, url: str, conversation: str) -> Dict[str, Any]:
    path = f"{url}/conversations/{conversation}/tracker"
    async with http.get(path, headers=api_headers()) as response:
        response.raise_for_status()
        return dict(await response.json())


async def rest_conversation(
    http: aiohttp.ClientSession, urls: List[str], index: int
) -> Tuple[str, List[str]]:
    """Send the texts one after another; return the conversation and every reply received."""
    sender = f"load-rest-{index}-{uuid.uuid4()}"
    received: List[str] = []
    for number, text in enumerate(TEXTS):
        url = urls[(index + number) % len(urls)]
        payload = {"sender": sender, "message": text}
        async with http.post(
            f"{url}/webhooks/rest/webhook", json=payload, headers=rest_headers()
        ) as response:
            assert response.status == 200, f"{sender} message {number}: HTTP {response.status}"
            received += [reply.get("text", "") for reply in await response.json()]
    return rest_id(sender), received


async def web_conversation(
    http: aiohttp.ClientSession, url: str, index: int
) -> Tuple[str, List[str]]:
    """Send all texts at once over one socket; return the conversation and the replies shown.

    As the page does, a socket that closes is opened again with the session's token,
    the history replaces what was shown, and every message not yet acknowledged is sent
    again with its id (the server drops the ones it already has).
    """
    ws_url = url.replace("http://", "ws://") + "/webhooks/webchat/webhook"
    ids = [f"msg-{index:04d}-{n:02d}" for n in range(len(TEXTS))]
    acked: List[str] = []
    shown: List[str] = []
    session: Dict[str, str] = {}
    for attempt in range(4):
        try:
            # No client pings, as a browser sends none.
            async with websockets.connect(
                ws_url, origin=url, open_timeout=120, ping_interval=None
            ) as ws:
                await ws.send(json.dumps({"type": "hello", **session}))
                given = json.loads(await ws.recv())
                assert given["type"] == "session", given
                session = {"session_id": given["session_id"], "token": given["token"]}
                history = json.loads(await ws.recv())
                shown = [m.get("text", "") for m in history["messages"] if m["from"] == "bot"]
                for message_id, text in zip(ids, TEXTS, strict=True):
                    if message_id not in acked:
                        await ws.send(
                            json.dumps({"type": "message", "id": message_id, "text": text})
                        )
                conversation = f"webchat:{session['session_id']}"
                await receive_until_answered(http, url, conversation, ws, acked, shown, attempt)
                break
        except websockets.ConnectionClosed as closed:
            print(f"web conversation {index}: socket closed ({closed}), opening it again")
    else:
        pytest.fail(f"web conversation {index}: the socket kept closing")
    # In the order sent, unless a reconnection sent some again.
    assert acked == ids if attempt == 0 else sorted(acked) == ids, acked
    return f"webchat:{session['session_id']}", shown


async def receive_until_answered(
    http: aiohttp.ClientSession,
    url: str,
    conversation: str,
    ws: Any,
    acked: List[str],
    shown: List[str],
    attempt: int,
) -> None:
    """Collect acks and replies until the tracker has every turn and the page every reply."""
    expected_replies = None
    while expected_replies is None or len(shown) < expected_replies:
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        except asyncio.TimeoutError:
            # Quiet for a moment: once the tracker has every turn, every reply has
            # been sent, and the count of bot events says how many to wait for.
            state = await tracker(http, url, conversation)
            users = [e for e in state["events"] if e["event"] == "user"]
            done = state["events"] and state["events"][-1].get("name") == "action_listen"
            if len(users) == len(TEXTS) and done:
                expected_replies = sum(e["event"] == "bot" for e in state["events"])
            continue
        if frame["type"] == "ack":
            # A duplicate only where a message was sent again after a reconnection.
            assert attempt > 0 or not frame["duplicate"], frame
            if frame["id"] not in acked:
                acked.append(frame["id"])
        elif frame["type"] == "bot":
            shown.append(frame.get("message", {}).get("text", ""))
        elif frame["type"] == "error":
            pytest.fail(f"web chat error frame: {frame}")


async def run_load(production: Production) -> List[Tuple[str, List[str]]]:
    timeout = aiohttp.ClientTimeout(total=DEADLINE)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        # The web chat's sockets on the two-worker server: with the REST conversations
        # alternating, each of the three workers then gets about a third of the load
        # (the single-worker server with half of it lagged past keepalive timeouts).
        conversations = [
            rest_conversation(http, production.urls, i)
            if i % 2 == 0
            else web_conversation(http, production.urls[0], i)
            for i in range(CONVERSATIONS)
        ]
        return list(await asyncio.wait_for(asyncio.gather(*conversations), DEADLINE))


def test_200_conversations_2000_messages_none_lost_doubled_or_out_of_order(
    production: Production,
):
    started = time.monotonic()
    results = asyncio.run(run_load(production))
    seconds = time.monotonic() - started
    print(f"{CONVERSATIONS * len(TEXTS)} messages in {seconds:.0f} s")

    async def trackers() -> List[Dict[str, Any]]:
        async with aiohttp.ClientSession() as http:
            return [await tracker(http, production.urls[0], sender) for sender, _ in results]

    total_user_events = 0
    for (sender, received), state in zip(results, asyncio.run(trackers()), strict=True):
        events = state["events"]
        users = [e["text"] for e in events if e["event"] == "user"]
        assert users == TEXTS, f"{sender}: {users}"
        assert_handled_in_turn(events)
        recorded = [e.get("text") or "" for e in events if e["event"] == "bot"]
        assert received == recorded, f"{sender}: the customer got {received}, not {recorded}"
        total_user_events += len(users)
    assert total_user_events == CONVERSATIONS * len(TEXTS) == 2000
    assert len({sender for sender, _ in results}) == CONVERSATIONS
