"""Soak: the production set-up under steady load for a long while, nothing lost.

    .venv/bin/python -m bench.soak [--minutes 30] [--conversations 50] [--out bench/results]

One `rasa run` of the bot (its own pipeline, one worker) on bot/endpoints.production.yml
with PostgreSQL, Redis and an action server of the run's own (bench/production_load.py
sets them up). ``--conversations`` customers talk at once over the REST channel, each
sending the five messages of a short conversation one after another and then starting
a new one, until the time is up. Every 30 s the server's resident memory is sampled.
Afterwards every conversation's tracker is read back: its messages must be there once
each, in the order sent, each answered before the next (lost, doubled and out-of-order
conversations are counted). The CI suite (tests/production/) checks the same things in
a few minutes; this is the long run for memory growth and rare losses.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

import aiohttp

from bench.production_load import (
    CONVERSATION,
    machine,
    percentile,
    production_servers,
    write_report,
)
from bench.support.rasa_process import api_headers, rest_headers, rest_id, trained_bot_model

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_EVERY_S = 30.0


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def conversation_problem(events: List[Dict[str, Any]], sent: List[str]) -> Optional[str]:
    """What is wrong with a stored conversation against the texts sent, or None.

    Each text once, in order; each turn has a reply and ends with the bot listening
    (two workers handling one conversation at once would interleave the turns).
    """
    texts = [event.get("text") for event in events if event.get("event") == "user"]
    if texts != sent:
        if len(texts) < len(sent):
            return "lost"
        if len(texts) > len(sent):
            return "duplicated"
        return "out of order"
    turn: List[Dict[str, Any]] = []
    for event in events + [{"event": "user"}]:
        if event.get("event") == "user":
            if turn:
                kinds = [e.get("event") for e in turn]
                if "bot" not in kinds:
                    return "unanswered"
                last = turn[-1]
                if not (last.get("event") == "action" and last.get("name") == "action_listen"):
                    return "interleaved"
            turn = [event]
        elif turn:
            turn.append(event)
    return None


async def customer(
    http: aiohttp.ClientSession,
    url: str,
    until: float,
    sent: Dict[str, List[str]],
    latencies: List[float],
    errors: List[str],
) -> None:
    """Talk in conversations of CONVERSATION, one after another, until ``until``."""
    while time.monotonic() < until:
        sender = f"soak-{uuid.uuid4()}"
        sent[sender] = []
        for text in CONVERSATION:
            started = time.perf_counter()
            try:
                async with http.post(
                    f"{url}/webhooks/rest/webhook",
                    json={"sender": sender, "message": text},
                    headers=rest_headers(),
                ) as response:
                    ok = response.status == 200 and bool(await response.json())
            except (aiohttp.ClientError, asyncio.TimeoutError):
                ok = False
            if not ok:
                errors.append(sender)
                break
            latencies.append(time.perf_counter() - started)
            sent[sender].append(text)


async def soak(url: str, pid: int, minutes: float, conversations: int) -> Dict[str, Any]:
    sent: Dict[str, List[str]] = {}
    latencies: List[float] = []
    errors: List[str] = []
    memory: List[Dict[str, float]] = []
    started = time.monotonic()
    until = started + minutes * 60

    async def sample() -> None:
        while time.monotonic() < until:
            memory.append(
                {
                    "minute": round((time.monotonic() - started) / 60, 2),
                    "rss_mib": resident_mib(pid),
                }
            )
            await asyncio.sleep(SAMPLE_EVERY_S)

    timeout = aiohttp.ClientTimeout(total=300)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        sampler = asyncio.create_task(sample())
        await asyncio.gather(
            *(customer(http, url, until, sent, latencies, errors) for _ in range(conversations))
        )
        wall = time.monotonic() - started
        sampler.cancel()
        memory.append({"minute": round(wall / 60, 2), "rss_mib": resident_mib(pid)})
        problems: Dict[str, int] = {}
        for sender, texts in sent.items():
            if sender in errors:
                continue  # a message that failed may or may not be stored; counted apart
            async with http.get(
                f"{url}/conversations/{rest_id(sender)}/tracker", headers=api_headers()
            ) as response:
                events = (await response.json())["events"]
            problem = conversation_problem(events, texts)
            if problem:
                problems[problem] = problems.get(problem, 0) + 1
    return {
        "minutes": round(wall / 60, 2),
        "conversations_at_once": conversations,
        "conversations": len(sent),
        "messages": len(latencies),
        "throughput_msg_s": round(len(latencies) / wall, 2),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "failed_requests": len(errors),
        "conversation_problems": problems,
        "memory": memory,
        "rss_growth_mib": round(memory[-1]["rss_mib"] - memory[0]["rss_mib"], 1),
        # The first minute fills caches (tokenizer, SQL pool, Rasa's domain); a leak
        # shows as growth after it.
        "rss_growth_after_first_minute_mib": round(
            memory[-1]["rss_mib"]
            - next((m["rss_mib"] for m in memory if m["minute"] >= 1.0), memory[-1]["rss_mib"]),
            1,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rasa-llm-soak-") as tmp:
        with production_servers({"rasa-llm": trained_bot_model()}, Path(tmp)) as servers:
            server = servers["rasa-llm"]
            assert server.process is not None
            result = asyncio.run(
                soak(server.url, server.process.pid, args.minutes, args.conversations)
            )
    report = {
        "command": f"python -m bench.soak --minutes {args.minutes:g} "
        f"--conversations {args.conversations}",
        "machine": machine(),
        **result,
    }
    write_report(report, args.out / "soak.json")


if __name__ == "__main__":
    main()
