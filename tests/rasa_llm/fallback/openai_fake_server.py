"""A real HTTP server on 127.0.0.1 that speaks OpenAI's chat completions wire format.

It checks requests the way vLLM or OpenAI do (401 for a wrong bearer key, 400 for a
body without ``model`` or ``messages``, 404 for a model it does not serve) and records
every call it did not expect, so a test fails when the client takes another path.
It runs its own event loop in a thread, so tests drive the client with asyncio.run.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from aiohttp import web

ROLES = ("system", "user", "assistant")


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: Dict[str, str]
    body: Any


@dataclass
class FakeOpenAIServer:
    """``with FakeOpenAIServer(api_key="sk-test") as server:`` then use ``server.base_url``."""

    api_key: Optional[str] = None
    served_model: str = "test-model"
    # What the next replies hold; tests change these between calls.
    reply: Optional[str] = "Your refund arrives within 5 business days."
    finish_reason: str = "stop"
    delay_s: float = 0.0
    status: Optional[int] = None  # answer every valid request with this error status
    error_body: Dict[str, Any] = field(default_factory=dict)
    raw_body: Optional[str] = None  # sent verbatim with status 200 (malformed replies)
    requests: List[RecordedRequest] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stopping: Optional[asyncio.Event] = None
        self._runner: Optional[web.AppRunner] = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, shutdown_timeout=1.0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        assert self._stopping is not None and self._runner is not None
        self._stopping.set()  # ends any delayed reply at once
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.headers), body)
        )
        if (request.method, request.path) != ("POST", "/v1/chat/completions"):
            self.unexpected.append(f"{request.method} {request.path}")
            return _error(404, f"Unknown route {request.method} {request.path}", "not_found")
        if self.api_key is not None and request.headers.get("Authorization") != (
            f"Bearer {self.api_key}"
        ):
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        problem = _request_problem(body)
        if problem:
            return _error(400, problem, "invalid_request_error")
        if body["model"] != self.served_model:
            return _error(404, f"The model {body['model']} does not exist.", "model_not_found")
        if self.delay_s:
            assert self._stopping is not None
            try:
                await asyncio.wait_for(self._stopping.wait(), self.delay_s)
            except asyncio.TimeoutError:
                pass
        if self.status is not None:
            return web.json_response(self.error_body, status=self.status)
        if self.raw_body is not None:
            return web.Response(text=self.raw_body, content_type="application/json")
        return web.json_response(self._completion(body))

    def _completion(self, body: Dict[str, Any]) -> Dict[str, Any]:
        reply = self.reply
        prompt_words = sum(len(m["content"].split()) for m in body["messages"])
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply},
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_words,
                "completion_tokens": len((reply or "").split()),
                "total_tokens": prompt_words + len((reply or "").split()),
            },
        }


def _request_problem(body: Any) -> Optional[str]:
    """What a real server would reject in a chat completions request, or None."""
    if not isinstance(body, dict):
        return "The body must be a JSON object."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "'model' is a required property."
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array."
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return "Each message needs a role of system, user or assistant."
        if not isinstance(message.get("content"), str):
            return "Each message needs a string content."
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        return "'max_tokens' must be a positive integer."
    temperature = body.get("temperature")
    if temperature is not None and not (
        isinstance(temperature, (int, float)) and 0 <= temperature <= 2
    ):
        return "'temperature' must be a number between 0 and 2."
    if body.get("stream"):
        return "This server does not stream."
    return None


def _error(status: int, message: str, code: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "invalid_request_error", "code": code}},
        status=status,
    )
