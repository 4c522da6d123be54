"""ActionFailureReply around Rasa's real RemoteAction, against real HTTP failures.

The whole path through `rasa run` (an action server killed mid-conversation) is
tests/production/test_action_server_outage.py.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, List

import pytest
from rasa.core.actions.action import ActionExecutionRejection, RemoteAction
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from rasa_llm.server.action_failure_reply import (
    DEFAULT_TEXT,
    FAILED_ACTION_KEY,
    TIMEOUT_ENV,
    ActionFailureReply,
    ActionFailureReplyError,
    action_timeout_s,
    install_action_failure_reply,
)
from rasa_llm.server.serving_metrics import ServingMetrics
from tests.rasa_process import free_port

SORRY = "Our systems are having a moment; please try again shortly."
DOMAIN_YAML = f"""
version: "3.1"
actions: [action_check_order]
responses:
  utter_action_failed:
    - text: "{SORRY}"
"""


class _ActionServer(BaseHTTPRequestHandler):
    """An action server that fails in the way the path asks for."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/hang":
            time.sleep(3)
        status, body = {
            "/error": (500, b'{"error": "boom"}'),
            "/reject": (400, b'{"action_name": "action_check_order", "error": "no"}'),
            "/ok": (200, b'{"events": [], "responses": [{"text": "Order 12 is on its way."}]}'),
        }.get(self.path, (500, b"{}"))
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # /hang: the client gave up at its deadline, as it should

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def action_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ActionServer)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def run(url: str, domain_yaml: str = DOMAIN_YAML, timeout_s: float = 20.0) -> List[Event]:
    domain = Domain.from_yaml(domain_yaml)
    tracker = DialogueStateTracker.from_events(
        "customer-1", [ActionExecuted("action_listen"), UserUttered("where is order 12")]
    )
    action = ActionFailureReply(
        RemoteAction("action_check_order", EndpointConfig(url)), timeout_s=timeout_s
    )
    nlg = TemplatedNaturalLanguageGenerator(domain.responses)
    return asyncio.run(action.run(CollectingOutputChannel(), nlg, tracker, domain))


def only_reply(events: List[Event]) -> BotUttered:
    assert len(events) == 1 and isinstance(events[0], BotUttered), events
    return events[0]


@pytest.mark.parametrize("path", ["/error", "/hang"])
def test_a_failed_or_too_slow_action_server_gives_the_domain_response(
    action_server: str, path: str
):
    started = time.monotonic()
    reply = only_reply(run(action_server + path, timeout_s=1.0))
    assert reply.text == SORRY
    assert reply.metadata[FAILED_ACTION_KEY] == "action_check_order"
    # The deadline, not Rasa's five minutes nor the server's three seconds.
    assert time.monotonic() - started < 2.5


def test_an_action_server_that_is_not_running_gives_the_default_without_a_response():
    closed = f"http://127.0.0.1:{free_port()}/webhook"
    reply = only_reply(run(closed, domain_yaml='version: "3.1"\nactions: [action_check_order]\n'))
    assert reply.text == DEFAULT_TEXT


def test_a_working_action_and_a_rejection_are_left_as_they_are(action_server: str):
    reply = only_reply(run(action_server + "/ok"))
    assert reply.text == "Order 12 is on its way." and FAILED_ACTION_KEY not in reply.metadata
    # A rejection lets another policy choose: Rasa must still see it.
    with pytest.raises(ActionExecutionRejection):
        run(action_server + "/reject")


def test_the_failure_reply_is_counted_by_action(action_server: str):
    metrics = ServingMetrics()
    for event in run(action_server + "/error") + run(action_server + "/ok"):
        metrics.observe({"sender_id": "customer-1", **event.as_dict()})
    sample = metrics.registry.get_sample_value
    assert sample("rasa_llm_action_failures_total", {"action": "action_check_order"}) == 1.0


def test_the_deadline_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert action_timeout_s() == 20.0
    monkeypatch.setenv(TIMEOUT_ENV, "7.5")
    assert action_timeout_s() == 7.5
    for bad in ("0", "-3", "soon", "nan", "inf"):
        monkeypatch.setenv(TIMEOUT_ENV, bad)
        with pytest.raises(ActionFailureReplyError, match=f"{TIMEOUT_ENV}=.*e.g. 20"):
            action_timeout_s()


def test_installing_wraps_rasa_s_processor_once(monkeypatch: pytest.MonkeyPatch):
    from rasa.core.processor import MessageProcessor

    # Rasa's own method, also when a Rasa app made earlier in this process installed it.
    original = inspect.unwrap(MessageProcessor._run_action)
    monkeypatch.setattr(MessageProcessor, "_run_action", original)
    install_action_failure_reply(timeout_s=5)
    wrapped = MessageProcessor._run_action
    assert wrapped is not original
    install_action_failure_reply(timeout_s=5)
    assert MessageProcessor._run_action is wrapped
