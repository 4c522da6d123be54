"""ServerGuards: rasa-llm's protections switch on in every Rasa server, however started.

``rasa run``, ``python -m rasa run``, ``rasa shell``, ``rasa run actions``, ``python -m
rasa_sdk`` and a program of one's own that builds Rasa's server all make a Sanic app
with one of Rasa's names. :func:`install_server_guards` (called when ``rasa_llm`` is
imported, which a bot with rasa-llm's components, stores or channels does) watches for
those apps, the ones made before the import and the ones made after, instead of
guessing from the program's name:

* a Rasa server (``rasa_server``, with the HTTP API; ``rasa_core_no_api``): at once,
  refuse to run with telemetry on (:mod:`rasa_llm.server.telemetry_check`), redact customer
  text from the logs (:mod:`rasa_llm.server.log_redactor`), answer customers whose action
  failed (:mod:`rasa_llm.server.action_failure_reply`), read customers' ``/...`` messages as
  text (:mod:`rasa_llm.server.intent_shortcuts`), send the action server's token
  (:mod:`rasa_llm.server.action_server_auth`) and answer on one torch thread
  (:mod:`rasa_llm.models.serving`); and once its routes are there (before the server starts,
  before the model loads): require the API token (:mod:`rasa_llm.server.http_api_auth`),
  limit each route's body (:mod:`rasa_llm.server.request_limits`) and check the HTTP API's
  bodies (:mod:`rasa_llm.server.http_api_guard`);
* an action server (``rasa_sdk``): redact the logs and require the Rasa server's token
  (:func:`rasa_llm.server.action_server_auth.guard_action_server`).

A library use of ``rasa_llm`` (training, a notebook, tests that make no Rasa app) is
left as it is; each install function can still be called on its own.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from sanic import Sanic

__all__ = ["ACTION_SERVER_APPS", "RASA_SERVER_APPS", "install_server_guards"]

# rasa/server.py create_app and rasa/core/run.py _create_app_without_api.
RASA_SERVER_APPS = frozenset({"rasa_server", "rasa_core_no_api"})
# rasa_sdk/endpoint.py create_app.
ACTION_SERVER_APPS = frozenset({"rasa_sdk"})
_INSTALLED = "_rasa_llm_server_guards"
_GUARDED = "_rasa_llm_app_guarded"
_process_lock = threading.Lock()
_process_guarded = {"rasa": False, "actions": False}


def _guard_rasa_process(*, can_refuse_to_start: bool = True) -> None:
    """What a process that serves Rasa needs once (raises if telemetry is on).

    ``can_refuse_to_start=False``: the server is already starting; telemetry that is on
    is turned off for the rest of the process instead, with an error logged.
    """
    from rasa_llm.models.serving import use_serving_threads
    from rasa_llm.server.action_failure_reply import install_action_failure_reply
    from rasa_llm.server.action_server_auth import send_action_token
    from rasa_llm.server.intent_shortcuts import install_intent_shortcut_guard
    from rasa_llm.server.log_redactor import install_log_redaction
    from rasa_llm.server.telemetry_check import refuse_telemetry

    with _process_lock:
        # Every time a server is made: the setting may have changed.
        refuse_telemetry(can_refuse_to_start=can_refuse_to_start)
        if _process_guarded["rasa"]:
            return
        install_log_redaction()
        install_action_failure_reply()
        install_intent_shortcut_guard()
        send_action_token()
        use_serving_threads()
        _process_guarded["rasa"] = True


def _guard_rasa_routes(app: Sanic, *, can_refuse_to_start: bool = True) -> None:
    """What needs the app's routes: API token, body limits, body checks."""
    from rasa_llm.server.http_api_auth import protect_http_api
    from rasa_llm.server.http_api_guard import guard_app
    from rasa_llm.server.request_limits import limit_request_sizes

    if getattr(app.ctx, _GUARDED, False):
        return
    protect_http_api(app, can_refuse_to_start=can_refuse_to_start)
    limit_request_sizes(app)
    guard_app(app)
    setattr(app.ctx, _GUARDED, True)


def _guard_action_server(app: Sanic) -> None:
    from rasa_llm.server.action_server_auth import guard_action_server
    from rasa_llm.server.log_redactor import install_log_redaction

    with _process_lock:
        if not _process_guarded["actions"]:
            install_log_redaction()
            _process_guarded["actions"] = True
    guard_action_server(app)


def _on_app(app: Sanic, *, made_before_import: bool) -> None:
    if app.name in RASA_SERVER_APPS:
        starting = made_before_import and bool(app.state.is_started)
        _guard_rasa_process(can_refuse_to_start=not starting)
        if starting:
            # Imported while the server starts (loading its model): the routes are there,
            # and it is too late to stop the start, so what is wrong is locked instead.
            _guard_rasa_routes(app, can_refuse_to_start=False)
        else:
            # Routes may still be added: guard them before the server starts, which is
            # also before Rasa loads the model.
            async def guard_routes(running: Sanic, *_: Any) -> None:
                _guard_rasa_routes(running)

            app.register_listener(guard_routes, "before_server_start")
    elif app.name in ACTION_SERVER_APPS:
        _guard_action_server(app)


def install_server_guards() -> None:
    """Guard every Rasa server and action server app of this process. Idempotent."""
    original = Sanic.__dict__["register_app"].__func__
    if getattr(original, _INSTALLED, False):
        return

    @functools.wraps(original)
    def register_app(cls: type, app: Sanic) -> None:
        original(cls, app)
        _on_app(app, made_before_import=False)

    setattr(register_app, _INSTALLED, True)
    Sanic.register_app = classmethod(register_app)  # type: ignore[assignment,method-assign]
    for app in list(Sanic._app_registry.values()):
        _on_app(app, made_before_import=True)
