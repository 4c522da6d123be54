"""Finding 1: Rasa's HTTP API answered anyone; `make run` listened on every interface.

Every route of Rasa's HTTP API, model training, replacement and deletion included,
refuses a caller without the API token on the shipped assistant; an API without any
token does not start; `make run` listens on loopback. Health is open, metrics need a
token (finding 10's "decide which").
"""

from __future__ import annotations

import subprocess

import pytest
import requests

from tests.rasa_process import (
    BOT,
    RASA_API_ROUTES,
    REST_CREDENTIALS,
    ROOT,
    api_headers,
    free_port,
    rasa_env,
    run_rasa_expecting_failure,
)
from tests.sanic_serving import without_server_guards
from tests.security.conftest import Stack

PUBLIC_ROUTES = [("GET", "/"), ("GET", "/version")]
VICTIM = "sms:+447700900123"


def test_the_list_is_every_route_of_rasa_s_http_api(monkeypatch: pytest.MonkeyPatch):
    """So that a route Rasa adds cannot be left out of the test below."""
    import rasa.server

    without_server_guards(monkeypatch)  # rasa_llm would guard a Rasa app made here
    app = rasa.server.create_app()
    served = {
        (method, route.uri.replace("<conversation_id:path>", "{id}"))
        for route in app.router.routes
        for method in route.methods
    }
    assert served == set(RASA_API_ROUTES) | set(PUBLIC_ROUTES)


@pytest.mark.parametrize(("method", "path"), RASA_API_ROUTES)
@pytest.mark.parametrize("credentials", ["none", "wrong bearer", "wrong query token"])
def test_every_api_route_refuses_a_caller_without_the_token(
    stack: Stack, method: str, path: str, credentials: str
):
    url = stack.rasa.url + path.format(id=VICTIM)
    headers = {"Content-Type": "application/json"}
    if credentials == "wrong bearer":
        headers["Authorization"] = "Bearer not-the-api-token-0123456789"
    elif credentials == "wrong query token":
        url += "?token=not-the-api-token-0123456789"
    answer = requests.request(method, url, data=b"{}", headers=headers, timeout=60)
    assert answer.status_code == 401, (method, path, answer.status_code, answer.text[:200])
    assert answer.json()["reason"] == "NotAuthenticated"
    # The model was neither unloaded nor replaced by the refused calls.
    assert stack.rasa.api("GET", "/status").status_code == 200


def test_with_the_token_the_api_answers(stack: Stack):
    assert stack.rasa.api("GET", "/status").status_code == 200
    tracker = stack.rasa.api("GET", f"/conversations/{VICTIM}/tracker")
    assert tracker.status_code == 200
    parsed = stack.rasa.api("POST", "/model/parse", json={"text": "where is my order"})
    assert parsed.json()["intent"]["name"] == "order_status"
    token = api_headers()["Authorization"].split()[1]
    by_query = requests.get(f"{stack.rasa.url}/status?token={token}", timeout=30)
    assert by_query.status_code == 200  # Rasa's own way of sending a token works too
    assert token not in stack.rasa.log()


@pytest.mark.parametrize(("method", "path"), PUBLIC_ROUTES)
def test_hello_and_version_stay_open(stack: Stack, method: str, path: str):
    assert requests.request(method, stack.rasa.url + path, timeout=30).status_code == 200


def test_health_is_open_and_metrics_need_the_token(stack: Stack):
    health = requests.get(f"{stack.rasa.url}/webhooks/monitoring/health", timeout=30)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    metrics = f"{stack.rasa.url}/webhooks/monitoring/metrics"
    assert requests.get(metrics, timeout=30).status_code == 401
    wrong = {"Authorization": "Bearer not-the-metrics-token-0123"}
    assert requests.get(metrics, headers=wrong, timeout=30).status_code == 403
    scraped = requests.get(metrics, headers=api_headers(), timeout=30)
    assert scraped.status_code == 200 and "rasa_llm_messages_total" in scraped.text


def test_an_api_without_a_token_does_not_start(tmp_path):
    """`rasa run --enable-api` with rasa-llm's REST channel and no RASA_LLM_API_TOKEN,
    --auth-token or --jwt-secret stops before it serves (before it loads the model)."""
    (tmp_path / "credentials.yml").write_text(REST_CREDENTIALS)
    args = ["run", "--enable-api", "--credentials", "credentials.yml"]
    args += ["--interface", "127.0.0.1", "--port", str(free_port())]
    failed = run_rasa_expecting_failure(args, cwd=tmp_path, env={"RASA_LLM_API_TOKEN": ""})
    assert "RASA_LLM_API_TOKEN" in failed and "--enable-api" in failed


def test_make_run_listens_on_loopback_with_the_api_token_from_a_file():
    """What `make run` does (make -n prints it without running it)."""
    printed = subprocess.run(
        ["make", "-n", "run"], cwd=ROOT, env=rasa_env(), capture_output=True, text=True,
        timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "--interface 127.0.0.1" in printed
    assert "SANIC_HOST=127.0.0.1" in printed  # the action server
    assert "RASA_LLM_API_TOKEN" in printed and ".secrets/api-token" in printed
    assert "--auth-token" not in printed  # a token on the command line is in `ps` for all
    assert (BOT / "credentials.yml").read_text().count("${RASA_LLM_REST_TOKEN}") == 1
