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

:func:`install_http_api_guard` gives the Sanic app that ``rasa run`` makes a request
middleware that checks those bodies first, by Rasa's own rules (its event schemas,
``Event.from_parameters``), and answers what Rasa would fail on with a 400 in Rasa's
error shape, whose message says what to change and quotes nothing from the body; a
body nested more than :data:`MAX_DEPTH` levels deep is refused too. The check runs
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
import json
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional

from jsonschema.exceptions import ValidationError, best_match
from jsonschema.validators import validator_for
from rasa.shared.constants import DOCS_BASE_URL, DOCS_URL_CONNECTORS
from rasa.shared.utils.schemas import events as event_schemas
from sanic import Sanic
from sanic.exceptions import InvalidUsage, SanicException
from sanic.headers import AcceptContainer
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from rasa_llm.errors import RasaLLMError

if TYPE_CHECKING:
    from rasa.server import ErrorResponse

__all__ = [
    "MAX_DEPTH",
    "HttpApiGuardError",
    "TolerantAcceptRequest",
    "guard_app",
    "install_http_api_guard",
]

logger = logging.getLogger(__name__)

# Rasa stores what these routes take (events, parse_data, metadata) with recursive code
# that runs out of stack some hundreds of levels down, before ujson's own limit of
# 1,024; Rasa's own events nest about six levels deep.
MAX_DEPTH = 100
# The apps Rasa 3.6 serves: rasa/server.py create_app, and rasa/core/run.py
# _create_app_without_api (``rasa run`` without --enable-api).
RASA_APP_NAMES = ("rasa_server", "rasa_core_no_api")
HTTP_API_DOCS = DOCS_BASE_URL + "/pages/http-api"
REST_DOCS = DOCS_URL_CONNECTORS + "your-own-website#restinput"
# Marks the wrapped configure_app and each guarded app: installing twice guards once.
_INSTALLED = "_rasa_llm_http_api_guard"


class HttpApiGuardError(RasaLLMError):
    """The installed Rasa protects its HTTP API in a way this guard does not know."""


class _Refused(Exception):
    """A body Rasa would fail on; the message and parameter quote nothing from it."""

    def __init__(self, message: str, parameter: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter


# ------------------------------------------------------------------ reading the body
def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects nest in ``value`` more than ``limit`` levels deep.

    Iterative: the point is a value too deep for recursive code.
    """
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if level > limit:
            return True
        stack.extend((child, level + 1) for child in children)
    return False


def _body(request: Request, example: str) -> Any:
    """The body as Rasa's handler will read it (``request.json``), if Rasa can use it."""
    if not request.body:
        raise _Refused(f"The body is empty. Send a JSON object such as {example}.")
    try:
        value = request.json  # Sanic's ujson: what the handler gets
    except InvalidUsage as error:
        raise _Refused(f"The body is not valid JSON. Send JSON such as {example}.") from error
    if nested_deeper_than(value, MAX_DEPTH):
        raise _Refused(
            f"The body nests lists and objects more than {MAX_DEPTH} levels deep, more "
            "than Rasa can store. Flatten the values in it (metadata, slot values)."
        )
    return value


def _object(value: Any, example: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise _Refused(
            f"The body is {_json_type(value)}, not a JSON object. Send an object such as {example}."
        )
    return value


def _kind(body: Dict[str, Any], key: str) -> str:
    """What ``body[key]`` is, for a message: its JSON type, or missing."""
    return _json_type(body[key]) if key in body else "missing"


# ------------------------------------------------------------------ the routes' rules
REST_EXAMPLE = '{"sender": "<conversation id>", "message": "<text>"}'
PARSE_EXAMPLE = '{"text": "<text>"}'
MESSAGE_EXAMPLE = '{"sender": "user", "text": "<text>"}'
TRIGGER_EXAMPLE = '{"name": "<intent>", "entities": {"<entity>": "<value>"}}'
EXECUTE_EXAMPLE = '{"name": "<action>"}'
EVENTS_EXAMPLE = '[{"event": "action", "name": "action_listen"}]'


def check_rest_message(value: Any) -> None:
    """``POST /webhooks/rest/webhook``: rasa/core/channels/rest.py RestInput.receive.

    ``sender`` is not checked: Rasa takes any value as the conversation id (str()).
    """
    body = _object(value, REST_EXAMPLE)
    if not isinstance(body.get("message"), str):
        raise _Refused(
            f"'message' is {_kind(body, 'message')}; send the customer's text as a "
            f"string, as in {REST_EXAMPLE}.",
            "message",
        )
    metadata = body.get("metadata")
    if metadata and not isinstance(metadata, dict):  # Rasa reads a falsy one as none
        raise _Refused(f"'metadata' is {_json_type(metadata)}; send an object.", "metadata")


def check_parse(value: Any) -> None:
    """``POST /model/parse``: rasa/server.py parse() and Emulator.normalise_request_json."""
    body = _object(value, PARSE_EXAMPLE)
    text = body.get("text")
    if type(text) is list:  # Rasa's emulator reads a list's first item (exactly a list)
        text = text[0] if text else None
    if not isinstance(text, str):
        raise _Refused(
            f"'text' is {_kind(body, 'text')}; send the text to parse as a string, as in "
            f"{PARSE_EXAMPLE}.",
            "text",
        )


def check_add_message(value: Any) -> None:
    """``POST /conversations/<id>/messages``: rasa/server.py add_message()."""
    body = _object(value, MESSAGE_EXAMPLE)
    if body.get("sender") != "user":
        raise _Refused(
            f"'sender' must be \"user\": this endpoint adds only user messages (send "
            f"{MESSAGE_EXAMPLE}).",
            "sender",
        )
    parse_data, text = body.get("parse_data"), body.get("text")
    if parse_data:  # Rasa skips NLU and indexes it
        _check_schema(_PARSE_DATA, parse_data, "parse_data")
    if not isinstance(text, str) and not (text is None and parse_data):
        raise _Refused(
            f"'text' is {_kind(body, 'text')}; send the message as a string, as in "
            f"{MESSAGE_EXAMPLE} (null only with parse_data).",
            "text",
        )


def check_trigger_intent(value: Any) -> None:
    """``POST /conversations/<id>/trigger_intent``: rasa/server.py trigger_intent().

    Entities are an object (entity to value) or a list of Rasa entities; Rasa warns
    about any other value and goes on without them.
    """
    entities = _object(value, TRIGGER_EXAMPLE).get("entities")
    if isinstance(entities, list):
        _check_schema(_ENTITIES, entities, "entities")


def check_execute(value: Any) -> None:
    """``POST /conversations/<id>/execute``: rasa/server.py execute_action()."""
    _object(value, EXECUTE_EXAMPLE)


def check_append_events(value: Any) -> None:
    """``POST /conversations/<id>/tracker/events``: rasa/server.py append_events().

    Rasa takes one event or a list; it reads every one, skips those it reads as
    nothing, and fails (500) on one that raises or when none is left.
    """
    events = value if isinstance(value, list) else [value]
    _check_events(events)
    if not any([_read_event(index, event) for index, event in enumerate(events)]):
        raise _Refused(f"The body holds no event. Send at least one, as in {EVENTS_EXAMPLE}.")


def check_replace_events(value: Any) -> None:
    """``PUT /conversations/<id>/tracker/events``: rasa/server.py replace_events().

    DialogueStateTracker.from_dict reads a list only; an empty one empties the tracker.
    """
    if not isinstance(value, list):
        raise _Refused(
            f"The body is {_json_type(value)}; send the conversation's events as an "
            f"array, as in {EVENTS_EXAMPLE}."
        )
    _check_events(value)
    for index, event in enumerate(value):
        _read_event(index, event)


def check_predict(value: Any) -> None:
    """``POST /model/predict``: the schema only; Rasa answers an unreadable event 400."""
    _check_events(value if isinstance(value, list) else [value])


def _read_event(index: int, event: Dict[str, Any]) -> Any:
    """The event as Rasa reads it, or a refusal naming it (it fits the schema by now)."""
    from rasa.shared.core.events import Event

    try:
        return Event.from_parameters(event)
    except Exception as error:  # noqa: BLE001 - whatever Rasa's reader raises is a 500 there
        # The schema held, so the name is one of Rasa's event names, not the body's text.
        raise _Refused(
            f"Event {index} ({event['event']!r}) cannot be read by Rasa "
            f"({type(error).__name__}); give it the fields Rasa's event reference lists "
            f"(a 'user' event needs parse_data with intent and entities, a 'reminder' a "
            f"date_time): {HTTP_API_DOCS}.",
            str(index),
        ) from error


# ------------------------------------------------------------------ Rasa's schemas
def _validator(schema: Dict[str, Any]) -> Any:
    return validator_for(schema)(schema)


_EVENTS = _validator(event_schemas.EVENTS_SCHEMA)
_ENTITIES = _validator(event_schemas.ENTITIES_SCHEMA)
# What rasa/core/processor.py _handle_message_with_tracker indexes, in a user event's
# own schema for it.
_USER_PARSE_DATA = event_schemas.USER_UTTERED["properties"]["parse_data"]  # type: ignore[index]
_PARSE_DATA = _validator({**_USER_PARSE_DATA, "required": ["intent", "entities"]})
# Each event name, and where its own schema is in EVENT_SCHEMA's oneOf.
_EVENT_VARIANTS: Dict[str, int] = {
    variant["properties"]["event"]["const"]: index
    for index, variant in enumerate(event_schemas.EVENT_SCHEMA["oneOf"])  # type: ignore[arg-type]
}
_TYPE_NAMES = {"object": "an object", "array": "an array", "string": "a string",
               "integer": "an integer", "number": "a number", "boolean": "a boolean",
               "null": "null"}  # fmt: skip


def _schema_fields(schema: Any) -> frozenset[str]:
    """Every property name the schema gives (iteratively)."""
    found: set[str] = set()
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            properties = item.get("properties")
            found.update(properties if isinstance(properties, dict) else ())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return frozenset(found)


_SCHEMA_FIELDS = _schema_fields(event_schemas.EVENTS_SCHEMA)


def _check_events(events: List[Any]) -> None:
    """rasa/server.py validate_events_in_request_body, with a message that does not
    print the event (Rasa logs it at error level).
    """
    error = best_match(_EVENTS.iter_errors(events))
    if error is None:
        return
    index = error.absolute_path[0] if error.absolute_path else 0
    if error.validator == "oneOf":
        # Say what is wrong within the event's own type, not "none of 23 types".
        event = events[index] if isinstance(index, int) else None
        name = event.get("event") if isinstance(event, dict) else None
        variant = _EVENT_VARIANTS.get(name) if isinstance(name, str) else None
        if variant is None:
            raise _Refused(
                f"Event {index} has an unknown 'event'; use one of "
                f"{', '.join(sorted(_EVENT_VARIANTS))} ({HTTP_API_DOCS}).",
                str(index),
            )
        own = [e for e in error.context or () if e.relative_schema_path[0] == variant]
        error = best_match(own) or error
    field = _dotted(list(error.absolute_path)[1:])
    where = f"event {index}" + (f", field {field}," if field else "")
    raise _Refused(_schema_problem(error, where), str(index))


def _check_schema(validator: Any, value: Any, parameter: str) -> None:
    error = best_match(validator.iter_errors(value))
    if error is not None:
        where = f"'{_dotted([parameter, *error.absolute_path])}'"
        raise _Refused(_schema_problem(error, where), parameter)


def _dotted(path: List[Any]) -> str:
    """``path`` for a message: list positions, and field names the schema gives.

    A key the schema does not name (a retrieval intent in response_selector) is the
    body's, and stays out.
    """
    parts = [
        f"[{key}]" if isinstance(key, int) else f".{key}" if key in _SCHEMA_FIELDS else ".<key>"
        for key in path
    ]
    return "".join(parts).lstrip(".")


def _schema_problem(error: ValidationError, where: str) -> str:
    """What is wrong, from the schema's side of ``error`` only (its instance is the body)."""
    expected = error.validator_value
    if error.validator == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        named = " or ".join(_TYPE_NAMES.get(name, name) for name in types)
        problem = f"must be {named}, not {_json_type(error.instance)}"
    elif error.validator == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        problem = "lacks " + ", ".join(repr(name) for name in expected if name not in present)
    elif error.validator == "const":
        problem = f"must be {json.dumps(expected)}"
    else:
        problem = f"fails the schema's {error.validator!r} rule"
    return f"{where[:1].upper()}{where[1:]} {problem} (Rasa's formats: {HTTP_API_DOCS})."


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


def _auth_token(app: Sanic, route: Any) -> Optional[str]:
    """The --auth-token Rasa checks before ``route``'s handler (None when none is set).

    rasa/server.py keeps it only in the closure of ``requires_auth`` around each route;
    :func:`_guard` hands it back to ``requires_auth``, to run Rasa's own check (token,
    or JWT and its scopes) before the guard's.
    """
    from rasa.server import requires_auth

    # Every handler requires_auth makes runs the same code (wraps copies only names).
    rasa_check = requires_auth(app, None)(_guard).__code__
    handler = route.handler
    if getattr(handler, "__code__", None) is rasa_check:
        closure = inspect.getclosurevars(handler).nonlocals
        if "token" in closure:
            return closure["token"]  # type: ignore[no-any-return]
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
    from rasa.server import ErrorResponse, requires_auth

    async def check(request: Request, conversation_id: Optional[str] = None) -> None:
        # conversation_id: requires_auth reads it by name for a JWT user's scope.
        try:
            guarded.check(_body(request, guarded.example))
        except _Refused as refused:
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


def _error_response(refused: _Refused, docs: str) -> ErrorResponse:
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
