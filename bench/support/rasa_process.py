"""Rasa's own CLI and server, run as a bot builder runs them, for the tests and benchmarks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import quote

import pytest
import requests

from bench.support.offline_env import offline_env

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "bot"
NLU_TEST = BOT / "tests" / "nlu_test.yml"
MODEL = BOT / "models" / "customer-service.tar.gz"
RASA = str(Path(sys.executable).with_name("rasa"))
# The agent desk's token in tests (bot/credentials.yml reads ${RASA_LLM_DESK_TOKEN}).
DESK_TOKEN = "test-desk-token-0123456789abcdef"
# Rasa's HTTP API (RASA_LLM_API_TOKEN), the REST channel (bot/credentials.yml reads
# ${RASA_LLM_REST_TOKEN}) and the action server (RASA_LLM_ACTION_TOKEN, which the
# Rasa server sends and the action server checks) in tests.
API_TOKEN = "test-api-token-0123456789abcdef"
REST_TOKEN = "test-rest-token-0123456789abcdef"
ACTION_TOKEN = "test-action-token-0123456789abcdef"


# Rasa 3.6.21's HTTP API (rasa/server.py create_app), as (method, path) with `{id}` for a
# conversation id; tests/security/test_http_api_auth.py checks it against Rasa's app.
RASA_API_ROUTES: List[Tuple[str, str]] = [
    ("GET", "/status"),
    ("GET", "/domain"),
    ("POST", "/model/parse"),
    ("POST", "/model/predict"),
    ("POST", "/model/train"),
    ("POST", "/model/test/intents"),
    ("POST", "/model/test/stories"),
    ("PUT", "/model"),
    ("DELETE", "/model"),
    ("GET", "/conversations/{id}/tracker"),
    ("GET", "/conversations/{id}/story"),
    ("POST", "/conversations/{id}/messages"),
    ("POST", "/conversations/{id}/tracker/events"),
    ("PUT", "/conversations/{id}/tracker/events"),
    ("POST", "/conversations/{id}/trigger_intent"),
    ("POST", "/conversations/{id}/predict"),
    ("POST", "/conversations/{id}/execute"),
]
# The REST channel as a test's own credentials.yml enables it (as bot/credentials.yml).
REST_CREDENTIALS = "channels.rest.RestInput:\n  token: ${RASA_LLM_REST_TOKEN}\n"


def api_headers() -> Dict[str, str]:
    """What a caller of Rasa's HTTP API sends: the API token."""
    return {"Authorization": f"Bearer {os.environ.get('RASA_LLM_API_TOKEN', API_TOKEN)}"}


def rest_headers() -> Dict[str, str]:
    """What a caller of the REST channel sends: the REST channel's token."""
    return {"Authorization": f"Bearer {os.environ.get('RASA_LLM_REST_TOKEN', REST_TOKEN)}"}


def rest_id(sender: str) -> str:
    """The conversation id the REST channel gives a caller's ``sender``."""
    return f"rest:{sender}"


def rasa_env(*, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    return {
        **offline_env(),
        # bot/credentials.yml reads the agent desk's token from the environment.
        "RASA_LLM_DESK_TOKEN": os.environ.get("RASA_LLM_DESK_TOKEN", DESK_TOKEN),
        "RASA_LLM_API_TOKEN": os.environ.get("RASA_LLM_API_TOKEN", API_TOKEN),
        "RASA_LLM_REST_TOKEN": os.environ.get("RASA_LLM_REST_TOKEN", REST_TOKEN),
        "RASA_LLM_ACTION_TOKEN": os.environ.get("RASA_LLM_ACTION_TOKEN", ACTION_TOKEN),
        # The channels' own packages must import in the server whatever its cwd.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **(extra or {}),
    }


def nlu_test_args(model: Path, out: Path) -> List[str]:
    """``rasa test nlu``'s arguments: ``model`` on bot/tests/nlu_test.yml, reports in ``out``."""
    return ["test", "nlu", "--model", str(model), "--nlu", str(NLU_TEST), "--out", str(out)]


def intent_scores(out: Path) -> Dict[str, float]:
    """Accuracy and macro-F1 from the ``intent_report.json`` ``rasa test nlu`` wrote in ``out``."""
    report = json.loads((out / "intent_report.json").read_text())
    return {"accuracy": report["accuracy"], "macro_f1": report["macro avg"]["f1-score"]}


def run_rasa(args: List[str], cwd: Path, *, timeout: int = 1200) -> subprocess.CompletedProcess:
    """Run Rasa's CLI; fail the test with its output if it fails."""
    result = subprocess.run(
        [RASA, *args], cwd=cwd, env=rasa_env(), capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        pytest.fail(
            f"rasa {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def run_rasa_expecting_failure(
    args: List[str], cwd: Path, *, env: Optional[Dict[str, str]] = None, timeout: int = 300
) -> str:
    """Run Rasa's CLI, which must fail (exit, not keep serving); its output."""
    try:
        result = subprocess.run(
            [RASA, *args], cwd=cwd, env=rasa_env(extra=env), capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired as expired:
        output = (expired.stdout or b"").decode(errors="replace")
        pytest.fail(f"rasa {' '.join(args)} kept running for {timeout} s:\n{output[-4000:]}")
    output = result.stdout + result.stderr
    if result.returncode == 0:
        pytest.fail(f"rasa {' '.join(args)} should have failed:\n{output[-4000:]}")
    return output


def bot_inputs() -> List[Path]:
    return [
        BOT / "config.yml",
        BOT / "domain.yml",
        *(p for p in (BOT / "data").rglob("*") if p.is_file()),
    ]


def trained_bot_model() -> Path:
    """The bot's model, trained now if missing or older than its data (as `make` does)."""
    newest_input = max(p.stat().st_mtime for p in bot_inputs())
    if not MODEL.exists() or MODEL.stat().st_mtime < newest_input:
        run_rasa(["train", "--out", "models", "--fixed-model-name", "customer-service"], cwd=BOT)
        MODEL.touch()
    return MODEL


def write_run_config(workdir: Path, actions_port: int) -> Tuple[Path, Path]:
    """endpoints.yml (the action server on ``actions_port``, a SQLite tracker store) and
    credentials.yml (the REST channel) in ``workdir``, as `make run` uses them."""
    endpoints = workdir / "endpoints.yml"
    endpoints.write_text(
        f'action_endpoint:\n  url: "http://127.0.0.1:{actions_port}/webhook"\n'
        "tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: rasa.db\n"
    )
    credentials = workdir / "credentials.yml"
    credentials.write_text(REST_CREDENTIALS)
    return endpoints, credentials


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_and_wait(
    args: List[str],
    *,
    cwd: Path,
    log_path: Path,
    env: Optional[Dict[str, str]],
    health_url: str,
    timeout: float,
    health_headers: Optional[Dict[str, str]] = None,
) -> subprocess.Popen:
    """Start a Rasa CLI process and wait until ``health_url`` answers 200."""
    log = log_path.open("a")
    process = subprocess.Popen(
        [RASA, *args], cwd=cwd, env=rasa_env(extra=env), stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-4000:]
            pytest.fail(f"rasa {args[0]} exited {process.returncode}:\n{tail}")
        try:
            answer = requests.get(health_url, headers=health_headers, timeout=2)
            if answer.status_code == 200:
                return process
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or listening but still loading the model
        if time.monotonic() > deadline:
            stop_process(process)
            pytest.fail(f"rasa {' '.join(args[:2])} did not answer within {timeout} s")
        time.sleep(0.5)


def stop_process(process: Optional[subprocess.Popen]) -> None:
    """Terminate, then kill after 30 s."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class RasaServer:
    """`rasa run` on a loopback port, with the HTTP API, in its own working directory.

    The working directory holds the SQLite tracker store and anything the channels
    persist, so :meth:`restart` keeps them, as a restarted production server would.
    """

    def __init__(
        self,
        model: Path,
        workdir: Path,
        *,
        credentials: Path = BOT / "credentials.yml",
        endpoints: Path = BOT / "endpoints.yml",
        env: Optional[Dict[str, str]] = None,
        startup_timeout: float = 300,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.model = model
        self.extra_args = list(extra_args)
        self.workdir = workdir
        self.credentials = credentials
        self.endpoints = endpoints
        self.env = env
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "rasa.log"
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> RasaServer:
        args = ["run", "--model", str(self.model), "--port", str(self.port)]
        args += ["--interface", "127.0.0.1", "--enable-api"]
        args += ["--credentials", str(self.credentials), "--endpoints", str(self.endpoints)]
        args += self.extra_args
        self.process = start_and_wait(
            args,
            cwd=self.workdir,
            log_path=self.log_path,
            env=self.env,
            health_url=f"{self.url}/status",
            health_headers=api_headers(),
            timeout=self.startup_timeout,
        )
        return self

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def restart(self) -> RasaServer:
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A call to Rasa's HTTP API with the API token (``path`` starts with ``/``)."""
        headers = {**api_headers(), **(kwargs.pop("headers", None) or {})}
        kwargs.setdefault("timeout", 60)
        return requests.request(method, f"{self.url}{path}", headers=headers, **kwargs)

    def tracker(self, conversation_id: str) -> Dict[str, Any]:
        """The conversation's tracker, read through the HTTP API."""
        answer = self.api("GET", f"/conversations/{quote(conversation_id, safe=':+@')}/tracker")
        answer.raise_for_status()
        return dict(answer.json())

    def rest(self, sender: str, text: str, **kwargs: Any) -> requests.Response:
        """A message through the REST channel, with its token; the conversation is
        :func:`rest_id` of ``sender``."""
        body = {"sender": sender, "message": text, **kwargs.pop("extra", {})}
        headers = {**rest_headers(), **(kwargs.pop("headers", None) or {})}
        kwargs.setdefault("timeout", 120)
        return requests.post(
            f"{self.url}/webhooks/rest/webhook", json=body, headers=headers, **kwargs
        )

    def user_events(
        self, conversation_id: str, *, count: int = 0, timeout: float = 90
    ) -> List[Dict[str, Any]]:
        """The conversation's user events, once there are at least ``count`` of them.

        ``conversation_id`` is the whole id (``rest_id(sender)`` for a REST sender).
        Rasa sends a turn's replies before it saves the tracker, so a test that has
        just seen the reply can read the tracker from before the turn; it waits for
        the turn instead (``count=0`` reads once, for "nothing arrived" checks).
        """
        deadline = time.monotonic() + timeout
        while True:
            events = self.tracker(conversation_id).get("events") or []
            found = [e for e in events if e["event"] == "user"]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def __enter__(self) -> RasaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ActionServer:
    """`rasa run actions` in bot/ on a loopback port, as `make run` starts it."""

    def __init__(
        self, workdir: Path, *, port: Optional[int] = None, env: Optional[Dict[str, str]] = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The bot's order and account store: a fresh SQLite file per server, seeded
        # with the sample data, so tests never write to bot/store/; on a fixed
        # Wednesday, so weekends and the Christmas returns rule never move an answer.
        self.env = {
            "BOT_STORE_URL": f"sqlite:///{workdir / 'store.db'}",
            "BOT_STORE_TODAY": "2025-06-11",
            **(env or {}),
        }
        self.log_path = workdir / "actions.log"
        self.process: Optional[subprocess.Popen] = None

    def start(self, *, startup_timeout: float = 180) -> ActionServer:
        self.process = start_and_wait(
            ["run", "actions", "--actions", "actions", "--port", str(self.port)],
            cwd=BOT,
            log_path=self.log_path,
            env=self.env,
            health_url=f"{self.url}/health",
            timeout=startup_timeout,
        )
        return self

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
