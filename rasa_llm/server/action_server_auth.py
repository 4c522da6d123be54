"""ActionServerAuth: the action server answers only the Rasa server.

The action server runs every custom action (order look-ups, closing an account,
blocking a card) for whoever posts a tracker to it, and ``GET /actions`` lists them
all. Both ends of a shared secret, ``RASA_LLM_ACTION_TOKEN`` (16+ characters; ``make
run`` generates one into ``bot/.secrets/action-token`` and gives it to both servers):

* the Rasa server sends it with every action call as ``Authorization: Bearer <token>``
  (:func:`send_action_token`: Rasa's ``RemoteAction`` gets the header unless the
  ``action_endpoint`` in endpoints.yml sets its own ``Authorization``);
* the action server (:func:`guard_action_server`, on rasa_sdk's app) refuses any
  request without it (401/403) except ``GET /health``; refuses bodies over
  :data:`MAX_BODY_BYTES` before reading them; and listens on loopback unless
  ``SANIC_HOST`` says otherwise (rasa_sdk's own default is every interface). Without a
  token it refuses to start (:class:`ActionServerAuthError`, naming the fix) unless
  ``RASA_LLM_ALLOW_OPEN_ACTION_SERVER=true``.

For an action server on another host, set ``SANIC_HOST`` to its address (or 0.0.0.0),
give both servers the same token, and put TLS in front (see docs/security.md).
"""

from __future__ import annotations

import copy
import functools
import logging
import os
from typing import Any, Optional

from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from rasa_llm.errors import RasaLLMError
from rasa_llm.server.bearer_tokens import refusal

__all__ = [
    "ACTION_TOKEN_ENV",
    "ActionServerAuthError",
    "MAX_BODY_BYTES",
    "guard_action_server",
    "send_action_token",
]

logger = logging.getLogger(__name__)

ACTION_TOKEN_ENV = "RASA_LLM_ACTION_TOKEN"
OPEN_ACTION_SERVER_ENV = "RASA_LLM_ALLOW_OPEN_ACTION_SERVER"
HOST_ENV = "SANIC_HOST"  # rasa_sdk's run() reads it; default there: 0.0.0.0
LOOPBACK = "127.0.0.1"
MIN_TOKEN_CHARS = 16
# A tracker with its whole history: a long conversation is a few hundred KB.
MAX_BODY_BYTES = 16 * 1024 * 1024
PUBLIC_PATHS = frozenset({"/health"})
_INSTALLED = "_rasa_llm_action_server_auth"


class ActionServerAuthError(RasaLLMError):
    """The action server would answer anyone, or its token is unusable."""


def _token() -> Optional[str]:
    token = os.environ.get(ACTION_TOKEN_ENV, "").strip()
    return token or None


# ------------------------------------------------------------------ the Rasa server
def _with_token(endpoint: Any) -> Any:
    """``endpoint`` with the action token in its headers (a copy), unless it has one."""
    token = _token()
    if endpoint is None or token is None:
        return endpoint
    headers = dict(getattr(endpoint, "headers", None) or {})
    if any(name.lower() == "authorization" for name in headers):
        return endpoint  # the operator's own setting in endpoints.yml wins
    with_token = copy.copy(endpoint)
    with_token.headers = {**headers, "Authorization": f"Bearer {token}"}
    return with_token


def send_action_token() -> None:
    """Make the Rasa server send ``RASA_LLM_ACTION_TOKEN`` with every action call."""
    from rasa.core.actions.action import RemoteAction

    original = RemoteAction.__init__
    if getattr(original, _INSTALLED, False):
        return

    @functools.wraps(original)
    def __init__(self: Any, name: str, action_endpoint: Any) -> None:
        original(self, name, _with_token(action_endpoint))

    setattr(__init__, _INSTALLED, True)
    RemoteAction.__init__ = __init__  # type: ignore[method-assign]


# ------------------------------------------------------------------ the action server
def guard_action_server(app: Sanic) -> Sanic:
    """Require the token on rasa_sdk's ``app``, cap bodies, default to loopback.

    Idempotent; returns ``app``. Raises :class:`ActionServerAuthError` without a usable
    token (unless the operator opted in to an open action server).
    """
    if getattr(app.ctx, _INSTALLED, False):
        return app
    token = _token()
    open_on_purpose = os.environ.get(OPEN_ACTION_SERVER_ENV, "").strip().lower() in (
        "1", "true", "yes", "on",
    )  # fmt: skip
    if token is None and not open_on_purpose:
        raise ActionServerAuthError(
            "The action server would run every action (close an account, block a card) "
            "for anyone who reaches it. Fix: set "
            f"{ACTION_TOKEN_ENV} to the same secret of {MIN_TOKEN_CHARS}+ characters for "
            "`rasa run` and `rasa run actions` (e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'); the Rasa server then sends it. To run "
            f"it open on purpose, set {OPEN_ACTION_SERVER_ENV}=true."
        )
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ActionServerAuthError(
            f"{ACTION_TOKEN_ENV} has {len(token)} characters. Fix: use {MIN_TOKEN_CHARS} "
            "or more, the same for both servers."
        )
    if token is None:
        logger.warning(
            "%s is on: the action server runs actions for anyone who reaches it.",
            OPEN_ACTION_SERVER_ENV,
        )
    else:
        app.register_middleware(functools.partial(_require_token, token), "request")
    app.config.REQUEST_MAX_SIZE = min(app.config.REQUEST_MAX_SIZE, MAX_BODY_BYTES)
    if HOST_ENV not in os.environ:
        # rasa_sdk reads it after making the app; its own default is every interface.
        os.environ[HOST_ENV] = LOOPBACK
        logger.info(
            "The action server listens on %s only; set %s to listen elsewhere.",
            LOOPBACK,
            HOST_ENV,
        )
    setattr(app.ctx, _INSTALLED, True)
    return app


async def _require_token(expected: str, request: Request) -> Optional[HTTPResponse]:
    if request.method == "OPTIONS" or request.path in PUBLIC_PATHS:
        return None
    refused = refusal(request.headers, expected)
    return None if refused is None else _refuse(*refused, request)


def _refuse(status: int, reason: str, request: Request) -> HTTPResponse:
    logger.warning(
        "action server: refused %s %s with %d: %s", request.method, request.path, status, reason
    )
    answer = f"{reason}; the action server answers only the Rasa server ({ACTION_TOKEN_ENV})"
    return json_response({"error": answer}, status=status)
