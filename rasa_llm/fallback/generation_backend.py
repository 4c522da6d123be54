"""What every generation backend offers: chat messages in, one reply text out.

Backends: :mod:`rasa_llm.fallback.local_transformers_backend` (default, in-process) and
:mod:`rasa_llm.fallback.openai_compatible_backend` (vLLM, TGI, llama.cpp server,
Ollama). :func:`rasa_llm.fallback.backend_factory.create_backend` picks one from config.
"""

from __future__ import annotations

from typing import List, Literal, Protocol, TypedDict

from rasa_llm.errors import RasaLLMError


class ChatMessage(TypedDict):
    """One chat turn in the OpenAI wire format."""

    role: Literal["system", "user", "assistant"]
    content: str


class GenerationError(RasaLLMError):
    """The backend could not produce a reply (model error, bad answer, server down)."""


class GenerationTimeout(GenerationError):
    """The reply was not ready before the deadline."""


class GenerationBackend(Protocol):
    """A language model that turns chat messages into one reply."""

    # Short name for logs and benchmarks, e.g. "local:SmolLM2-135M-Instruct".
    name: str

    async def generate(
        self, messages: List[ChatMessage], *, max_new_tokens: int, deadline_s: float
    ) -> str:
        """Return the reply text (stripped), or raise GenerationError/GenerationTimeout.

        ``deadline_s`` counts from the call, queueing included: a reply that cannot be
        finished by then raises :class:`GenerationTimeout` and is never half-sent.
        """
        ...

    async def close(self) -> None:
        """Release connections or threads; the backend is not used afterwards."""
        ...
