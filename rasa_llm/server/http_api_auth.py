"""HttpApiAuth: Rasa's HTTP API answers only callers that hold the API token.

``rasa run --enable-api`` serves routes that read and rewrite any conversation
(``/conversations/<id>/tracker``, ``.../events``, ``.../trigger_intent``), parse text and
replace, train or delete the model. Without ``--auth-token`` or ``--jwt-secret`` Rasa
serves them to anyone. In a Rasa server with the API on, :func:`protect_http_api`:

* uses Rasa's own ``--auth-token`` / ``--jwt-secret`` when one was given (nothing to add);
* otherwise requires the token in ``RASA_LLM_API_TOKEN`` (16+ characters; ``make run``
  generates one into ``bot/.secrets/api-token``) on every route of the API, sent as
  ``Authorization: Bearer <token>`` or, as Rasa's own token, ``?token=<token>``:
  401 in Rasa's error shape otherwise, compared in constant time. Open: Rasa's
  ``GET /`` (hello) and ``GET /version``, CORS preflights, and the channels' routes
  under ``/webhooks/``, which each authenticate their own callers;
* with neither, refuses to start (:class:`OpenHttpApiError`, naming the fix), unless
  the operator opts in with ``RASA_LLM_ALLOW_OPEN_API=true`` (a warning at start). When
  rasa-llm is first imported while the server is already starting (loading a model
  with rasa-llm's components, when no rasa-llm channel was imported earlier), it is
  too late to stop the start: the API is then locked instead, every route answering
  503 with the fix, and the error is logged.

The token is read from the environment, not the command line, where any user of the
machine could read it in the process list.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
from typing import Optional

from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from rasa_llm.errors import RasaLLMError
from rasa_llm.server.bearer_tokens import bearer_token
from rasa_llm.server.http_api_guard import rasa_route_token

__all__ = [
    "API_TOKEN_ENV",
    "OPEN_API_ENV",
    "OpenHttpApiError",
    "PUBLIC_ROUTES",
    "protect_http_api",
    "rasa_auth_configured",
]

logger = logging.getLogger(__name__)

API_TOKEN_ENV = "RASA_LLM_API_TOKEN"
OPEN_API_ENV = "RASA_LLM_ALLOW_OPEN_API"
MIN_TOKEN_CHARS = 16
# Routes of Rasa's app that say nothing about anybody: its hello and its version.
PUBLIC_ROUTES = frozenset({("GET", "/"), ("HEAD", "/"), ("GET", "/version")})
CHANNEL_PREFIX = "/webhooks/"
DOCS = "https://rasa.com/docs/rasa/3.x/http-api#security-considerations"
_INSTALLED = "_rasa_llm_http_api_auth"


class OpenHttpApiError(RasaLLMError):
    """The HTTP API would answer anyone, or its token is unusable."""


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def rasa_auth_configured(app: Sanic) -> bool:
    """Whether Rasa itself checks a token or a JWT on the app's API routes."""
    if app.config.get("USE_JWT"):
        return True
    return any(rasa_route_token(app, route)[1] is not None for route in app.router.routes)


def _has_api(app: Sanic) -> bool:
    """Whether ``app`` serves any route but Rasa's hello, version and the channels'."""
    for route in app.router.routes:
        path = "/" + route.uri.lstrip("/")
        if path not in ("/", "/version") and not path.startswith(CHANNEL_PREFIX):
            return True
    return False


def protect_http_api(app: Sanic, *, can_refuse_to_start: bool = True) -> None:
    """Require the API token on ``app``'s API routes, or refuse an open API. Idempotent.

    ``can_refuse_to_start=False`` (the server is already starting) locks an API that
    would be open instead of raising.
    """
    if getattr(app.ctx, _INSTALLED, False):
        return
    if not _has_api(app) or rasa_auth_configured(app):
        if os.environ.get(API_TOKEN_ENV) and _has_api(app):
            logger.info(
                "The HTTP API uses Rasa's own --auth-token or --jwt-secret; %s is not used.",
                API_TOKEN_ENV,
            )
        setattr(app.ctx, _INSTALLED, True)
        return
    token = os.environ.get(API_TOKEN_ENV, "").strip()
    if not token:
        if _truthy(OPEN_API_ENV):
            logger.warning(
                "%s is on: Rasa's HTTP API answers anyone who reaches this port, "
                "including reading and rewriting every conversation. Use it only on a "
                "closed network.",
                OPEN_API_ENV,
            )
            setattr(app.ctx, _INSTALLED, True)
            return
        _refuse(app, OpenHttpApiError(
            "Rasa's HTTP API (--enable-api) would answer anyone who reaches this port: "
            "it reads and rewrites every conversation and replaces the model. Fix: set "
            f"{API_TOKEN_ENV} to a secret of {MIN_TOKEN_CHARS}+ characters (e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))') and send it as "
            "'Authorization: Bearer <token>'; or start Rasa with --auth-token/--jwt-secret; "
            f"or leave out --enable-api. To run it open on purpose, set {OPEN_API_ENV}=true."
        ), can_refuse_to_start)  # fmt: skip
        return
    if len(token) < MIN_TOKEN_CHARS:
        _refuse(app, OpenHttpApiError(
            f"{API_TOKEN_ENV} has {len(token)} characters; a token guessable in reasonable "
            f"time is no protection. Fix: use {MIN_TOKEN_CHARS} or more, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'."
        ), can_refuse_to_start)  # fmt: skip
        return
    app.register_middleware(functools.partial(_require_token, token.encode()), "request")
    setattr(app.ctx, _INSTALLED, True)


def _refuse(app: Sanic, error: OpenHttpApiError, can_refuse_to_start: bool) -> None:
    """Raise ``error``, or, when the server is already starting, lock the API with it."""
    if can_refuse_to_start:
        raise error
    logger.error("%s The HTTP API is locked until then: every route answers 503.", error)
    app.register_middleware(functools.partial(_locked, str(error)), "request")
    setattr(app.ctx, _INSTALLED, True)


def _is_api_request(request: Request) -> bool:
    """A request for an HTTP API route: not a CORS preflight, not an unknown route (Sanic's
    404), not Rasa's hello or version, not a channel's (channels check their callers).
    """
    if request.method == "OPTIONS" or request.route is None:
        return False
    path = "/" + request.route.uri.lstrip("/")
    return (request.method, path) not in PUBLIC_ROUTES and not path.startswith(CHANNEL_PREFIX)


async def _locked(reason: str, request: Request) -> Optional[HTTPResponse]:
    if not _is_api_request(request):
        return None
    return json_response({"status": "failure", "reason": "Locked", "message": reason}, 503)


def presented_token(request: Request) -> Optional[str]:
    """The token a request carries: ``Authorization: Bearer`` first, then ``?token=``."""
    token = bearer_token(request.headers)
    if token is not None:
        return token
    try:
        given = request.args.get("token")
    except Exception:  # noqa: BLE001 - a query string Sanic cannot read carries no token
        return None
    return given if isinstance(given, str) and given else None


async def _require_token(expected: bytes, request: Request) -> Optional[HTTPResponse]:
    if not _is_api_request(request):
        return None
    given = presented_token(request)
    if given is not None and hmac.compare_digest(given.encode(), expected):
        return None
    reason = "no API token" if given is None else "wrong API token"
    logger.warning("HTTP API: refused %s %s (%s)", request.method, request.name, reason)
    return _unauthenticated(reason)


def _unauthenticated(reason: str) -> HTTPResponse:
    from rasa import __version__

    return json_response(
        {
            "version": __version__,
            "status": "failure",
            "message": (
                f"User is not authenticated ({reason}). Send the API token as "
                "'Authorization: Bearer <token>' (make run keeps it in "
                "bot/.secrets/api-token)."
            ),
            "reason": "NotAuthenticated",
            "details": {},
            "help": DOCS,
            "code": 401,
        },
        status=401,
    )
