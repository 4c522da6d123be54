"""The body checks behind :mod:`rasa_llm.server.http_api_guard`: Rasa's own rules, told plainly.

Each ``check_*`` takes a route's JSON body as Rasa's handler would read it and raises
:class:`BodyRefused` for what Rasa would fail on (a 500, or a silent failure), with a
message that says what to change and quotes nothing from the body: customers' texts
are in these bodies and Rasa logs refusals at error level. Events are checked by Rasa's
own event schemas and read by its own ``Event.from_parameters``.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List

from jsonschema.exceptions import ValidationError, best_match
from jsonschema.validators import validator_for
from rasa.shared.constants import DOCS_BASE_URL, DOCS_URL_CONNECTORS
from rasa.shared.utils.schemas import events as event_schemas
from sanic.exceptions import InvalidUsage
from sanic.request import Request

# Rasa stores what these routes take (events, parse_data, metadata) with recursive code
# that runs out of stack some hundreds of levels down, before ujson's own limit of
# 1,024; Rasa's own events nest about six levels deep.
MAX_DEPTH = 100
HTTP_API_DOCS = DOCS_BASE_URL + "/pages/http-api"
REST_DOCS = DOCS_URL_CONNECTORS + "your-own-website#restinput"


class BodyRefused(Exception):
    """A body Rasa would fail on; the message and parameter quote nothing from it."""

    def __init__(self, message: str, *, parameter: str = "") -> None:
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


def read_body(request: Request, example: str) -> Any:
    """The body as Rasa's handler will read it (``request.json``), if Rasa can use it."""
    if not request.body:
        raise BodyRefused(f"The body is empty. Send a JSON object such as {example}.")
    try:
        value = request.json  # Sanic's ujson: what the handler gets
    except InvalidUsage as error:
        raise BodyRefused(f"The body is not valid JSON. Send JSON such as {example}.") from error
    if nested_deeper_than(value, MAX_DEPTH):
        raise BodyRefused(
            f"The body nests lists and objects more than {MAX_DEPTH} levels deep, more "
            "than Rasa can store. Flatten the values in it (metadata, slot values)."
        )
    return value


def _object(value: Any, example: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise BodyRefused(
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
        raise BodyRefused(
            f"'message' is {_kind(body, 'message')}; send the customer's text as a "
            f"string, as in {REST_EXAMPLE}.",
            parameter="message",
        )
    metadata = body.get("metadata")
    if metadata and not isinstance(metadata, dict):  # Rasa reads a falsy one as none
        raise BodyRefused(
            f"'metadata' is {_json_type(metadata)}; send an object.", parameter="metadata"
        )


def check_parse(value: Any) -> None:
    """``POST /model/parse``: rasa/server.py parse() and Emulator.normalise_request_json."""
    body = _object(value, PARSE_EXAMPLE)
    text = body.get("text")
    if type(text) is list:  # Rasa's emulator reads a list's first item (exactly a list)
        text = text[0] if text else None
    if not isinstance(text, str):
        raise BodyRefused(
            f"'text' is {_kind(body, 'text')}; send the text to parse as a string, as in "
            f"{PARSE_EXAMPLE}.",
            parameter="text",
        )


def check_add_message(value: Any) -> None:
    """``POST /conversations/<id>/messages``: rasa/server.py add_message()."""
    body = _object(value, MESSAGE_EXAMPLE)
    if body.get("sender") != "user":
        raise BodyRefused(
            f"'sender' must be \"user\": this endpoint adds only user messages (send "
            f"{MESSAGE_EXAMPLE}).",
            parameter="sender",
        )
    parse_data, text = body.get("parse_data"), body.get("text")
    if parse_data:  # Rasa skips NLU and indexes it
        _check_schema(_PARSE_DATA, parse_data, "parse_data")
    if not isinstance(text, str) and not (text is None and parse_data):
        raise BodyRefused(
            f"'text' is {_kind(body, 'text')}; send the message as a string, as in "
            f"{MESSAGE_EXAMPLE} (null only with parse_data).",
            parameter="text",
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
        raise BodyRefused(f"The body holds no event. Send at least one, as in {EVENTS_EXAMPLE}.")


def check_replace_events(value: Any) -> None:
    """``PUT /conversations/<id>/tracker/events``: rasa/server.py replace_events().

    DialogueStateTracker.from_dict reads a list only; an empty one empties the tracker.
    """
    if not isinstance(value, list):
        raise BodyRefused(
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
        raise BodyRefused(
            f"Event {index} ({event['event']!r}) cannot be read by Rasa "
            f"({type(error).__name__}); give it the fields Rasa's event reference lists "
            f"(a 'user' event needs parse_data with intent and entities, a 'reminder' a "
            f"date_time): {HTTP_API_DOCS}.",
            parameter=str(index),
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
            raise BodyRefused(
                f"Event {index} has an unknown 'event'; use one of "
                f"{', '.join(sorted(_EVENT_VARIANTS))} ({HTTP_API_DOCS}).",
                parameter=str(index),
            )
        own = [e for e in error.context or () if e.relative_schema_path[0] == variant]
        error = best_match(own) or error
    field = _dotted(list(error.absolute_path)[1:])
    where = f"event {index}" + (f", field {field}," if field else "")
    raise BodyRefused(_schema_problem(error, where), parameter=str(index))


def _check_schema(validator: Any, value: Any, parameter: str) -> None:
    error = best_match(validator.iter_errors(value))
    if error is not None:
        where = f"'{_dotted([parameter, *error.absolute_path])}'"
        raise BodyRefused(_schema_problem(error, where), parameter=parameter)


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
