"""NLU parse latency, server memory, accuracy and `rasa train` time: rasa-llm against
Rasa's stock DIET pipeline, on the same bot data, in one run, as ratios.

    .venv/bin/python -m bench.nlu_latency [--requests 300] [--out bench/results]

Each pipeline is trained with `rasa train` (wall time, cache off). Both are then
served with `rasa run --enable-api` at the same time, and each held-out message
is sent to one server and then the other (alternating which goes first), one
request at a time, to `/model/parse`: p50/p95 latency after a warm-up, both under
the same machine load. Peak memory is each server's VmHWM (peak resident set)
after the requests. Accuracy is `rasa test nlu` on
bot/tests/nlu_test.yml. The policies are the bot's own for both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import requests
import yaml
from sklearn.metrics import accuracy_score, f1_score

from bench.support.offline_env import offline_env
from bench.support.rasa_process import intent_scores, nlu_test_args

ROOT = Path(__file__).resolve().parents[1]
BOT = ROOT / "bot"
RASA = str(Path(sys.executable).with_name("rasa"))
# rasa-llm's server refuses an HTTP API without a token: the requests below send it.
ENV = offline_env(
    RASA_LLM_API_TOKEN=os.environ.get("RASA_LLM_API_TOKEN", "bench-api-token-0123456789")
)
API = {"Authorization": f"Bearer {ENV['RASA_LLM_API_TOKEN']}"}


def stock_config(workdir: Path) -> Path:
    """The stock pipeline with the bot's own policies."""
    ours = yaml.safe_load((BOT / "config.yml").read_text())
    stock = yaml.safe_load((ROOT / "bench" / "stock_config.yml").read_text())
    stock["policies"] = ours["policies"]
    path = workdir / "stock_config.yml"
    path.write_text(yaml.safe_dump(stock, sort_keys=False))
    return path


def held_out() -> List[Tuple[str, str]]:
    """(text without entity markup, its sentiment label) for each held-out example."""
    data = yaml.safe_load((BOT / "tests" / "nlu_test.yml").read_text())
    examples = []
    for block in data["nlu"]:
        if "examples" not in block:
            continue
        label = (block.get("metadata") or {}).get("sentiment", "neutral")
        for line in block["examples"].splitlines():
            line = line.strip()
            if line.startswith("- "):
                examples.append((re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line[2:].strip()), label))
    return examples


def sentiment_scores(port: int, examples: List[Tuple[str, str]]) -> Dict[str, float]:
    """Held-out sentiment accuracy and macro-F1 of a rasa-llm server's `sentiment` key."""
    gold, predicted = [], []
    for text, label in examples:
        parsed = requests.post(
            f"http://127.0.0.1:{port}/model/parse", json={"text": text}, headers=API, timeout=30
        ).json()
        gold.append(label)
        predicted.append(parsed["sentiment"]["label"])
    return {
        "sentiment_accuracy": float(accuracy_score(gold, predicted)),
        "sentiment_macro_f1": float(f1_score(gold, predicted, average="macro")),
    }


def train(config: Path, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            RASA,
            "train",
            "--config",
            str(config),
            "--out",
            str(out),
            "--force",
            "--fixed-model-name",
            "model",
        ],
        cwd=BOT,
        env=ENV,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(model: Path, port: int, workdir: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            RASA,
            "run",
            "--model",
            str(model),
            "--enable-api",
            "--port",
            str(port),
            "--interface",
            "127.0.0.1",
        ],
        cwd=workdir,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            if requests.get(f"{url}/status", headers=API, timeout=2).ok:
                return process
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"rasa run for {model} did not start")
        time.sleep(1)


def measure_side_by_side(
    servers: Dict[str, int], texts: List[str], requests_n: int
) -> Dict[str, Dict[str, float]]:
    """Send each message to every server in turn, so both see the same machine load."""
    sessions = {name: requests.Session() for name in servers}
    for text in texts[:20]:  # warm-up
        for name, port in servers.items():
            sessions[name].post(
                f"http://127.0.0.1:{port}/model/parse", json={"text": text}, headers=API
            )
    latencies: Dict[str, List[float]] = {name: [] for name in servers}
    for i in range(requests_n):
        text = texts[i % len(texts)]
        order = list(servers.items())
        if i % 2:
            order.reverse()  # neither server always goes first
        for name, port in order:
            started = time.perf_counter()
            sessions[name].post(
                f"http://127.0.0.1:{port}/model/parse", json={"text": text}, headers=API, timeout=30
            ).raise_for_status()
            latencies[name].append((time.perf_counter() - started) * 1000)
    return {
        name: {
            "p50_ms": float(np.percentile(values, 50)),
            "p95_ms": float(np.percentile(values, 95)),
        }
        for name, values in latencies.items()
    }


def accuracy(model: Path, out: Path) -> Dict[str, float]:
    subprocess.run(
        [RASA, *nlu_test_args(model, out)], cwd=BOT, env=ENV, check=True, capture_output=True
    )
    return intent_scores(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    examples = held_out()
    texts = [text for text, _ in examples]
    results: Dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        configs = {"rasa_llm": BOT / "config.yml", "stock_diet": stock_config(workdir)}
        for name, config in configs.items():
            results[name] = {"train_seconds": train(config, workdir / name)}
            print(name, "trained in", round(results[name]["train_seconds"]), "s", flush=True)
        ports = {name: port for port, name in enumerate(configs, start=5905)}
        processes = {
            name: start_server(workdir / name / "model.tar.gz", port, workdir)
            for name, port in ports.items()
        }
        try:
            for name, row in measure_side_by_side(ports, texts, args.requests).items():
                results[name].update(row)
            for name, process in processes.items():
                results[name]["peak_rss_mib"] = peak_rss_mib(process.pid)
            # Stock Rasa has no sentiment; only rasa-llm's is scored.
            results["rasa_llm"].update(sentiment_scores(ports["rasa_llm"], examples))
        finally:
            for process in processes.values():
                process.terminate()
                process.wait(timeout=60)
        for name in configs:
            results[name].update(
                accuracy(workdir / name / "model.tar.gz", workdir / f"{name}-test")
            )
            print(name, json.dumps(results[name]), flush=True)
    ours, stock = results["rasa_llm"], results["stock_diet"]
    results["held_out_examples"] = len(examples)
    results["ratios_ours_over_stock"] = {k: ours[k] / stock[k] for k in ours if stock.get(k)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "nlu_latency.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
