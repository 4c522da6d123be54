"""The 500s that tests/production/test_fuzz.py found outside the channels: Rasa 3.6's and
Sanic 21.12's own, each with the request that shows it and the line that fails. (One
of rasa_llm's, a lone surrogate making the intent classifier's tokenizer raise, is
fixed: rasa_llm/fine_tuning.py tokenize.)

None can be guarded from a channel: Rasa's REST channel and HTTP API, and Sanic's error
pages, are theirs. The fuzz tolerates a 5xx only for a request :func:`known_500` matches
(the server must still survive it and keep its log clean); :data:`EXAMPLES` and the
tests named there are strict xfails, so the day one is fixed the test says so and its
exception here can go.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import ujson  # what Sanic 21.12 parses request.json with

NOT_JSON = object()


def sanic_json(body: Optional[bytes]) -> Any:
    """What ``request.json`` hands Rasa: None without a body, NOT_JSON when Sanic refuses it."""
    if not body:
        return None
    try:
        return ujson.loads(body)
    except Exception:  # noqa: BLE001 - Sanic turns every parse failure into its 400
        return NOT_JSON


def depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            stack.extend(
                (child, level + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


# Rasa validates events with jsonschema, which recurses once per level (a few frames
# each) and runs out of stack long before ujson's own limit of 1,024 levels.
JSONSCHEMA_SAFE_DEPTH = 100


def _first_text(value: Any) -> Any:
    """The text /model/parse reads: ``text``, or the first item when it is a list."""
    text = value.get("text") if isinstance(value, dict) else None
    return (text[0] if text else None) if isinstance(text, list) else text


def known_500(method: str, path: str, body: Optional[bytes]) -> Optional[str]:
    """Which documented bug makes ``method path`` with ``body`` a 500, if one does."""
    value = sanic_json(body)
    route = path.split("?")[0]
    if route == "/webhooks/rest/webhook" and value is not NOT_JSON and not isinstance(value, dict):
        return "rest-not-an-object"
    if route == "/model/parse":
        if not isinstance(_first_text(value), str):
            return "parse-refusal-is-500"
    conversation = route.startswith("/conversations/")
    if conversation and route.endswith(("/messages", "/trigger_intent", "/execute")):
        # Only add_message() answers a missing body with its 400 first.
        checked = route.endswith("/messages") and not body
        if value is not NOT_JSON and not isinstance(value, dict) and not checked:
            return "api-body-not-an-object"
        if route.endswith("/messages") and isinstance(value, dict):
            if not isinstance(value.get("text"), str):
                return "message-text-not-a-string"
    if (conversation and route.endswith("/tracker/events")) or route == "/model/predict":
        if value is not NOT_JSON and depth(value) > JSONSCHEMA_SAFE_DEPTH:
            return "events-nested-too-deeply"
    return None


def caught_by_rasa(path: str, answer: Any) -> Optional[str]:
    """A 500 that Rasa chose, on a route where only Rasa's own code runs.

    rasa/server.py append_events() and replace_events() answer *any* failure to read
    the events they were given (an empty list, a reminder without ``date_time``, ...)
    with ``500 ConversationError``: too many shapes to list, and none reaches this
    project's code (no NLU, no policy, no action runs there).
    """
    route = path.split("?")[0]
    events = route.startswith("/conversations/") and route.endswith("/tracker/events")
    if events and isinstance(answer, dict) and answer.get("reason") == "ConversationError":
        return "events-rasa-cannot-read"
    return None


# The smallest request of each: (method, path, body, what Rasa does).
EXAMPLES: Dict[str, Tuple[str, str, bytes, str]] = {
    "rest-not-an-object": (
        "POST", "/webhooks/rest/webhook", b"[]",
        "rasa/core/channels/rest.py RestInput._extract_sender calls request.json.get(): "
        "AttributeError for a JSON array, string or number, or no body at all",
    ),
    "parse-refusal-is-500": (
        "POST", "/model/parse", b'{"text": 5}',
        "rasa/server.py parse(): the 400 ParsingError raised in its inner try is caught by "
        "the outer `except Exception` and answered 500; so is no `text`, a JSON array, or "
        "a body that is not JSON",
    ),
    "api-body-not-an-object": (
        "POST", "/conversations/fuzz-known-bug/messages", b"[]",
        "rasa/server.py add_message(), trigger_intent() and execute_action() call "
        "request.json.get() before any check: AttributeError",
    ),
    "events-rasa-cannot-read": (
        "POST", "/conversations/fuzz-known-bug/tracker/events", b"[]",
        "rasa/server.py append_events(): the 400 for `no event in the body` is raised "
        "inside its `except Exception`, which answers 500 ConversationError (as for a "
        "reminder without date_time, and every other event it cannot read)",
    ),
    "message-text-not-a-string": (
        "POST", "/conversations/fuzz-known-bug/messages", b'{"sender": "user", "text": null}',
        "rasa/server.py add_message() hands any `text` to the NLU pipeline unchecked; "
        "RegexEntityExtractor fails on null or a number, and the failure is answered 500",
    ),
    "events-nested-too-deeply": (
        "POST", "/conversations/fuzz-known-bug/tracker/events",
        b'{"event": "user", "text": "hi", "x": ' + b"[" * 400 + b"]" * 400 + b"}",
        "rasa/server.py validate_events_in_request_body() runs jsonschema.validate, "
        "which recurses per level of nesting: RecursionError, answered 500",
    ),
}  # fmt: skip

# Sanic 21.12 (sanic/errorpages.py exception_response) reads request.accept to choose
# an error page's format; parse_accept raises on a malformed Accept header, inside the
# error handler, and the 404 or 405 becomes "An error occurred while handling an
# error", 500. It hits every route's error pages; the channels' own refusals are
# responses, not raised errors, and are not affected.
SANIC_BAD_ACCEPT: List[Tuple[str, str, Dict[str, str]]] = [
    ("GET", "/no-such-route", {"Accept": "0"}),
    ("DELETE", "/webhooks/webchat/", {"Accept": "0"}),
    ("GET", "/no-such-route", {"Accept": "text/html;q=abc"}),
]
