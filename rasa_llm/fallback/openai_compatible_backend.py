"""Generation on any server that speaks OpenAI's chat completions wire format.

vLLM, TGI, the llama.cpp server and Ollama all answer ``POST {base_url}/chat/completions``
with the same JSON, so a larger model on a GPU server (or a hosted one) replaces the
in-process model by changing the config alone.

Error texts carry the HTTP status and the server's error code, never the body's text:
servers often quote the request, and the request holds the customer's words.

A reply cut off by ``max_tokens`` (``finish_reason: "length"``) is returned, as the
local backend returns one that reached ``max_new_tokens``: the reply guard judges its
length and content. It is logged by reason code, so operators can raise the limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any, Dict, List, Mapping, Optional
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from rasa_llm.fallback.generation_backend import ChatMessage, GenerationError, GenerationTimeout

logger = logging.getLogger(__name__)

# What a status means for the person reading the log, and what to check.
_STATUS_HINTS = {
    400: "the server rejected the request; check openai.model and the server's limits",
    401: "the API key was refused; check the variable named in openai.api_key_env",
    403: "the API key may not use this model; check the server's permissions",
    404: "no such endpoint or model; check that openai.base_url ends in /v1 and openai.model",
    429: "the server is rate limiting or full; add capacity or lower traffic",
}
# An OpenAI error "code" or "type" is an identifier such as "model_not_found"; anything
# else in the error object may quote the request and is not repeated.
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class OpenAICompatibleBackend:
    """Chat completions over HTTP, one ``aiohttp`` session per backend."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: Optional[str],
        temperature: float,
        extra_headers: Mapping[str, str],
    ) -> None:
        """Arguments are the ``openai`` section of the generation config, key resolved."""
        self.name = f"openai:{model}"
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model = model
        self._temperature = temperature
        self._headers = {"Content-Type": "application/json", **extra_headers}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        parts = urlsplit(self._url)
        # For logs and errors: no user:password@ and no query string.
        host = parts.netloc.rsplit("@", 1)[-1]
        self._where = urlunsplit((parts.scheme, host, parts.path, "", ""))
        if api_key and parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1"):
            logger.warning(
                "The generation API key is sent unencrypted to %s; use https.", self._where
            )
        self._session: Optional[aiohttp.ClientSession] = None
        self._session_loop: Optional[asyncio.AbstractEventLoop] = None
        self._closed = False

    async def generate(
        self, messages: List[ChatMessage], *, max_new_tokens: int, deadline_s: float
    ) -> str:
        """Reply to ``messages``; see :class:`GenerationBackend`."""
        if self._closed:
            raise GenerationError(f"{self.name}: the backend is closed")
        if deadline_s <= 0:
            raise GenerationTimeout(f"{self.name}: the deadline had passed; not sent")
        body = {
            "model": self._model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": max_new_tokens,
            "temperature": self._temperature,
            "stream": False,
        }
        try:
            # The client timeout ends the HTTP exchange; wait_for also bounds the
            # parsing and the session's start.
            status, text = await asyncio.wait_for(self._post(body, deadline_s), deadline_s)
        except asyncio.TimeoutError as e:
            logger.info("generation %s: reason=timeout deadline_s=%.2f", self.name, deadline_s)
            raise GenerationTimeout(
                f"{self.name}: no reply from {self._where} within {deadline_s:.2f} s"
            ) from e
        except aiohttp.ClientError as e:
            raise GenerationError(
                f"{self.name}: cannot reach {self._where} ({type(e).__name__})"
            ) from e
        if not 200 <= status < 300:
            raise GenerationError(self._status_error(status, text))
        return self._reply_text(text)

    async def close(self) -> None:
        """Close the HTTP session; the backend is not used afterwards."""
        self._closed = True
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def _post(self, body: Dict[str, Any], deadline_s: float) -> tuple[int, str]:
        session = self._session_for_this_loop()
        timeout = aiohttp.ClientTimeout(total=deadline_s)
        async with session.post(self._url, json=body, timeout=timeout) as response:
            return response.status, await response.text(errors="replace")

    def _session_for_this_loop(self) -> aiohttp.ClientSession:
        # Made lazily inside the running loop (a session is bound to the loop that
        # made it); a backend moved to a new loop gets a new session.
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session = aiohttp.ClientSession(headers=self._headers)
            self._session_loop = loop
        return self._session

    def _status_error(self, status: int, text: str) -> str:
        code = _error_code(text)
        hint = _STATUS_HINTS.get(status, "the server failed; check its logs")
        logger.info("generation %s: reason=http_status status=%d code=%s", self.name, status, code)
        return (
            f"{self.name}: {self._where} answered HTTP {status}"
            + (f" ({code})" if code else "")
            + f": {hint}"
        )

    def _reply_text(self, text: str) -> str:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise GenerationError(f"{self.name}: the reply is not JSON") from e
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise GenerationError(f"{self.name}: the reply has no choices")
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise GenerationError(f"{self.name}: the reply's first choice has no text content")
        content = content.strip()
        if not content:
            raise GenerationError(f"{self.name}: the reply was empty")
        if choices[0].get("finish_reason") == "length":
            logger.info(
                "generation %s: reason=finish_length reply_chars=%d", self.name, len(content)
            )
        return content


def _error_code(text: str) -> Optional[str]:
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict):
        return None
    for field in ("code", "type"):
        value = error.get(field)
        if isinstance(value, str) and _ERROR_CODE.match(value):
            return value
    return None
