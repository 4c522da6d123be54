"""Serving under load, production set-up: rasa-llm's pipeline against Rasa's stock one.

    .venv/bin/python -m bench.production_load [--levels 1,10,50,200] [--out bench/results]

Both models of the same bot (its own pipeline, and `bench/stock_config.yml`: DIET and
friends, the bot's own policies) are served as README.md's production set-up runs them:
`rasa run` with bot/endpoints.production.yml (PostgreSQL tracker store, Redis lock
store, the metrics event broker), one Sanic worker each, one shared action server.
PostgreSQL and Redis are started on loopback for the run (bench/support/postgres_server.py,
bench/support/redis_server.py), as the tests do.

At each level N, N conversations run at once over the REST channel, each sending its
messages one after another (the next when the reply has come). Each level runs on one
server and then the other, alternating which goes first, the other server idle: the
same machine for both. Reported per level and server: throughput (messages per second
of wall time), p50/p95/p99 of a message's round trip, errors, and fallback replies
(the conversation is taken from the bot's own examples, so neither pipeline should
need its fallback; a model that misreads one is counted, not hidden). Peak memory is
each server's VmHWM after all levels. The fallback's language model is not measured
here (bench/fallback_latency.py does): the action server's fallback is pointed at a
closed port and answers with its scripted reply at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import aiohttp
import numpy as np
import yaml

from bench.nlu_latency import peak_rss_mib, stock_config, train
from bench.support.postgres_server import PostgresServer
from bench.support.rasa_process import (
    BOT,
    REST_CREDENTIALS,
    ActionServer,
    RasaServer,
    bot_inputs,
    free_port,
    rest_headers,
    trained_bot_model,
)
from bench.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
LEVELS = (1, 10, 50, 200)
# A short customer-service conversation from the bot's own training examples: a
# greeting, an order looked up by the action server (PostgreSQL-backed tracker, Redis
# lock, action call), thanks, small talk, goodbye.
CONVERSATION = [
    "hello there", "where is order 10023?", "thank you very much", "are you a robot",
    "see you later",
]  # fmt: skip
# Messages per conversation at each level: enough for stable percentiles at low levels,
# bounded at 200 conversations so the whole run stays near a quarter of an hour.
MESSAGES_PER_CONVERSATION = {1: 40, 10: 10, 50: 5, 200: 3}
FALLBACK_TEXTS = ("Sorry, I can't answer that myself",)


def percentile(values: List[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summarise(
    latencies_s: List[float], wall_s: float, errors: int, fallbacks: int
) -> Dict[str, Any]:
    """Throughput and round-trip percentiles (ms) of one level on one server."""
    return {
        "messages": len(latencies_s),
        "errors": errors,
        "fallback_replies": fallbacks,
        "wall_s": round(wall_s, 2),
        "throughput_msg_s": round(len(latencies_s) / wall_s, 2) if wall_s > 0 else float("nan"),
        "p50_ms": round(percentile(latencies_s, 50) * 1000, 1),
        "p95_ms": round(percentile(latencies_s, 95) * 1000, 1),
        "p99_ms": round(percentile(latencies_s, 99) * 1000, 1),
    }


def ratios(ours: Dict[str, Any], stock: Dict[str, Any]) -> Dict[str, float]:
    """ours / stock for each figure (below 1 is better for latency, above for throughput)."""
    keys = ("throughput_msg_s", "p50_ms", "p95_ms", "p99_ms")
    return {key: round(float(ours[key]) / float(stock[key]), 2) for key in keys}


async def conversation(
    http: aiohttp.ClientSession, url: str, messages: int, tag: str
) -> Tuple[List[float], int, int]:
    """Send ``messages`` texts of CONVERSATION in turn; (round trips, errors, fallbacks)."""
    sender = f"bench-{tag}-{uuid.uuid4()}"
    latencies: List[float] = []
    errors = fallbacks = 0
    for number in range(messages):
        payload = {"sender": sender, "message": CONVERSATION[number % len(CONVERSATION)]}
        started = time.perf_counter()
        try:
            async with http.post(
                f"{url}/webhooks/rest/webhook", json=payload, headers=rest_headers()
            ) as response:
                replies = await response.json() if response.status == 200 else None
        except (aiohttp.ClientError, asyncio.TimeoutError):
            replies = None
        if not replies:  # an HTTP error, or no reply at all: both are failures here
            errors += 1
            continue
        latencies.append(time.perf_counter() - started)
        texts = " ".join(str(reply.get("text", "")) for reply in replies)
        fallbacks += any(text in texts for text in FALLBACK_TEXTS)
    return latencies, errors, fallbacks


async def run_level(url: str, level: int, messages: int, tag: str) -> Dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=600)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(conversation(http, url, messages, f"{tag}-{level}-{i}") for i in range(level))
        )
        wall = time.perf_counter() - started
    latencies = [value for result in results for value in result[0]]
    return summarise(
        latencies, wall, sum(result[1] for result in results), sum(result[2] for result in results)
    )


def fallback_config(workdir: Path) -> Path:
    """bot/fallback.yml with the language model on a port nothing listens on."""
    settings = yaml.safe_load((BOT / "fallback.yml").read_text())
    settings["knowledge_dir"] = str(BOT / settings["knowledge_dir"])
    for other in settings.get("other_languages", {}).values():
        other["knowledge_dir"] = str(BOT / other["knowledge_dir"])
    settings["generation"] = {
        "backend": "openai",
        "openai": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "model": "none"},
    }
    path = workdir / "fallback.yml"
    path.write_text(yaml.safe_dump(settings))
    return path


@contextlib.contextmanager
def production_servers(models: Dict[str, Path], workdir: Path) -> Iterator[Dict[str, RasaServer]]:
    """One `rasa run` per model (one worker each) on README.md's production endpoints,
    with PostgreSQL, Redis and one action server of the run's own."""
    credentials = workdir / "credentials.yml"
    # The REST channel as shipped, without its rate limits: this measures serving.
    no_limits = "  rate_limits: {conversation: 'off'}\n"
    credentials.write_text(REST_CREDENTIALS + no_limits)
    (workdir / "redis").mkdir()
    with PostgresServer() as postgres, RedisServer(workdir / "redis") as redis:
        actions_port = free_port()
        actions = ActionServer(
            workdir,
            port=actions_port,
            env={
                "RASA_LLM_FALLBACK_CONFIG": str(fallback_config(workdir)),
                "RASA_LLM_FALLBACK_WARM_UP": "0",
            },
        ).start()
        servers: Dict[str, RasaServer] = {}
        try:
            for name, model in models.items():
                folder = workdir / name
                folder.mkdir()
                env = {
                    "RASA_LLM_ACTION_URL": f"http://127.0.0.1:{actions_port}/webhook",
                    "RASA_LLM_DATABASE_URL": postgres.create_database(name.replace("-", "_")),
                    "RASA_LLM_REDIS_HOST": redis.host,
                    "RASA_LLM_REDIS_PORT": str(redis.port),
                    "SANIC_WORKERS": "1",
                }
                servers[name] = RasaServer(
                    model, folder, credentials=credentials,
                    endpoints=BOT / "endpoints.production.yml", env=env,
                ).start()  # fmt: skip
            yield servers
        finally:
            for server in servers.values():
                server.stop()
            actions.stop()


def peak_memory_mib(servers: Dict[str, RasaServer]) -> Dict[str, float]:
    return {
        name: round(peak_rss_mib(server.process.pid), 1)
        for name, server in servers.items()
        if server.process is not None
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default=",".join(str(level) for level in LEVELS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="rasa-llm-production-load-") as tmp:
        workdir = Path(tmp)
        # Kept between runs (bench/results is not in git): training it takes minutes.
        stock_model = args.out / "stock-model" / "model.tar.gz"
        newest_input = max(path.stat().st_mtime for path in bot_inputs())
        stock_train_s = None
        if not stock_model.exists() or stock_model.stat().st_mtime < newest_input:
            stock_train_s = train(stock_config(workdir), stock_model.parent)
            print(f"stock model trained in {stock_train_s:.0f} s", flush=True)
        models = {"rasa-llm": trained_bot_model(), "stock": stock_model}
        with production_servers(models, workdir) as servers:
            results: Dict[str, Any] = {}
            for index, level in enumerate(levels):
                names = list(servers)
                if index % 2:
                    names.reverse()  # neither server always goes first
                messages = MESSAGES_PER_CONVERSATION.get(level, 3)
                for name in names:
                    # One warm-up conversation, not counted.
                    asyncio.run(run_level(servers[name].url, 1, len(CONVERSATION), "warm"))
                    figures = asyncio.run(run_level(servers[name].url, level, messages, name))
                    results.setdefault(str(level), {})[name] = figures
                    print(f"level {level:>3} {name:>8}: {json.dumps(figures)}", flush=True)
                results[str(level)]["ratio"] = ratios(
                    results[str(level)]["rasa-llm"], results[str(level)]["stock"]
                )
            memory = peak_memory_mib(servers)

    report = {
        "command": "python -m bench.production_load --levels " + args.levels,
        "machine": machine(),
        "stock_train_s": None if stock_train_s is None else round(stock_train_s, 1),
        "levels": results,
        "peak_memory_mib": memory,
        "memory_ratio": round(memory["rasa-llm"] / memory["stock"], 2),
    }
    write_report(report, args.out / "production_load.json")


def machine() -> Dict[str, Any]:
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_after": os.getloadavg(),
    }


def write_report(report: Dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
