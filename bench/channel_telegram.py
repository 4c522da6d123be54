"""Telegram throughput and latency: rasa-llm's channel against Rasa's stock one, same
bot model, same server, same run.

    .venv/bin/python -m bench.channel_telegram [--messages 20] [--concurrency 1 10 50]
        [--text hello] [--warmup 5] [--out bench/results]

One `rasa run` serves both channels: ``channels.telegram.TelegramInput`` on
/webhooks/telegram/webhook and Rasa's stock ``TelegramInput`` (aiogram) on
/webhooks/telegram_stock/webhook. The stock channel is used as shipped except for three
things no configuration allows: its Bot API URL points at the local fake, its name
(and route) differ so both fit in one server, and the aiohttp session it opens for
setWebhook at start-up is closed afterwards: as shipped (Rasa 3.6.21, aiogram 2.15)
that session belongs to a loop that is gone, and every update fails with "Event loop
is closed". A local fake Bot API (as in the tests)
answers both; the stock channel also calls getMe on every update and setWebhook at
start-up, which the fake answers too.

For each concurrency level N, N conversations (private chats) run at once, each
sending `--messages` updates one after the other, each update as Telegram posts it
(with the secret token header for rasa-llm's channel). Latency is from posting an
update to the bot's reply (sendMessage) for it arriving at the fake Bot API, so it
covers the channel, NLU, policies and the reply, whether the webhook answered first
(rasa-llm) or after the reply (stock). The two channels take turns going first at
each level. Messages per second = all messages of the level / wall time of the level.
Writes bench/results/channel_telegram.json and prints a Markdown table with ratios
(rasa-llm / stock; below 1 is faster for latency, above 1 is more throughput).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from aiogram import Bot as AiogramBot
from aiogram.bot.api import TelegramAPIServer
from rasa.core.channels.telegram import TelegramInput as StockInput
from rasa.core.channels.telegram import TelegramOutput as StockOutput
from sanic import Blueprint

from bench import channel_common as shared

ROUTES = {"rasa-llm": "telegram", "stock": "telegram_stock"}


# ------------------------------------------- the stock channel, pointed at the fake
class StockTelegramOutput(StockOutput):
    """Rasa's stock TelegramOutput with its aiogram Bot talking to another Bot API URL."""

    def __init__(self, access_token: str, api_server: str) -> None:
        AiogramBot.__init__(
            self, access_token, server=TelegramAPIServer.from_base(api_server.rstrip("/"))
        )


class StockTelegramInput(StockInput):
    """Rasa's stock TelegramInput (its webhook code unchanged) under its own route."""

    api_server = ""

    @classmethod
    def name(cls) -> str:
        return ROUTES["stock"]

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> StockInput:
        given = credentials or {}
        made = cls(given.get("access_token"), given.get("verify"), given.get("webhook_url"))
        made.api_server = str(given["api_server"])
        return made

    def blueprint(self, on_new_message: Any) -> Blueprint:
        blueprint = super().blueprint(on_new_message)
        blueprint.name = "telegram_stock_webhook"  # the stock name is taken by ours
        return blueprint

    def get_output_channel(self) -> StockTelegramOutput:
        channel = StockTelegramOutput(str(self.access_token), self.api_server)

        async def set_webhook() -> None:
            await channel.set_webhook(url=self.webhook_url)  # as the stock channel does
            # The one fix: without it the aiohttp session made in this short-lived loop
            # is reused in the server's loop and every update fails with "Event loop is
            # closed" (Rasa 3.6.21 with aiogram 2.15); closed, aiogram makes a new one.
            await channel.session.close()

        asyncio.run(set_webhook())
        return channel


# ------------------------------------------------------------------ the load
async def conversation(
    client: Any, url: str, channel: str, api: Any, messages: int, text: str
) -> List[float]:
    from bench.support import telegram_payloads as tg

    chat = tg.next_id()
    key = str(chat)
    headers = tg.headers(secret=tg.SECRET if channel == "rasa-llm" else None)
    latencies = []
    for index in range(messages):
        before = len(api.arrivals.get(key, ()))
        started = time.monotonic()
        response = await client.post(
            f"{url}/webhooks/{ROUTES[channel]}/webhook",
            content=tg.body(tg.text_message(chat, text)),
            headers=headers,
        )
        response.raise_for_status()
        deadline = started + 120
        while len(api.arrivals.get(key, ())) <= before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{channel}: no reply to message {index} in chat {chat}")
            await asyncio.sleep(0.002)
        latencies.append(api.arrivals[key][before] - started)
    return latencies


async def level(
    url: str, channel: str, api: Any, concurrency: int, messages: int, text: str
) -> Dict[str, float]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency + 5)
    async with httpx.AsyncClient(timeout=180, limits=limits) as client:
        return await shared.measure(
            conversation(client, url, channel, api, messages, text) for _ in range(concurrency)
        )


def main() -> None:
    from bench.support import telegram_payloads as tg
    from bench.support.rasa_process import MODEL, RasaServer

    parser = shared.make_parser(
        __doc__, model=MODEL, text_help="what every customer says", warmup=5
    )
    args = parser.parse_args()

    fake, api = tg.fake_bot_api("sendMessage")
    fake.expect("POST", tg.path("getMe"), {"ok": True, "result": tg.BOT_USER})
    fake.expect("POST", tg.path("setWebhook"), {"ok": True, "result": True})
    with tempfile.TemporaryDirectory(prefix="bench-telegram-") as tmp:
        workdir = Path(tmp)
        credentials = workdir / "credentials.yml"
        credentials.write_text(
            "channels.telegram.TelegramInput:\n"
            f'  access_token: "{tg.TOKEN}"\n'
            f'  verify: "{tg.BOT_USERNAME}"\n'
            f'  secret_token: "{tg.SECRET}"\n'
            f'  base_url: "{fake.url}/bot"\n'
            "bench.channel_telegram.StockTelegramInput:\n"
            f'  access_token: "{tg.TOKEN}"\n'
            f'  verify: "{tg.BOT_USERNAME}"\n'
            '  webhook_url: "https://bot.example.com/webhooks/telegram/webhook"\n'
            f'  api_server: "{fake.url}"\n'
        )
        server = RasaServer(args.model, workdir, credentials=credentials).start()
        try:
            # The first messages load lazily built parts of the model: not measured.
            for name in ROUTES:
                asyncio.run(level(server.url, name, api, 1, args.warmup, args.text))

            def run_level(name: str, concurrency: int) -> Dict[str, float]:
                return asyncio.run(
                    level(server.url, name, api, concurrency, args.messages, args.text)
                )

            levels = shared.take_turns(list(ROUTES), args.concurrency, run_level)
        except Exception:
            print(server.log()[-4000:])
            raise
        finally:
            server.stop()
            fake.stop()
    fake.assert_no_unexpected_calls()

    # Every channel benchmark ends alike: its own levels and names through
    # channel_common's table and report.
    table = shared.markdown_table(
        levels, {"rasa-llm": ("rasa-llm telegram", "rasa-llm")}, "stock", "stock telegram"
    )
    shared.report(args.out, shared.results_document("channel_telegram", args, levels), table)


if __name__ == "__main__":
    main()
