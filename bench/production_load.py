"""Serving under load: rasa-llm against Rasa's stock pipeline, same bot, same run, as ratios.

    .venv/bin/python -m bench.production_load [--levels 1,10,50,200] [--out FILE]

Both models are the bot's (`bot/config.yml`, and the same policies with the stock NLU
of bench/stock_config.yml, trained here with `rasa train`), served by `rasa run` in the
production set-up (bot/endpoints.production.yml: a PostgreSQL tracker store, one
database each, and a Redis lock store, on servers of this run's own) with one Sanic
worker each, and one shared action server. At each concurrency level C, C
conversations run at once through the REST channel, each sending the load test's ten
texts one after another (none needs the generative fallback), against one server and
then the other (which goes first alternates by level), so both see the same machine.
A message's latency is the time to its HTTP response, which carries every reply.
Figures per level: messages per second and p50/p95/p99 latency; per server, the peak
resident memory (VmHWM) of the worker after all levels.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List

import aiohttp
import numpy as np

from bench.nlu_latency import peak_rss_mib, stock_config, train
from tests.postgres_server import PostgresServer
from tests.production.conftest import PRODUCTION_ENDPOINTS, production_env
from tests.production.test_load import TEXTS
from tests.rasa_process import MODEL, ActionServer, RasaServer, free_port, trained_bot_model
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "production_benchmarks.json"


async def conversation(http: aiohttp.ClientSession, url: str, sender: str) -> List[float]:
    latencies = []
    for text in TEXTS:
        started = time.perf_counter()
        payload = {"sender": sender, "message": text}
        async with http.post(f"{url}/webhooks/rest/webhook", json=payload) as response:
            response.raise_for_status()
            await response.json()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def level(url: str, name: str, concurrency: int) -> Dict[str, float]:
    timeout = aiohttp.ClientTimeout(total=1800)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        started = time.perf_counter()
        runs = await asyncio.gather(
            *(
                conversation(http, url, f"bench-{name}-{concurrency}-{i}-{uuid.uuid4()}")
                for i in range(concurrency)
            )
        )
        seconds = time.perf_counter() - started
    latencies = np.array([value for run in runs for value in run])
    return {
        "messages": int(latencies.size),
        "seconds": round(seconds, 2),
        "messages_per_second": round(latencies.size / seconds, 2),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p95_ms": round(float(np.percentile(latencies, 95)), 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", default="1,10,50,200")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    workdir = Path(tempfile.mkdtemp(prefix="rasa-llm-production-bench-"))
    ours_model = trained_bot_model()
    stock_seconds = train(stock_config(workdir), workdir / "stock")
    models = {"rasa_llm": ours_model, "stock": workdir / "stock" / "model.tar.gz"}
    print(f"stock model trained in {stock_seconds:.0f} s; ours: {MODEL}", flush=True)

    credentials = workdir / "credentials.yml"
    credentials.write_text("rest:\n")
    results: Dict[str, Any] = {"levels": {}, "memory_mib": {}}
    with RedisServer(workdir) as redis, PostgresServer() as postgres:
        actions_port = free_port()
        actions = ActionServer(workdir, port=actions_port, env={"RASA_LLM_FALLBACK_WARM_UP": "0"})
        actions.start()
        servers: Dict[str, RasaServer] = {}
        try:
            for name, model in models.items():
                postgres.create_database(name)
                folder = workdir / name
                folder.mkdir(exist_ok=True)
                env = production_env(postgres, redis, name, actions_port)
                servers[name] = RasaServer(
                    model, folder, credentials=credentials, endpoints=PRODUCTION_ENDPOINTS,
                    env={**env, "SANIC_WORKERS": "1"},
                ).start()  # fmt: skip
            for index, concurrency in enumerate(levels):
                order = list(servers) if index % 2 == 0 else list(reversed(servers))
                figures = {}
                for name in order:
                    figures[name] = asyncio.run(level(servers[name].url, name, concurrency))
                    print(concurrency, name, figures[name], flush=True)
                figures["ratio_p50"] = round(
                    figures["rasa_llm"]["p50_ms"] / figures["stock"]["p50_ms"], 2
                )
                figures["ratio_p95"] = round(
                    figures["rasa_llm"]["p95_ms"] / figures["stock"]["p95_ms"], 2
                )
                figures["ratio_throughput"] = round(
                    figures["rasa_llm"]["messages_per_second"]
                    / figures["stock"]["messages_per_second"],
                    2,
                )
                results["levels"][str(concurrency)] = figures
            for name, server in servers.items():
                assert server.process is not None
                results["memory_mib"][name] = round(peak_rss_mib(server.process.pid), 1)
        finally:
            for server in servers.values():
                server.stop()
            actions.stop()
    results["memory_ratio"] = round(
        results["memory_mib"]["rasa_llm"] / results["memory_mib"]["stock"], 2
    )
    results["machine"] = f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores"
    results["measured"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results["command"] = "python -m bench.production_load --levels " + args.levels
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
