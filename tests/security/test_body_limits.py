"""Finding 5: request size limits were checked after the body was in memory.

On the shipped assistant each route refuses a body larger than its own limit as soon
as the request's headers say so: the client announces a large body, sends a kilobyte,
and gets its 413 while the rest is still unsent (Sanic's default was to take in up to
100 MB first, and only then let a channel check the size).
"""

from __future__ import annotations

import socket
import time
from typing import Dict
from urllib.parse import urlsplit

import pytest

from tests.rasa_process import api_headers, rest_headers
from tests.security.conftest import Stack

ANNOUNCED = 50 * 1024 * 1024
ANSWER_WITHIN_S = 10.0


def announce_large_body(url: str, path: str, headers: Dict[str, str], chunked: bool) -> str:
    """Send the head of a large POST and one kilobyte of body; the answer's status line
    (read without sending the rest), or "" when none came in time."""
    parts = urlsplit(url)
    head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head += ["Transfer-Encoding: chunked"] if chunked else [f"Content-Length: {ANNOUNCED}"]
    with socket.create_connection((parts.hostname, parts.port), timeout=ANSWER_WITHIN_S) as conn:
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        started = time.monotonic()
        try:
            if chunked:
                # Chunks of 64 KiB until the server answers or 8 MiB have gone.
                chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
                conn.settimeout(0.05)
                for _ in range(128):
                    conn.sendall(chunk)
                    try:
                        return conn.recv(200).decode(errors="replace").split("\r\n")[0]
                    except TimeoutError:
                        continue
                conn.settimeout(ANSWER_WITHIN_S)
            else:
                conn.sendall(b"{" + b" " * 1023)
            while time.monotonic() - started < ANSWER_WITHIN_S:
                data = conn.recv(200)
                if data:
                    return data.decode(errors="replace").split("\r\n")[0]
        except (TimeoutError, ConnectionError):
            return ""
    return ""


ROUTES = [
    ("/webhooks/rest/webhook", "rest"),
    ("/webhooks/twilio/webhook", None),
    ("/webhooks/telegram/webhook", None),
    ("/webhooks/agent/handoffs", None),
    ("/model/parse", "api"),
    ("/conversations/rest:someone/tracker/events", "api"),
]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(("path", "credentials"), ROUTES)
def test_a_body_over_the_routes_limit_is_refused_before_it_is_read(
    stack: Stack, path: str, credentials: str, chunked: bool
):
    headers = {"rest": rest_headers(), "api": api_headers()}.get(credentials or "", {})
    status = announce_large_body(stack.rasa.url, path, headers, chunked)
    assert status.startswith("HTTP/1.1 413"), (path, status or "no answer in time")
    # The server is fine and answers the next request.
    assert stack.rasa.api("GET", "/status").status_code == 200
