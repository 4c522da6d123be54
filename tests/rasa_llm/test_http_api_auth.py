"""The API token, the locked API and per-route body limits on Rasa's own app, served
over HTTP in this process (rasa.server.create_app, no model loaded)."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import requests
from sanic import Sanic, response

from rasa_llm.server.http_api_auth import OpenHttpApiError, protect_http_api
from rasa_llm.server.request_limits import DEFAULT_LIMIT, limit_for, limit_request_sizes
from tests.sanic_serving import serving, without_server_guards

TOKEN = "unit-api-token-0123456789"


@pytest.fixture()
def rasa_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Makes Rasa's app without rasa_llm's automatic guards, to apply them by hand."""
    import rasa.server

    without_server_guards(monkeypatch)
    monkeypatch.delenv("RASA_LLM_API_TOKEN", raising=False)
    monkeypatch.delenv("RASA_LLM_ALLOW_OPEN_API", raising=False)
    yield rasa.server.create_app


def test_the_token_is_required_on_the_api_and_not_on_hello_or_version(rasa_app, monkeypatch):
    monkeypatch.setenv("RASA_LLM_API_TOKEN", TOKEN)
    app = rasa_app()
    protect_http_api(app)
    with serving(app) as url:
        assert requests.get(f"{url}/domain", timeout=30).status_code == 401
        wrong = {"Authorization": "Bearer " + "x" * 30}
        assert requests.get(f"{url}/domain", headers=wrong, timeout=30).status_code == 401
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        # Past the token: Rasa's own answer (no model is loaded here).
        assert requests.get(f"{url}/domain", headers=bearer, timeout=30).status_code == 409
        assert requests.get(f"{url}/domain?token={TOKEN}", timeout=30).status_code == 409
        assert requests.get(f"{url}/", timeout=30).status_code == 200
        assert requests.get(f"{url}/version", timeout=30).status_code == 200
        refused = requests.delete(f"{url}/model", timeout=30)
        assert (
            refused.json()["reason"] == "NotAuthenticated" and "Bearer" in refused.json()["message"]
        )


def test_an_open_api_is_refused_or_locked_when_too_late_to_refuse(rasa_app):
    with pytest.raises(OpenHttpApiError, match="RASA_LLM_API_TOKEN"):
        protect_http_api(rasa_app())
    app = rasa_app()
    protect_http_api(app, can_refuse_to_start=False)
    with serving(app) as url:
        locked = requests.get(f"{url}/domain", params={"token": "anything"}, timeout=30)
        assert locked.status_code == 503 and "RASA_LLM_API_TOKEN" in locked.json()["message"]
        assert requests.get(f"{url}/version", timeout=30).status_code == 200


def test_a_short_token_is_refused(rasa_app, monkeypatch):
    monkeypatch.setenv("RASA_LLM_API_TOKEN", "short")
    with pytest.raises(OpenHttpApiError, match="16 or more"):
        protect_http_api(rasa_app())


def test_rasa_s_own_auth_token_is_left_to_rasa(rasa_app, monkeypatch):
    monkeypatch.setenv("RASA_LLM_API_TOKEN", TOKEN)
    app = rasa_app(auth_token="rasa-own-token-0123456789")
    protect_http_api(app)  # no error: Rasa checks its own token
    with serving(app) as url:
        assert requests.get(f"{url}/domain", timeout=30).status_code == 401
        own = requests.get(f"{url}/domain?token=rasa-own-token-0123456789", timeout=30)
        assert own.status_code == 409


def test_an_open_api_on_purpose_starts_with_a_warning(rasa_app, monkeypatch, caplog):
    monkeypatch.setenv("RASA_LLM_ALLOW_OPEN_API", "true")
    app = rasa_app()
    protect_http_api(app)
    assert "answers anyone" in caplog.text
    with serving(app) as url:
        assert requests.get(f"{url}/domain", timeout=30).status_code == 409


def test_each_route_gets_its_own_body_limit():
    app = Sanic("limits_unit")

    @app.post("/small", ctx_max_body_bytes=100)
    async def small(request: Any) -> Any:
        return response.json({"got": len(request.body)})

    @app.post("/parse")
    async def parse(request: Any) -> Any:
        return response.json({"got": len(request.body)})

    limit_request_sizes(app)
    limit_request_sizes(app)  # idempotent
    assert limit_for(app.router.routes_all[("small",)]) == 100
    with serving(app) as url:
        assert requests.post(f"{url}/small", data=b"x" * 100, timeout=30).json() == {"got": 100}
        assert requests.post(f"{url}/small", data=b"x" * 101, timeout=30).status_code == 413
        at_default = requests.post(f"{url}/parse", data=b"x" * DEFAULT_LIMIT, timeout=30)
        assert at_default.json() == {"got": DEFAULT_LIMIT}
        over = requests.post(f"{url}/parse", data=b"x" * (DEFAULT_LIMIT + 1), timeout=30)
        assert over.status_code == 413


def test_rasa_s_training_routes_take_larger_bodies(rasa_app):
    app = rasa_app()
    limits = {route.name.rsplit(".", 1)[-1]: limit_for(route) for route in app.router.routes}
    assert limits["parse"] == DEFAULT_LIMIT
    assert limits["train"] > DEFAULT_LIMIT and limits["evaluate_intents"] > DEFAULT_LIMIT
