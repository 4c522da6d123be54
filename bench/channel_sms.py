"""SMS throughput and latency: rasa-llm's Twilio channel against Rasa's stock one, same
bot model, same run.

    .venv/bin/python -m bench.channel_sms [--messages 20] [--concurrency 1 10 50]
        [--text hello] [--warmup 20] [--twiml] [--out bench/results]

Both channels are named ``twilio`` (same webhook route), so each gets its own ``rasa
run``, one after the other, with the same model. Twilio's REST API is a local fake
(:class:`bench.support.fake_platform.FakePlatform`). The stock channel is Rasa's ``TwilioInput``
unchanged except for one line that points its client at the fake
(:class:`StockTwilioAtFake`); it checks no signature, the requests are signed anyway.
Each server first gets ``--warmup`` unmeasured messages (the model and the HTTP clients
warm up over the first several). For each concurrency level N, N customers (phone
numbers) text at once, each sending ``--messages`` messages one after the other; latency
runs from posting the signed webhook to the first reply for it reaching the fake's
``Messages.json`` (with ``--twiml``, also rasa-llm in ``reply_mode: twiml``, where the
reply is in the webhook's answer). ``--text`` should get a one-message reply ("hello"
does). Messages per second = all messages of the level / wall time of the level. Writes
bench/results/channel_sms.json and prints a Markdown table with ratios (rasa-llm /
stock; below 1 is faster for latency, above 1 is more throughput).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from rasa.core.channels.channel import InputChannel, OutputChannel
from rasa.core.channels.twilio import TwilioInput

from bench import channel_common as shared

ACCOUNT_SID = "AC" + "be7c" * 8
AUTH_TOKEN = "bench-auth-token-0c41"
NUMBER = "+15005550006"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
WEBHOOK = "/webhooks/twilio/webhook"


class StockTwilioAtFake(TwilioInput):
    """Rasa's stock Twilio channel; only its REST client's base URL is the fake's."""

    api_base_url = "https://api.twilio.com"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        channel = super().from_credentials(credentials)
        channel.api_base_url = (credentials or {})["api_base_url"]  # type: ignore[attr-defined]
        return channel

    def get_output_channel(self) -> OutputChannel:
        output = super().get_output_channel()
        output.api.base_url = self.api_base_url  # type: ignore[attr-defined]
        return output


class Replies:
    """Wakes the customer waiting for a reply when the fake API receives it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: Dict[str, Tuple[asyncio.AbstractEventLoop, asyncio.Future]] = {}

    def expect(self, number: str) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            self._waiting[number] = (loop, future)
        return future

    def answer(self, call: Any) -> Tuple[int, Dict[str, Any], Dict[str, str]]:
        arrived = time.perf_counter()
        number = call.form.get("To", "")
        with self._lock:
            waiting = self._waiting.pop(number, None)
        if waiting is not None:
            loop, future = waiting
            loop.call_soon_threadsafe(_resolve, future, arrived)
        return 201, {"sid": "SM" + "0" * 32, "status": "queued", "to": number}, {}


def _resolve(future: asyncio.Future, value: float) -> None:
    if not future.done():
        future.set_result(value)


_numbers = itertools.count(1)
_sids = itertools.count(1)


async def customer(
    session: Any, url: str, replies: Replies, messages: int, text: str, twiml: bool
) -> List[float]:
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)
    number = f"+1777{next(_numbers):07d}"
    latencies = []
    for _ in range(messages):
        fields = {
            "MessageSid": f"SM{next(_sids):032x}",
            "AccountSid": ACCOUNT_SID,
            "From": number,
            "To": NUMBER,
            "Body": text,
            "NumMedia": "0",
            "SmsStatus": "received",
        }
        headers = {"X-Twilio-Signature": validator.compute_signature(url + WEBHOOK, fields)}
        reply = None if twiml else replies.expect(number)
        started = time.perf_counter()
        async with session.post(url + WEBHOOK, data=fields, headers=headers) as answer:
            body = await answer.text()
            answered = time.perf_counter()
            assert answer.status < 300, (answer.status, body[:200])
        if twiml:
            assert "<Message>" in body, body[:200]
            latencies.append(answered - started)
        else:
            assert reply is not None
            latencies.append(await asyncio.wait_for(reply, 300) - started)
    return latencies


async def level(
    url: str, replies: Replies, concurrency: int, messages: int, text: str, twiml: bool
) -> Dict[str, float]:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=600)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        return await shared.measure(
            customer(session, url, replies, messages, text, twiml) for _ in range(concurrency)
        )


def credentials(variant: str, api_url: str) -> str:
    common = (
        f'  account_sid: "{ACCOUNT_SID}"\n'
        f'  auth_token: "{AUTH_TOKEN}"\n'
        f'  twilio_number: "{NUMBER}"\n'
        f'  api_base_url: "{api_url}"\n'
    )
    if variant == "stock":
        return "bench.channel_sms.StockTwilioAtFake:\n" + common
    mode = "twiml" if variant == "rasa_llm_twiml" else "rest"
    return f"channels.sms.TwilioSmsInput:\n{common}  reply_mode: {mode}\n"


def run_variant(variant: str, args: argparse.Namespace) -> List[Dict[str, Any]]:
    from bench.support.fake_platform import FakePlatform
    from bench.support.rasa_process import RasaServer

    replies = Replies()
    fake = FakePlatform("twilio").start()
    fake.expect("POST", MESSAGES_PATH, replies.answer)
    twiml = variant == "rasa_llm_twiml"
    try:
        with tempfile.TemporaryDirectory(prefix=f"bench-sms-{variant}-") as tmp:
            workdir = Path(tmp)
            (workdir / "credentials.yml").write_text(credentials(variant, fake.url))
            server = RasaServer(args.model, workdir, credentials=workdir / "credentials.yml")
            server.start()
            try:
                # The first messages load lazily built parts of the model: not measured.
                asyncio.run(level(server.url, replies, 1, args.warmup, args.text, twiml))
                rows = []
                for concurrency in args.concurrency:
                    measured = asyncio.run(
                        level(server.url, replies, concurrency, args.messages, args.text, twiml)
                    )
                    rows.append({"concurrency": concurrency, **measured})
                    print(f"{variant} x{concurrency}: {measured}", flush=True)
            finally:
                server.stop()
        fake.assert_no_unexpected_calls()
    finally:
        fake.stop()
    return rows


NAMES = {
    "rasa_llm": "rasa-llm sms (REST)",
    "rasa_llm_twiml": "rasa-llm sms (TwiML)",
    "stock": "stock twilio",
}


def main() -> None:
    from bench.support.rasa_process import MODEL

    parser = shared.make_parser(
        __doc__,
        model=MODEL,
        text_help="what every customer texts",
        warmup=20,
        warmup_help="unmeasured messages per server",
        switches={"--twiml": "also rasa-llm in TwiML mode"},
    )
    args = parser.parse_args()

    variants = ["rasa_llm", *(["rasa_llm_twiml"] if args.twiml else []), "stock"]
    measured = {variant: run_variant(variant, args) for variant in variants}
    levels = [
        {
            "concurrency": concurrency,
            **{
                variant: {k: v for k, v in rows[index].items() if k != "concurrency"}
                for variant, rows in measured.items()
            },
        }
        for index, concurrency in enumerate(args.concurrency)
    ]
    results = shared.results_document(
        "channel_sms",
        args,
        levels,
        latency="signed webhook posted -> first reply at the fake Messages.json "
        "(TwiML: -> webhook answer)",
    )
    ours = {variant: (label, label) for variant, label in NAMES.items() if variant != "stock"}
    table = shared.markdown_table(levels, ours, "stock", NAMES["stock"])
    shared.report(args.out, results, table)


if __name__ == "__main__":
    main()
