"""Slack throughput and latency: rasa-llm's Slack channel against Rasa's stock one,
same bot model, same server, same run.

    .venv/bin/python -m bench.channel_slack [--messages 20] [--concurrency 1 10 50]
        [--text hello] [--out bench/results]

One `rasa run` serves both channels: ``channels.slack.SlackInput`` on
``/webhooks/slack/webhook`` and Rasa's stock ``SlackInput`` on
``/webhooks/stock_slack/webhook`` (:class:`StockSlackInput` below only renames it and
points its Web API client at the fake; the stock channel has no setting for either).
A local fake Slack Web API takes the replies. For each concurrency level N, N
conversations (one Slack user and DM each) run at once, each sending `--messages`
signed message events one after the other; latency is from posting the signed event
to the reply's ``chat.postMessage`` arriving at the fake, so it covers verification,
de-duplication, NLU, policies and the outgoing call. Both channels acknowledge at once
and answer out of band. The channels take turns going first at each level. Messages
per second = all messages of the level / wall time of the level. Writes
bench/results/channel_slack.json and prints a Markdown table with ratios (ours /
stock; below 1 is faster for latency, above 1 is more throughput).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import aiohttp
import numpy as np
from rasa.core.channels.channel import InputChannel, OutputChannel
from rasa.core.channels.slack import SlackInput as RasaSlackInput

from tests.channels.slack_payloads import SECRET, TOKEN, event_request, message_event
from tests.fake_platform import Call, FakePlatform, Reply
from tests.rasa_process import MODEL, RasaServer

ROOT = Path(__file__).resolve().parents[1]
ROUTES = {"rasa-llm slack": "slack", "stock slack": "stock_slack"}


class StockSlackInput(RasaSlackInput):
    """Rasa's stock Slack channel, unchanged but for its route and its API address."""

    api_url = "https://slack.com/api/"

    @classmethod
    def name(cls) -> str:
        return "stock_slack"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        given = dict(credentials or {})
        api_url = given.pop("api_url", cls.api_url)
        channel = super().from_credentials(given)
        channel.api_url = api_url  # type: ignore[attr-defined]
        return channel

    def get_output_channel(
        self, channel: Optional[str] = None, thread_id: Optional[str] = None
    ) -> OutputChannel:
        output = super().get_output_channel(channel, thread_id)
        output.client.base_url = self.api_url  # type: ignore[attr-defined]
        return output


class Replies:
    """Wakes the conversation waiting on a DM channel when a reply for it arrives."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting: Dict[str, tuple] = {}

    def expect(self, channel: str) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        with self.lock:
            self.waiting[channel] = (asyncio.get_running_loop(), future)
        return future

    def __call__(self, call: Call) -> Reply:
        arrived = time.perf_counter()
        channel = str(call.fields().get("channel"))
        with self.lock:
            waiter = self.waiting.pop(channel, None)
        if waiter is not None:
            loop, future = waiter
            loop.call_soon_threadsafe(_resolve, future, arrived)
        return 200, {"ok": True, "channel": channel, "ts": f"{time.time():.6f}"}, {}


def _resolve(future: asyncio.Future, value: float) -> None:
    if not future.done():
        future.set_result(value)


_ids = itertools.count()


async def conversation(
    session: aiohttp.ClientSession, url: str, replies: Replies, messages: int, text: str
) -> List[float]:
    number = next(_ids)
    user, channel = f"UBENCH{number:06d}", f"DBENCH{number:06d}"
    latencies = []
    for _ in range(messages):
        body, headers = event_request(message_event(text, user=user, channel=channel))
        arrived = replies.expect(channel)
        started = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as response:
            assert response.status == 200, await response.text()
        latencies.append(await asyncio.wait_for(arrived, 120) - started)
    return latencies


async def level(
    url: str, replies: Replies, concurrency: int, messages: int, text: str
) -> Dict[str, float]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=180)) as session:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(conversation(session, url, replies, messages, text) for _ in range(concurrency))
        )
        wall = time.perf_counter() - started
    latencies = [value for result in results for value in result]
    return {
        "messages": len(latencies),
        "messages_per_second": len(latencies) / wall,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p95_ms": 1000 * float(np.percentile(latencies, 95)),
        "mean_ms": 1000 * statistics.fmean(latencies),
    }


def markdown(results: Dict[str, Any]) -> str:
    lines = [
        "| conversations | channel | msg/s | p50 ms | p95 ms |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    ours_name, stock_name = ROUTES
    for row in results["levels"]:
        ours, stock = row[ours_name], row[stock_name]
        for name in ROUTES:
            values = row[name]
            lines.append(
                f"| {row['concurrency']} | {name} | {values['messages_per_second']:.1f} "
                f"| {values['p50_ms']:.0f} | {values['p95_ms']:.0f} |"
            )
        lines.append(
            f"| {row['concurrency']} | ratio rasa-llm/stock "
            f"| {ours['messages_per_second'] / stock['messages_per_second']:.2f}x "
            f"| {ours['p50_ms'] / stock['p50_ms']:.2f}x "
            f"| {ours['p95_ms'] / stock['p95_ms']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20, help="per conversation")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument(
        "--text", default="hello", help="what every customer says (one reply expected)"
    )
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    replies = Replies()
    fake = FakePlatform("slack").start()
    fake.expect("POST", "/api/chat.postMessage", replies)
    with tempfile.TemporaryDirectory(prefix="bench-slack-") as tmp:
        workdir = Path(tmp)
        credentials = workdir / "credentials.yml"
        keys = f'  slack_token: "{TOKEN}"\n  slack_signing_secret: "{SECRET}"\n'
        keys += f'  api_url: "{fake.url}/api/"\n'
        credentials.write_text(
            f"channels.slack.SlackInput:\n{keys}bench.channel_slack.StockSlackInput:\n{keys}"
        )
        server = RasaServer(args.model, workdir, credentials=credentials).start()
        try:
            for route in ROUTES.values():  # warm-up: first message of each channel
                asyncio.run(level(f"{server.url}/webhooks/{route}/webhook", replies, 1, 1, "hi"))
            levels = []
            for index, concurrency in enumerate(args.concurrency):
                order = list(ROUTES) if index % 2 == 0 else list(reversed(ROUTES))
                row: Dict[str, Any] = {"concurrency": concurrency, "first": order[0]}
                for name in order:
                    url = f"{server.url}/webhooks/{ROUTES[name]}/webhook"
                    row[name] = asyncio.run(
                        level(url, replies, concurrency, args.messages, args.text)
                    )
                levels.append(row)
        finally:
            server.stop()
            fake.stop()
    fake.assert_no_unexpected_calls()

    results = {
        "benchmark": "channel_slack",
        "text": args.text,
        "messages_per_conversation": args.messages,
        "model": str(args.model),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "levels": levels,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "channel_slack.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
