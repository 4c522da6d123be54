"""Finding 6: the guards switched on only when the program was called `rasa`.

Under `python -m rasa run` (another program name, as a service unit or an embedding
server may have), and with Rasa's stock REST channel, so that rasa_llm is first
imported only while the model loads, the bot's server still redacts customer text from
its log (here at --debug, which logs every message), still answers a customer whose
action failed, and still requires the API token; with Rasa's telemetry on it refuses
to start. (The shipped set-up, which imports rasa_llm with its channels before Rasa
makes its app, is tests/security/conftest.py's stack.)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.rasa_process import (
    BOT,
    REST_CREDENTIALS,
    RasaServer,
    api_headers,
    free_port,
    rasa_env,
    stop_process,
)

SECRET = "MYSECRETPASSPHRASE correct horse battery staple"


class PythonDashMRasa(RasaServer):
    """`python -m rasa run --debug`, the action server unreachable."""

    def start(self) -> RasaServer:
        args = ["run", "--model", str(self.model), "--port", str(self.port)]
        args += ["--interface", "127.0.0.1", "--enable-api", "--debug"]
        args += ["--credentials", str(self.credentials), "--endpoints", str(self.endpoints)]
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rasa", *args],
            cwd=self.workdir, env=rasa_env(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        wait_until_answering(self.process, self.log_path, self.url + "/status")
        return self


def wait_until_answering(process: subprocess.Popen, log_path: Path, url: str) -> None:
    """Until ``url`` answers 200 (with the API token); fails if the process exits."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited:\n{log_path.read_text()[-4000:]}")
        try:
            if requests.get(url, headers=api_headers(), timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop_process(process)
    pytest.fail(f"{url} did not answer within 300 s")


@pytest.fixture(scope="module")
def server(bot_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RasaServer]:
    workdir = tmp_path_factory.mktemp("python-m-rasa")
    (workdir / "credentials.yml").write_text("rest:\n")
    (workdir / "endpoints.yml").write_text(
        f'action_endpoint:\n  url: "http://127.0.0.1:{free_port()}/webhook"\n'
    )
    running = PythonDashMRasa(
        bot_model,
        workdir,
        credentials=workdir / "credentials.yml",
        endpoints=workdir / "endpoints.yml",
    )
    running.start()
    yield running
    running.stop()


def test_the_api_needs_its_token(server: RasaServer):
    refused = requests.get(f"{server.url}/conversations/anyone/tracker", timeout=30)
    assert refused.status_code == 401
    assert server.api("GET", "/conversations/anyone/tracker").status_code == 200


def test_customer_text_stays_out_of_the_debug_log(server: RasaServer):
    before = len(server.log())
    answer = server.rest("debug-log", f"hello, {SECRET}")
    assert answer.status_code == 200
    server.user_events("debug-log", count=1)  # Rasa's stock REST channel: the id as sent
    written = server.log()[before:]
    assert "processor" in written  # --debug wrote about the message
    assert "MYSECRETPASSPHRASE" not in written


def test_a_customer_whose_action_failed_is_answered(server: RasaServer):
    # The order status form is validated by the action server, which is down.
    answer = server.rest("action-down", "where is my order")
    assert answer.status_code == 200
    texts = " ".join(reply.get("text", "") for reply in answer.json())
    assert "something went wrong on our side" in texts


def test_with_telemetry_on_the_server_refuses_to_start(bot_model: Path, tmp_path: Path):
    (tmp_path / "credentials.yml").write_text(REST_CREDENTIALS)
    args = [sys.executable, "-m", "rasa", "run", "--model", str(bot_model)]
    args += ["--credentials", "credentials.yml", "--port", str(free_port())]
    args += ["--interface", "127.0.0.1"]
    env = rasa_env(extra={"RASA_TELEMETRY_ENABLED": "true"})
    finished = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    said = finished.stdout + finished.stderr
    assert "telemetry is on" in said and "rasa telemetry disable" in said, said[-3000:]
    assert "Rasa server is up and running" not in said


def test_the_action_server_under_python_m_rasa_sdk_requires_its_token(tmp_path: Path):
    port = free_port()
    log_path = tmp_path / "actions.log"
    env = {"BOT_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}", "RASA_LLM_FALLBACK_WARM_UP": "0"}
    with log_path.open("a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)],
            cwd=BOT, env=rasa_env(extra=env), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_answering(process, log_path, f"{url}/health")
        assert requests.get(f"{url}/actions", timeout=30).status_code == 401
        token = {"Authorization": f"Bearer {rasa_env()['RASA_LLM_ACTION_TOKEN']}"}
        assert requests.get(f"{url}/actions", headers=token, timeout=30).status_code == 200
    finally:
        stop_process(process)
