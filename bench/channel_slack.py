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

import asyncio
import itertools
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import aiohttp
from rasa.core.channels.channel import InputChannel, OutputChannel
from rasa.core.channels.slack import SlackInput as RasaSlackInput

from bench import channel_common as shared
from bench.support.fake_platform import Call, FakePlatform, Reply
from bench.support.rasa_process import MODEL, RasaServer
from bench.support.slack_payloads import SECRET, TOKEN, event_request, message_event

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

    def get_output_channel(  # positional: Rasa's SlackInput calls it (channel, thread_id)
        self, channel: Optional[str] = None, thread_id: Optional[str] = None
    ) -> OutputChannel:
        output = super().get_output_channel(channel=channel, thread_id=thread_id)
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
        return await shared.measure(
            conversation(session, url, replies, messages, text) for _ in range(concurrency)
        )


def main() -> None:
    parser = shared.make_parser(
        __doc__, model=MODEL, text_help="what every customer says (one reply expected)"
    )
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

            def run_level(name: str, concurrency: int) -> Dict[str, float]:
                url = f"{server.url}/webhooks/{ROUTES[name]}/webhook"
                return asyncio.run(level(url, replies, concurrency, args.messages, args.text))

            levels = shared.take_turns(list(ROUTES), args.concurrency, run_level)
        finally:
            server.stop()
            fake.stop()
    fake.assert_no_unexpected_calls()

    ours, stock = ROUTES  # the table labels the channels by these names
    table = shared.markdown_table(levels, {ours: (ours, "rasa-llm")}, stock, stock)
    shared.report(args.out, shared.results_document("channel_slack", args, levels), table)


if __name__ == "__main__":
    main()
