"""The production set-up, for real: PostgreSQL tracker store, Redis lock store, two
Rasa workers behind one port plus a second `rasa run` process, one action server whose
generative fallback asks an OpenAI-compatible server (a fake one on loopback, which the
tests make answer or hang).

The servers are the test session's own (bench/support/postgres_server.py,
bench/support/redis_server.py), started from the machine's PostgreSQL and Redis, so fault
tests may stop them. Rasa reads bot/endpoints.production.yml as shipped; only the
environment variables it names are set here.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
import yaml

from bench.support.postgres_server import PostgresServer
from bench.support.redis_server import RedisServer
from tests.channels.sms_support import ACCOUNT_SID, AUTH_TOKEN, NUMBER, PUBLIC_URL, TwilioApi
from tests.fake_platform import Call, FakePlatform, Reply
from tests.rasa_process import BOT, REST_CREDENTIALS, ActionServer, RasaServer, free_port

PRODUCTION_ENDPOINTS = BOT / "endpoints.production.yml"
# One web chat session secret for both servers, as behind a load balancer: a session
# opened on one server is honoured by the other.
WEBCHAT_SECRET = "production-test-webchat-secret-0123456789"
# The generative fallback's seconds from message to checked reply, queueing included
# (bot/fallback.yml leaves the default, 8 s; shorter here to keep the hang test short).
FALLBACK_DEADLINE_S = 3.0


class FakeLanguageModel:
    """An OpenAI-compatible chat completions server that answers or hangs, as told."""

    def __init__(self) -> None:
        self.platform = FakePlatform("llm")
        self.answer = ""
        self.hang = False
        self._released = threading.Event()

    def start(self) -> FakeLanguageModel:
        self.platform.start()
        self.platform.expect("POST", "/v1/chat/completions", self._complete)
        return self

    def stop(self) -> None:
        self._released.set()
        self.platform.stop()

    @property
    def base_url(self) -> str:
        return f"{self.platform.url}/v1"

    @property
    def requests(self) -> List[Call]:
        return self.platform.calls_to("/v1/chat/completions")

    def hanging(self) -> None:
        self._released.clear()
        self.hang = True

    def answering(self, text: str) -> None:
        self.hang = False
        self.answer = text
        self._released.set()

    def _complete(self, call: Call) -> Reply:
        if self.hang:
            # As a server that took the request and never got to it; released at the end.
            self._released.wait(60)
        body = {
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": self.answer},
                 "finish_reason": "stop"}
            ]
        }  # fmt: skip
        return 200, body, {}


@dataclass
class Production:
    """What the tests talk to: ``urls[0]`` has two workers, ``urls[1]`` is a second process."""

    servers: List[RasaServer]
    actions: ActionServer
    model: FakeLanguageModel
    postgres: PostgresServer
    redis: RedisServer
    database_url: str
    # Twilio's API for the SMS channel, whose retries and opt-outs live in PostgreSQL.
    twilio: TwilioApi

    @property
    def urls(self) -> List[str]:
        return [server.url for server in self.servers]


def production_env(
    postgres: PostgresServer, redis: RedisServer, database: str, actions_port: int
) -> Dict[str, str]:
    return {
        "RASA_LLM_ACTION_URL": f"http://127.0.0.1:{actions_port}/webhook",
        "RASA_LLM_DATABASE_URL": postgres.url(database),
        "RASA_LLM_REDIS_HOST": redis.host,
        "RASA_LLM_REDIS_PORT": str(redis.port),
        # As README.md's production set-up: a loaded event loop may answer a web chat
        # page's keepalive ping late, and Sanic's default 20 s would close the page.
        "SANIC_WEBSOCKET_PING_TIMEOUT": "120",
    }


@pytest.fixture(scope="session")
def production(
    bot_model: Path,
    postgres_server: PostgresServer,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Production]:
    workdir = tmp_path_factory.mktemp("production")
    credentials = workdir / "credentials.yml"
    twilio = TwilioApi()
    # The SMS channel's own tables (retried webhooks, opt-outs) in the tracker store's
    # PostgreSQL database, as README.md's production set-up says for several hosts;
    # each server also runs in a folder of its own, as on another machine.
    credentials.write_text(
        f"{REST_CREDENTIALS}"
        "channels.monitoring.MonitoringInput:\n  metrics_token: ${RASA_LLM_API_TOKEN}\n"
        f'channels.webchat.WebChatInput:\n  session_secret: "{WEBCHAT_SECRET}"\n'
        "channels.sms.TwilioSmsInput:\n"
        f'  account_sid: "{ACCOUNT_SID}"\n  auth_token: "{AUTH_TOKEN}"\n'
        f'  twilio_number: "{NUMBER}"\n  webhook_url: "{PUBLIC_URL}"\n'
        f'  api_base_url: "{twilio.fake.url}"\n'
        "  dedup_db: ${RASA_LLM_DATABASE_URL}\n"
    )
    postgres, redis = postgres_server, redis_server
    database_url = postgres.create_database("rasa_llm")
    actions_port = free_port()
    env = production_env(postgres, redis, "rasa_llm", actions_port)
    model = FakeLanguageModel().start()
    # bot/fallback.yml, with the language model on an OpenAI-compatible server instead of
    # in the action server (README.md, "Running in production").
    fallback = yaml.safe_load((BOT / "fallback.yml").read_text())
    fallback["deadline_s"] = FALLBACK_DEADLINE_S
    fallback["knowledge_dir"] = str(BOT / fallback["knowledge_dir"])  # read beside the file
    for other in fallback.get("other_languages", {}).values():
        other["knowledge_dir"] = str(BOT / other["knowledge_dir"])
    fallback["generation"] = {
        "backend": "openai", "openai": {"base_url": model.base_url, "model": "fake-model"}
    }  # fmt: skip
    fallback_config = workdir / "fallback.yml"
    fallback_config.write_text(yaml.safe_dump(fallback))
    actions = ActionServer(
        workdir, port=actions_port,
        env={"RASA_LLM_FALLBACK_CONFIG": str(fallback_config), "RASA_LLM_FALLBACK_WARM_UP": "0"},
    )  # fmt: skip
    servers = []
    for name, workers in (("a", "2"), ("b", "1")):
        folder = workdir / f"rasa-{name}"
        folder.mkdir()
        # Prometheus's multiprocess mode: every worker's figures in each scrape.
        metrics_dir = folder / "prometheus"
        metrics_dir.mkdir()
        servers.append(
            RasaServer(
                bot_model, folder, credentials=credentials, endpoints=PRODUCTION_ENDPOINTS,
                env={**env, "SANIC_WORKERS": workers, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
            )
        )  # fmt: skip
    actions.start()
    try:
        # Both at once: each loads the model, which takes most of a minute.
        with ThreadPoolExecutor(len(servers)) as pool:
            for started in [pool.submit(server.start) for server in servers]:
                started.result()
        yield Production(servers, actions, model, postgres, redis, database_url, twilio)
    finally:
        for server in servers:
            server.stop()
        actions.stop()
        model.stop()
        twilio.fake.stop()
