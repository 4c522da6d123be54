"""The first lines of every webhook: size, content type, encoding, and a clear 4xx.

A rejected request gets a short JSON reason and one log line with the channel, the
status and the reason: never the body, which holds customer text, nor a header, which
may hold a secret.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Iterable, Optional
from urllib.parse import parse_qs

from sanic.request import Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response

logger = logging.getLogger(__name__)

# Platforms send small webhooks (Slack and Telegram a few KiB, Twilio a form); anything
# much bigger is not theirs.
DEFAULT_MAX_BODY_BYTES = 256 * 1024


class WebhookRejected(Exception):
    """A request the channel refuses, with the status and a reason safe to log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def reject(channel: str, error: WebhookRejected) -> HTTPResponse:
    """Log and answer a refused request (with ``Retry-After`` when the error gives one)."""
    logger.warning("%s webhook: rejected with %d: %s", channel, error.status, error.reason)
    retry_after = getattr(error, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return json_response({"error": error.reason}, status=error.status, headers=headers)


def read_body(
    request: Request,
    *,
    content_types: Iterable[str],
    max_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> bytes:
    """The raw body, after the size and content-type checks."""
    body: bytes = request.body or b""
    declared = request.headers.get("content-length")
    if len(body) > max_bytes or (declared and declared.isdigit() and int(declared) > max_bytes):
        raise WebhookRejected(413, f"body larger than {max_bytes} bytes")
    wanted = tuple(content_types)
    media_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media_type not in wanted:
        raise WebhookRejected(
            415, f"content type {media_type or 'missing'!r}, expected {' or '.join(wanted)}"
        )
    return body


def decode_utf8(body: bytes) -> str:
    """``body`` as UTF-8 text, or a 400 naming the first byte that is not."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise WebhookRejected(400, f"body is not UTF-8 (byte {error.start})") from error


def load_json(text: str, *, what: str = "body") -> Any:
    """``text`` as JSON, or a 400 that says what is wrong (not what it held).

    ``json.loads`` fails in more ways than ``JSONDecodeError``: arrays nested a few
    thousand deep exhaust the recursion limit, and an integer of more than 4,300 digits
    is refused with a plain ValueError (Python's guard against slow int parsing). Both
    fit in a webhook's body; neither may become a 500.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise WebhookRejected(
            400, f"{what} is not valid JSON (line {error.lineno}, column {error.colno})"
        ) from error
    except RecursionError as error:
        raise WebhookRejected(400, f"{what} is JSON nested too deeply") from error
    except ValueError as error:
        raise WebhookRejected(400, f"{what} is JSON with a number too long to read") from error


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 that says what is wrong (not what it held)."""
    value = load_json(decode_utf8(body))
    if not isinstance(value, dict):
        raise WebhookRejected(400, f"body is JSON {type(value).__name__}, expected an object")
    return value


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body; repeated keys keep the first value."""
    try:
        fields = parse_qs(decode_utf8(body), keep_blank_values=True, strict_parsing=bool(body))
    except ValueError as error:
        raise WebhookRejected(400, "body is not a valid form") from error
    return {key: values[0] for key, values in fields.items()}


def require(fields: dict[str, Any], *names: str, where: Optional[str] = None) -> None:
    """A 400 naming each of ``names`` missing or empty in ``fields`` (``where``: in what)."""
    missing = [name for name in names if fields.get(name) in (None, "")]
    if missing:
        place = f" in {where}" if where else ""
        raise WebhookRejected(400, f"missing field(s){place}: {', '.join(missing)}")
