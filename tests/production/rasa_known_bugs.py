"""The 500s found outside the channels, by tests/production/test_fuzz.py or while closing
those: Rasa 3.6's and Sanic 21.12's own, each with the smallest request that showed it
and the line that failed. (One of rasa_llm's, a lone surrogate making the intent
classifier's tokenizer raise, is fixed: rasa_llm/models/fine_tuning.py tokenize.)

No channel can guard them, since Rasa's REST channel and HTTP API and Sanic's error
pages are theirs; ``rasa run`` closes them from outside instead: rasa_llm/server/http_api_guard.py
checks these routes' bodies by Rasa's own rules and answers what Rasa would fail on with
a 400, and reads a malformed ``Accept`` header as none. The fuzz lets no 5xx through;
each request here is a case of its own (test_fuzz.py), which fails if it is a 500 again.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

# The smallest request of each: (method, path, body, what Rasa did with it unguarded).
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
        "reminder without date_time, a user event without parse_data, and every other "
        "event it cannot read)",
    ),
    "message-text-not-a-string": (
        "POST", "/conversations/fuzz-known-bug/messages", b'{"sender": "user", "text": null}',
        "rasa/server.py add_message() hands any `text` to the NLU pipeline unchecked; "
        "RegexEntityExtractor fails on null or a number, and the failure is answered 500",
    ),
    "events-nested-too-deeply": (
        "POST", "/conversations/fuzz-known-bug/tracker/events",
        b'{"event": "user", "text": "hi", "x": ' + b"[" * 400 + b"]" * 400 + b"}",
        "rasa/server.py: an event nested a few hundred levels deep runs out of stack in "
        "Rasa's recursive code (printing a jsonschema error, storing the tracker): "
        "RecursionError, answered 500",
    ),
    "trigger-intent-entities-not-objects": (
        "POST", "/conversations/fuzz-known-bug/trigger_intent",
        b'{"name": "greet", "entities": ["order"]}',
        "rasa/core/processor.py trigger_external_user_uttered() takes a list of entities "
        "as it is and reads each as an object: TypeError, answered 500 ConversationError",
    ),
    "message-parse-data-unchecked": (
        "POST", "/conversations/fuzz-known-bug/messages",
        b'{"sender": "user", "text": "hi", "parse_data": {"name": "greet"}}',
        "rasa/core/processor.py _handle_message_with_tracker() indexes parse_data['intent'] "
        "and ['entities'] unchecked: KeyError, answered 500 ConversationError",
    ),
}  # fmt: skip

# Sanic 21.12 (sanic/errorpages.py exception_response) reads request.accept to choose
# an error page's format; parse_accept raises on a malformed Accept header, inside the
# error handler, and the 404 or 405 becomes "An error occurred while handling an
# error", 500. It hits every route's error pages; the channels' own refusals are
# responses, not raised errors, and were never affected.
SANIC_BAD_ACCEPT: List[Tuple[str, str, Dict[str, str]]] = [
    ("GET", "/no-such-route", {"Accept": "0"}),
    ("DELETE", "/webhooks/webchat/", {"Accept": "0"}),
    ("GET", "/no-such-route", {"Accept": "text/html;q=abc"}),
]
