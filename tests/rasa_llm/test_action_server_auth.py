"""Both ends of the action server's token: Rasa's RemoteAction sends it, rasa_sdk's app
checks it (served over HTTP here; the real `rasa run actions` is tests/security's)."""

from __future__ import annotations

from typing import Iterator

import pytest
import requests
from rasa.core.actions.action import RemoteAction
from rasa.utils.endpoints import EndpointConfig
from sanic import Sanic

from rasa_llm.server.action_server_auth import (
    ActionServerAuthError,
    guard_action_server,
    send_action_token,
)
from tests.sanic_serving import serving, without_server_guards

TOKEN = "unit-action-token-0123456789"


def test_rasa_s_remote_actions_send_the_token_unless_the_endpoint_has_its_own(monkeypatch):
    monkeypatch.setenv("RASA_LLM_ACTION_TOKEN", TOKEN)
    send_action_token()
    send_action_token()  # idempotent
    endpoint = EndpointConfig("http://127.0.0.1:5055/webhook", headers={"X-Trace": "1"})
    action = RemoteAction("action_order_status", endpoint)
    assert action.action_endpoint.headers == {"X-Trace": "1", "Authorization": f"Bearer {TOKEN}"}
    assert endpoint.headers == {"X-Trace": "1"}  # the configured endpoint is not changed
    own = EndpointConfig("http://h/webhook", headers={"authorization": "Basic abc"})
    assert RemoteAction("a", own).action_endpoint is own
    monkeypatch.delenv("RASA_LLM_ACTION_TOKEN")
    assert RemoteAction("a", endpoint).action_endpoint is endpoint


@pytest.fixture()
def action_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sanic]:
    """rasa_sdk's app, made with Sanic's own registration (no automatic guard)."""
    from rasa_sdk.endpoint import create_app

    without_server_guards(monkeypatch)
    monkeypatch.delenv("SANIC_HOST", raising=False)
    yield create_app("tests.rasa_llm.no_actions")


def test_the_action_server_answers_only_with_the_token(action_app, monkeypatch):
    monkeypatch.setenv("RASA_LLM_ACTION_TOKEN", TOKEN)
    guard_action_server(action_app)
    import os

    assert os.environ["SANIC_HOST"] == "127.0.0.1"
    assert action_app.config.REQUEST_MAX_SIZE <= 16 * 1024 * 1024
    with serving(action_app) as url:
        assert requests.get(f"{url}/health", timeout=30).status_code == 200
        assert requests.get(f"{url}/actions", timeout=30).status_code == 401
        wrong = {"Authorization": "Bearer " + "y" * 30}
        assert requests.get(f"{url}/actions", headers=wrong, timeout=30).status_code == 403
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert requests.get(f"{url}/actions", headers=right, timeout=30).status_code == 200
        posted = requests.post(f"{url}/webhook", json={"next_action": "x"}, timeout=30)
        assert posted.status_code == 401


def test_an_operator_s_own_host_is_kept(action_app, monkeypatch):
    monkeypatch.setenv("RASA_LLM_ACTION_TOKEN", TOKEN)
    monkeypatch.setenv("SANIC_HOST", "10.0.0.5")
    guard_action_server(action_app)
    import os

    assert os.environ["SANIC_HOST"] == "10.0.0.5"


@pytest.mark.parametrize(("token", "says"), [("", "would run every action"), ("short", "16")])
def test_without_a_usable_token_it_does_not_start(action_app, monkeypatch, token, says):
    monkeypatch.setenv("RASA_LLM_ACTION_TOKEN", token)
    with pytest.raises(ActionServerAuthError, match=says):
        guard_action_server(action_app)


def test_open_on_purpose_starts_with_a_warning(action_app, monkeypatch, caplog):
    monkeypatch.delenv("RASA_LLM_ACTION_TOKEN", raising=False)
    monkeypatch.setenv("RASA_LLM_ALLOW_OPEN_ACTION_SERVER", "true")
    guard_action_server(action_app)
    assert "for anyone" in caplog.text
