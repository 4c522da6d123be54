"""Requests, checks and web chat conversations for tests/production/test_fuzz.py."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import parse_qs

import requests
import websockets
from websockets.exceptions import ConnectionClosed

from tests.production import fuzz_payloads as fz
from tests.production.fuzz_payloads import MARKER
from tests.rasa_process import RasaServer, api_headers, rest_headers


def send(
    http: requests.Session,
    server: RasaServer,
    method: str,
    path: str,
    body: Optional[bytes] = None,
    headers: Optional[Dict[str, str]] = None,
    *,
    api_token: bool = True,
) -> requests.Response:
    """One request; a call to Rasa's HTTP API (any path outside /webhooks/) carries the
    API token unless ``api_token`` is False or ``headers`` name an Authorization."""
    sent = dict(headers or {})
    if api_token and not path.startswith("/webhooks/") and "Authorization" not in sent:
        sent.update(api_headers())
    return http.request(method, server.url + path, data=body, headers=sent, timeout=60)


def say(http: requests.Session, server: RasaServer, sender: str, text: str) -> requests.Response:
    """A normal message through the REST channel (conversation ``rest:<sender>``)."""
    body = json.dumps({"sender": sender, "message": text}).encode()
    headers = {"Content-Type": fz.JSON, **rest_headers()}
    return send(http, server, "POST", "/webhooks/rest/webhook", body, headers)


def check(
    response: requests.Response,
    *,
    expect: Optional[int] = None,
    ours: bool = True,
    what: Any = None,
) -> None:
    """No 5xx; the status expected, when one is; our refusals never quote the body."""
    said = f"{response.request.method} {response.request.path_url} -> {response.status_code}"
    said += f" {response.text[:300]!r}; sent {str(what)[:400]!r}"
    assert response.status_code < 500, said
    if expect is not None:
        assert response.status_code == expect, said
    if ours and response.status_code >= 400:
        assert MARKER not in response.text, said


def precheck(
    body: bytes, content_type: Optional[str], allowed: Tuple[str, ...], limit: int
) -> Optional[int]:
    """The status of channels.webhook_guard's checks before any signature, or None."""
    if len(body) > limit:
        return 413
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in allowed:
        return 415
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return 400
    return None


class LogWatch:
    """The part of the server's log written since it was made."""

    def __init__(self, server: RasaServer) -> None:
        self.server = server
        self.start = len(server.log())

    def assert_clean(self) -> None:
        new = self.server.log()[self.start :]
        assert MARKER.lower() not in new.lower(), around(new, MARKER)


def around(log: str, needle: str) -> str:
    at = log.lower().find(needle.lower())
    return f"customer text in the server log: ...{log[max(0, at - 1500) : at + 300]}..."


def form_fields(body: bytes) -> Optional[Dict[str, str]]:
    """What the channel will read from ``body`` (the first of repeated keys), if a form."""
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        return None
    return {key: values[0] for key, values in parsed.items()}


def eventually(done: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.2)


async def webchat_say(url: str, text: str) -> str:
    """Say ``text`` in a new web chat session; its conversation id, once acknowledged."""
    async with websockets.connect(url, open_timeout=30) as ws:
        await ws.send(json.dumps({"type": "hello"}))
        session = json.loads(await asyncio.wait_for(ws.recv(), 30))
        await ws.send(json.dumps({"type": "message", "id": fz.unique("fail-"), "text": text}))
        while json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] != "ack":
            pass
        return f"webchat:{session['session_id']}"


def bot_spoke(http: requests.Session, server: RasaServer, conversation: str) -> bool:
    tracker = send(http, server, "GET", f"/conversations/{conversation}/tracker").json()
    return any(event["event"] == "bot" for event in tracker.get("events") or [])


# ------------------------------------------------------------------ web chat
# The close codes of channels/webchat_socket.py (1013: a new session over its rate), and the
# protocol's own for oversized frames.
CLOSE_CODES = {1007, 1008, 1009, 1013, 4401}


async def converse(url: str, hello: Tuple[str, Any], frames: Any) -> None:
    async def put(ws: Any, frame: Tuple[str, Any]) -> None:
        kind, data = frame
        if kind == "bad-utf8":
            await ws.write_frame(True, 0x1, data)
        else:
            await ws.send(data)

    async with websockets.connect(url, open_timeout=30, max_size=None) as ws:
        try:
            await put(ws, hello)
            first = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if first["type"] == "error":
                assert MARKER not in first["reason"]
                await asyncio.wait_for(ws.wait_closed(), 30)
                return
            assert first["type"] == "session", first
            for frame in frames:
                await put(ws, frame)
            # A frame the parser refuses by type: its answer shows the handler is alive.
            await ws.send(json.dumps({"type": "probe"}))
            while True:
                answer = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if answer["type"] == "error":
                    assert MARKER not in answer["reason"], answer
                    if answer["reason"] == "frame type must be 'hello' or 'message'":
                        return
        except ConnectionClosed:
            assert ws.close_code in CLOSE_CODES, (ws.close_code, ws.close_reason)
