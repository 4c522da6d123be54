"""The real bot, trained with the shipped MiniLM through Rasa's own CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "bot"
MODEL = BOT / "models" / "customer-service.tar.gz"
RASA = str(Path(sys.executable).with_name("rasa"))


def rasa_env() -> dict:
    return {
        **os.environ,
        "RASA_TELEMETRY_ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def run_rasa(args: List[str], cwd: Path, timeout: int = 1200) -> subprocess.CompletedProcess:
    """Run Rasa's CLI as a bot builder would; fail with its output if it fails."""
    result = subprocess.run(
        [RASA, *args], cwd=cwd, env=rasa_env(), capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        pytest.fail(
            f"rasa {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def _bot_inputs() -> List[Path]:
    return [
        BOT / "config.yml",
        BOT / "domain.yml",
        *(p for p in (BOT / "data").rglob("*") if p.is_file()),
    ]


@pytest.fixture(scope="session")
def bot_model() -> Path:
    """The bot's model, trained now if missing or older than its data (as `make` does)."""
    newest_input = max(p.stat().st_mtime for p in _bot_inputs())
    if not MODEL.exists() or MODEL.stat().st_mtime < newest_input:
        run_rasa(["train", "--out", "models", "--fixed-model-name", "customer-service"], cwd=BOT)
        MODEL.touch()
    return MODEL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def rasa_server(bot_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`rasa run` with the REST channel and the HTTP API, on a free loopback port."""
    import requests

    workdir = tmp_path_factory.mktemp("rasa-run")  # the SQLite tracker store lands here
    port = free_port()
    log = (workdir / "rasa.log").open("w")
    process = subprocess.Popen(
        [
            RASA,
            "run",
            "--model",
            str(bot_model),
            "--port",
            str(port),
            "--interface",
            "127.0.0.1",
            "--enable-api",
            "--credentials",
            str(BOT / "credentials.yml"),
            "--endpoints",
            str(BOT / "endpoints.yml"),
        ],
        cwd=workdir,
        env=rasa_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    try:
        while True:
            if process.poll() is not None:
                output = (workdir / "rasa.log").read_text()[-4000:]
                pytest.fail(f"rasa run exited {process.returncode}:\n{output}")
            try:
                if requests.get(f"{url}/status", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("rasa run did not answer within 300 s")
            time.sleep(1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
