"""Web chat throughput and latency: rasa-llm's WebSocket channel against Rasa's stock
socket.io channel, same bot model, same server, same run.

    .venv/bin/python -m bench.channel_webchat [--messages 20] [--concurrency 1 10 50]
        [--text hello] [--warmup 5] [--out bench/results]

One `rasa run` serves both channels (`channels.webchat.WebChatInput` and `socketio`).
The stock channel runs without `session_persistence`: with the python-socketio that
Rasa 3.6 installs today, that option never joins the session's room (an un-awaited
`enter_room`), so every reply is lost. For each concurrency level N, N conversations run at
once, each its own session, each sending `--messages` messages one after the other;
latency is from sending a message to the first bot reply frame for it arriving back
on the socket, so it covers the channel, NLU, policies and the reply. The two
channels take turns going first at each level. Messages per second = all messages
of the level / wall time of the level. Writes bench/results/channel_webchat.json and
prints a Markdown table with ratios (web chat / stock; below 1 is faster for
latency, above 1 is more throughput).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List

import websockets

from bench import channel_common as shared
from bench.support.rasa_process import MODEL, RasaServer

Conversation = Callable[[str, int, str], Awaitable[List[float]]]


async def webchat_conversation(url: str, messages: int, text: str) -> List[float]:
    latencies = []
    async with websockets.connect(
        url.replace("http://", "ws://") + "/webhooks/webchat/webhook", origin=url
    ) as ws:
        await ws.send(json.dumps({"type": "hello"}))
        for expected in ("session", "history"):
            assert json.loads(await asyncio.wait_for(ws.recv(), 60))["type"] == expected
        for index in range(messages):
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "message", "id": f"bench-{index:08d}", "text": text}))
            while json.loads(await asyncio.wait_for(ws.recv(), 120))["type"] != "bot":
                pass
            latencies.append(time.perf_counter() - started)
    return latencies


async def socketio_conversation(url: str, messages: int, text: str) -> List[float]:
    """Rasa's socket.io channel over its WebSocket transport (Engine.IO 4, Socket.IO 5).

    Spoken directly with `websockets`, as the web chat is, so both run on the same
    client library: python-socketio's own client needs a newer aiohttp than Rasa 3.6's.
    """
    ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    latencies = []
    async with websockets.connect(ws_url) as ws:

        async def event() -> List[Any]:
            while True:
                packet = await asyncio.wait_for(ws.recv(), 120)
                if packet == "2":  # Engine.IO ping
                    await ws.send("3")
                elif packet.startswith("42"):
                    return json.loads(packet[2:])

        opened = await asyncio.wait_for(ws.recv(), 60)
        assert opened.startswith("0"), opened  # Engine.IO open
        await ws.send("40")  # Socket.IO connect to the default namespace
        while not (await asyncio.wait_for(ws.recv(), 60)).startswith("40"):
            pass
        await ws.send("42" + json.dumps(["session_request", {"session_id": None}]))
        name, session_id = await event()
        assert name == "session_confirm"
        for _ in range(messages):
            started = time.perf_counter()
            await ws.send(
                "42" + json.dumps(["user_uttered", {"message": text, "session_id": session_id}])
            )
            while (await event())[0] != "bot_uttered":
                pass
            latencies.append(time.perf_counter() - started)
    return latencies


async def level(
    conversation: Conversation, url: str, concurrency: int, messages: int, text: str
) -> Dict[str, float]:
    return await shared.measure(conversation(url, messages, text) for _ in range(concurrency))


def main() -> None:
    parser = shared.make_parser(
        __doc__, model=MODEL, text_help="what every customer says", warmup=5
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-webchat-") as tmp:
        workdir = Path(tmp)
        credentials = workdir / "credentials.yml"
        credentials.write_text(
            "channels.webchat.WebChatInput:\n"
            "  session_secret: bench-secret-0123456789abcdefghijklmnopqrstuv\n"
            # This measures serving, not the limits (50 pages from one address at once).
            "  rate_limits: {address: 'off', new_sessions: 'off', conversation: 'off'}\n"
            "socketio:\n"
            "  user_message_evt: user_uttered\n"
            "  bot_message_evt: bot_uttered\n"
        )
        server = RasaServer(args.model, workdir, credentials=credentials).start()
        try:
            # The first messages load lazily built parts of the model: not measured.
            for warm_up in (webchat_conversation, socketio_conversation):
                asyncio.run(warm_up(server.url, args.warmup, args.text))
            channels = {"webchat": webchat_conversation, "socketio": socketio_conversation}

            def run_level(name: str, concurrency: int) -> Dict[str, float]:
                return asyncio.run(
                    level(channels[name], server.url, concurrency, args.messages, args.text)
                )

            levels = shared.take_turns(list(channels), args.concurrency, run_level)
        finally:
            server.stop()

    # Every channel benchmark ends alike: its own levels and names through
    # channel_common's table and report.
    table = shared.markdown_table(
        levels, {"webchat": ("rasa-llm webchat", "webchat")}, "socketio", "stock socketio"
    )
    shared.report(args.out, shared.results_document("channel_webchat", args, levels), table)


if __name__ == "__main__":
    main()
