"""NLU parse latency, server memory, accuracy and `rasa train` time: rasa-llm against
Rasa's stock DIET pipeline, on the same bot data, in one run, as ratios.

    .venv/bin/python -m bench.nlu_latency [--requests 300] [--out bench/results]

Each pipeline is trained with `rasa train` (wall time, cache off), served with
`rasa run --enable-api`, and sent the same held-out messages one at a time to
`/model/parse` (p50/p95 latency after a warm-up). Peak memory is the server's
VmHWM (peak resident set) after the requests. Accuracy is `rasa test nlu` on
bot/tests/nlu_test.yml. The policies are the bot's own for both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOT = ROOT / "bot"
RASA = str(Path(sys.executable).with_name("rasa"))
ENV = {
    **os.environ,
    "RASA_TELEMETRY_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


def stock_config(workdir: Path) -> Path:
    """The stock pipeline with the bot's own policies."""
    ours = yaml.safe_load((BOT / "config.yml").read_text())
    stock = yaml.safe_load((ROOT / "bench" / "stock_config.yml").read_text())
    stock["policies"] = ours["policies"]
    path = workdir / "stock_config.yml"
    path.write_text(yaml.safe_dump(stock, sort_keys=False))
    return path


def held_out_texts() -> List[str]:
    data = yaml.safe_load((BOT / "tests" / "nlu_test.yml").read_text())
    texts = []
    for block in data["nlu"]:
        for line in block["examples"].splitlines():
            line = line.strip()
            if line.startswith("- "):
                texts.append(line[2:].strip())
    return texts


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


def serve_and_measure(
    model: Path, texts: List[str], requests_n: int, port: int, workdir: Path
) -> Dict[str, float]:
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
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if requests.get(f"{url}/status", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"rasa run for {model} did not start")
            time.sleep(1)
        session = requests.Session()
        for text in texts[:20]:  # warm-up
            session.post(f"{url}/model/parse", json={"text": text}, timeout=30)
        latencies = []
        for i in range(requests_n):
            text = texts[i % len(texts)]
            started = time.perf_counter()
            session.post(f"{url}/model/parse", json={"text": text}, timeout=30).raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
        return {
            "p50_ms": float(np.percentile(latencies, 50)),
            "p95_ms": float(np.percentile(latencies, 95)),
            "peak_rss_mib": peak_rss_mib(process.pid),
        }
    finally:
        process.terminate()
        process.wait(timeout=60)


def accuracy(model: Path, out: Path) -> Dict[str, float]:
    subprocess.run(
        [
            RASA,
            "test",
            "nlu",
            "--model",
            str(model),
            "--nlu",
            str(BOT / "tests" / "nlu_test.yml"),
            "--out",
            str(out),
        ],
        cwd=BOT,
        env=ENV,
        check=True,
        capture_output=True,
    )
    report = json.loads((out / "intent_report.json").read_text())
    return {"accuracy": report["accuracy"], "macro_f1": report["macro avg"]["f1-score"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    texts = held_out_texts()
    results: Dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        configs = {"rasa_llm": BOT / "config.yml", "stock_diet": stock_config(workdir)}
        for port, (name, config) in enumerate(configs.items(), start=5905):
            out = workdir / name
            row: Dict[str, float] = {"train_seconds": train(config, out)}
            row.update(serve_and_measure(out / "model.tar.gz", texts, args.requests, port, workdir))
            row.update(accuracy(out / "model.tar.gz", workdir / f"{name}-test"))
            results[name] = row
            print(name, json.dumps(row), flush=True)
    ours, stock = results["rasa_llm"], results["stock_diet"]
    results["ratios_ours_over_stock"] = {k: ours[k] / stock[k] for k in ours if stock[k]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "nlu_latency.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
