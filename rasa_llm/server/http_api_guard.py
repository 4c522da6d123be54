"""HttpApiGuard: Rasa's REST channel and HTTP API answer a malformed request with a 400.

Rasa 3.6 reads the bodies of these routes without checking them first, and a body of
the wrong shape becomes a 500 or a silent failure (tests/production/rasa_known_bugs.py
has the smallest request of each 500):

* ``POST /webhooks/rest/webhook``, ``POST /conversations/<id>/messages``,
  ``/trigger_intent`` and ``/execute`` call ``request.json.get()``: a body that is not
  a JSON object is an ``AttributeError``, 500. The REST channel also hands a missing
  ``message`` to the NLU pipeline and any ``metadata`` to the tracker, which fail and
  leave the client a 200 with no answer; ``/messages`` hands any ``text`` to the NLU
  pipeline and indexes any ``parse_data``, and ``/trigger_intent`` reads each of a list
  of ``entities`` as an object: 500s. ``/messages`` refuses a ``sender`` other than
  ``user`` with a message that quotes it into the log.
* ``POST /model/parse`` answers its own 400 (a ``text`` that is not a string, a body
  that is not JSON) from inside an ``except Exception`` that makes it a 500.
* ``POST`` and ``PUT /conversations/<id>/tracker/events`` answer any event they cannot
  read (an empty list, a user event without ``parse_data``, a reminder without
  ``date_time``) with a 500 ``ConversationError``.
* Those and ``POST /model/predict`` refuse an event that fails Rasa's event schema with
  a message that prints the event, which Rasa logs at error level, text and all; an
  event nested a few hundred levels deep runs out of stack while printed: a 500.

:func:`guard_app` gives one of Rasa's Sanic apps (every Rasa server with rasa-llm gets
it from :mod:`rasa_llm.server.server_guards`; :func:`install_http_api_guard` does it for the
apps ``rasa.core.run.configure_app`` makes) a request middleware that checks those
bodies first, by Rasa's own rules (its event schemas,
``Event.from_parameters``; the checks are :mod:`rasa_llm.server.http_api_checks`), and
answers what Rasa would fail on with a 400 in Rasa's error shape, whose message says
what to change and quotes nothing from the body; a body nested more than
:data:`~rasa_llm.server.http_api_checks.MAX_DEPTH` levels deep is refused too. The check runs
inside Rasa's own token or JWT check (``rasa.server.requires_auth``), so a client
without them still gets Rasa's 401 and costs no parsing. A request Rasa can handle
passes untouched (events Rasa skips as unreadable stay Rasa's to skip), and should a
check itself fail, the request goes on to Rasa as if unguarded.

Sanic 21.12 also picks every error page's format (a 404, a 405) by the request's
``Accept`` header and, when that header is malformed, fails inside its error handler:
the page becomes a 500. The guarded app reads a malformed ``Accept`` as no ``Accept``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple

from sanic import Sanic
from sanic.exceptions import SanicException
from sanic.headers import AcceptContainer
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from rasa_llm.errors import RasaLLMError
from rasa_llm.server.http_api_checks import (
    EVENTS_EXAMPLE,
    EXECUTE_EXAMPLE,
    HTTP_API_DOCS,
    MESSAGE_EXAMPLE,
    PARSE_EXAMPLE,
    REST_DOCS,
    REST_EXAMPLE,
    TRIGGER_EXAMPLE,
    BodyRefused,
    check_add_message,
    check_append_events,
    check_execute,
    check_parse,
    check_predict,
    check_replace_events,
    check_rest_message,
    check_trigger_intent,
    read_body,
)

if TYPE_CHECKING:
    from rasa.server import ErrorResponse

__all__ = [
    "HttpApiGuardError",
    "TolerantAcceptRequest",
    "guard_app",
    "install_http_api_guard",
]

logger = logging.getLogger(__name__)

# The apps Rasa 3.6 serves: rasa/server.py create_app, and rasa/core/run.py
# _create_app_without_api (``rasa run`` without --enable-api).
RASA_APP_NAMES = ("rasa_server", "rasa_core_no_api")
# Marks the wrapped configure_app and each guarded app: installing twice guards once.
_INSTALLED = "_rasa_llm_http_api_guard"


class HttpApiGuardError(RasaLLMError):
    """The installed Rasa protects its HTTP API in a way this guard does not know."""


# ------------------------------------------------------------------ the middleware
@dataclasses.dataclass(frozen=True)
class _Route:
    check: Callable[[Any], None]
    example: str
    docs: str
    # Behind rasa.server.requires_auth (the HTTP API), with its --auth-token (or None).
    authenticated: bool = True
    token: Optional[str] = None


# By route name without the app's: rasa/server.py's handlers, the REST channel's.
ROUTES: Dict[str, _Route] = {
    "custom_webhook_RestInput.receive": _Route(
        check_rest_message, REST_EXAMPLE, REST_DOCS, authenticated=False
    ),
    "parse": _Route(check_parse, PARSE_EXAMPLE, HTTP_API_DOCS),
    "add_message": _Route(check_add_message, MESSAGE_EXAMPLE, HTTP_API_DOCS),
    "trigger_intent": _Route(check_trigger_intent, TRIGGER_EXAMPLE, HTTP_API_DOCS),
    "execute_action": _Route(check_execute, EXECUTE_EXAMPLE, HTTP_API_DOCS),
    "append_events": _Route(check_append_events, EVENTS_EXAMPLE, HTTP_API_DOCS),
    "replace_events": _Route(check_replace_events, EVENTS_EXAMPLE, HTTP_API_DOCS),
    "tracker_predict": _Route(check_predict, EVENTS_EXAMPLE, HTTP_API_DOCS),
}


def rasa_route_token(app: Sanic, route: Any) -> Tuple[bool, Optional[str]]:
    """Whether Rasa's ``requires_auth`` wraps ``route``'s handler, and the --auth-token
    it checks (None when none is set).

    rasa/server.py keeps the token only in the closure of ``requires_auth`` around each
    route.
    """
    from rasa.server import requires_auth

    # Every handler requires_auth makes runs the same code (wraps copies only names).
    rasa_check = requires_auth(app, None)(_guard).__code__
    handler = route.handler
    if getattr(handler, "__code__", None) is rasa_check:
        closure = inspect.getclosurevars(handler).nonlocals
        if "token" in closure:
            return True, closure["token"]
    return False, None


def _auth_token(app: Sanic, route: Any) -> Optional[str]:
    """The --auth-token Rasa checks before ``route``'s handler (None when none is set).

    :func:`_guard` hands it back to ``requires_auth``, to run Rasa's own check (token,
    or JWT and its scopes) before the guard's.
    """
    wrapped, token = rasa_route_token(app, route)
    if wrapped:
        return token
    raise HttpApiGuardError(
        f"rasa_llm's HTTP API guard did not find Rasa's token check on the route "
        f"{route.name!r}; it knows the HTTP API of rasa==3.6.21, which rasa-llm pins. "
        "Fix: pip install 'rasa==3.6.21'."
    )


def guard_app(app: Sanic) -> Sanic:
    """Guard one of Rasa's Sanic apps (idempotent); returns ``app``."""
    if getattr(app.ctx, _INSTALLED, False):
        return app
    routes: Dict[str, _Route] = {}
    for route in app.router.routes:
        guarded = ROUTES.get(route.name.split(".", 1)[-1])
        if guarded is not None and guarded.authenticated:
            guarded = dataclasses.replace(guarded, token=_auth_token(app, route))
        if guarded is not None:
            routes[route.name] = guarded
    app.register_middleware(functools.partial(_guard, routes), "request")
    if not issubclass(app.request_class, TolerantAcceptRequest):
        app.request_class = _tolerant(app.request_class)
    setattr(app.ctx, _INSTALLED, True)
    return app


async def _guard(routes: Dict[str, _Route], request: Request) -> Optional[HTTPResponse]:
    """Refuse a body Rasa would fail on; None lets the request go on to Rasa."""
    guarded = routes.get(request.route.name) if request.route is not None else None
    if guarded is None or request.method not in ("POST", "PUT"):
        return None
    if getattr(request.stream, "request_body", None):
        # Sanic runs request middleware again while it answers an error raised before
        # the body was read (a 413 from rasa_llm.server.request_limits): that answer stands.
        return None
    from rasa.server import ErrorResponse, requires_auth

    async def check(
        request: Request, conversation_id: Optional[str] = None
    ) -> None:  # positional: Rasa's requires_auth calls it so
        # conversation_id: requires_auth reads it by name for a JWT user's scope.
        try:
            guarded.check(read_body(request, guarded.example))
        except BodyRefused as refused:
            raise _error_response(refused, guarded.docs) from refused
        except Exception as error:  # noqa: BLE001 - the guard must not add a failure
            # The type only: an exception's text may quote the body.
            logger.error(
                "the HTTP API guard failed on %s (%s); Rasa handles the request unchecked",
                request.path, type(error).__name__,
            )  # fmt: skip

    try:
        if guarded.authenticated:
            await requires_auth(request.app, guarded.token)(check)(request, **request.match_info)
        else:
            await check(request)
    except ErrorResponse as error:
        # Answered here as Rasa's handler answers it: the app without the HTTP API
        # (the REST channel alone) has no handler for ErrorResponse.
        return json_response(error.error_info, status=error.status)
    return None


def _error_response(refused: BodyRefused, docs: str) -> ErrorResponse:
    from rasa.server import ErrorResponse

    # ErrorResponse logs the message at error level, as for Rasa's own refusals.
    return ErrorResponse(
        HTTPStatus.BAD_REQUEST,
        "BadRequest",
        refused.message,
        {"parameter": refused.parameter, "in": "body"},
        help_url=docs,
    )


# ------------------------------------------------------------------ Sanic's Accept
class TolerantAcceptRequest(Request):
    """A request whose malformed ``Accept`` header reads as none.

    Sanic 21.12 reads ``request.accept`` only to pick an error page's format, inside its
    error handler, where ``InvalidHeader`` (``Accept: 0``) or ``ValueError``
    (``q=abc``) make the page "An error occurred while handling an error", 500.
    """

    __slots__ = ()

    @property
    def accept(self) -> AcceptContainer:
        """The parsed ``Accept`` header; an unreadable one counts as absent, not as an error."""
        try:
            return super().accept
        except (SanicException, ValueError):
            self.parsed_accept = AcceptContainer()
            return self.parsed_accept


def _tolerant(request_class: type[Request]) -> type[Request]:
    if request_class is Request:
        return TolerantAcceptRequest
    name = f"TolerantAccept{request_class.__name__}"  # another plugin's request class
    return type(name, (TolerantAcceptRequest, request_class), {"__slots__": ()})


# ------------------------------------------------------------------ installing
def install_http_api_guard() -> None:
    """Guard the Sanic app ``rasa run`` makes, and any of Rasa's apps already made.

    ``rasa run`` imports rasa_llm when it loads the model, after it has made its app
    (unless a channel in credentials.yml imported rasa_llm first); either way the app
    is guarded before it takes a request. Idempotent.
    """
    import rasa.core.run

    original = rasa.core.run.configure_app
    if not getattr(original, _INSTALLED, False):

        @functools.wraps(original)
        def configure_app(*args: Any, **kwargs: Any) -> Sanic:
            return guard_app(original(*args, **kwargs))

        setattr(configure_app, _INSTALLED, True)
        rasa.core.run.configure_app = configure_app  # type: ignore[assignment]
    for name in RASA_APP_NAMES:
        try:
            app = Sanic.get_app(name)
        except SanicException:
            continue
        guard_app(app)
