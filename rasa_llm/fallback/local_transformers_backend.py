"""Generation in this process with a Hugging Face causal LM (default: SmolLM2-135M-Instruct).

The model is loaded once per process (:mod:`rasa_llm.fallback.loaded_model`) and answers on a
dedicated thread pool, so the event loop of the action server never blocks on torch.
Where the weights come from, and the one-time conversion of the packaged GGUF file into
a cached plain checkpoint, is :mod:`rasa_llm.fallback.model_source`.

Deadlines count from the call, queueing included. A request still queued at its
deadline never starts; a running generation is stopped by transformers' ``max_time``
and raises :class:`GenerationTimeout` rather than returning a truncated reply.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, List, Optional

import torch

from rasa_llm.errors import InvalidComponentConfigError, ModelLoadError
from rasa_llm.fallback.adapter import PACKAGED_ADAPTER
from rasa_llm.fallback.generation_backend import ChatMessage, GenerationError, GenerationTimeout
from rasa_llm.fallback.loaded_model import LoadedModel, clear_model_cache, load_shared
from rasa_llm.fallback.model_source import (
    CONVERSION_FORMAT_VERSION,
    CONVERSION_MARKER,
    DEFAULT_CACHE_DIR,
    DEFAULT_GGUF_FILE,
    DEFAULT_MODEL_PACKAGE,
    ModelSource,
)
from rasa_llm.fallback.refusal_gate import RefusalGate, first_token
from rasa_llm.models.device import resolve_device

# The model_source constants are re-exported: code that configures this backend
# imports them from here.
__all__ = [
    "COMPONENT",
    "CONVERSION_FORMAT_VERSION",
    "CONVERSION_MARKER",
    "DEFAULT_CACHE_DIR",
    "DEFAULT_GGUF_FILE",
    "DEFAULT_MODEL_PACKAGE",
    "QUANTIZE_MODES",
    "LocalTransformersBackend",
    "clear_model_cache",
]

logger = logging.getLogger(__name__)

COMPONENT = "generation"
# int8 made SmolLM2's replies clearly worse in our measurements (an invented URL, off-
# topic legal talk) for about 1.7x the speed, so there is no "auto": int8 is opt-in.
QUANTIZE_MODES = ("none", "int8")
# max_time stops a running generation at the deadline; the event-loop backstop waits
# a little longer so that the worker, which knows why it stopped, reports it.
_BACKSTOP_GRACE_S = 0.2


class LocalTransformersBackend:
    """A chat model run in this process with transformers, greedy by default."""

    def __init__(
        self,
        *,
        model: Optional[str],
        gguf_file: Optional[str],
        cache_dir: Optional[str],
        device: str,
        cpu_threads: Optional[int],
        max_concurrent: int,
        quantize: str,
        repetition_penalty: float,
        adapter: Optional[str] = None,
        refusal_min_probability: Optional[float] = None,
        refusal_text: Optional[str] = None,
    ) -> None:
        """Arguments are the ``local`` section of the generation config (see backend_factory).

        Nothing is loaded here; :meth:`warm_up` or the first :meth:`generate` loads.
        ``refusal_text`` is the reply the prompt asks for when its passages do not answer
        (the fallback's :data:`~rasa_llm.fallback.prompt_builder.REFUSAL`); with
        ``refusal_min_probability`` the model may start that reply only when it gives the
        reply's first token at least that probability (:mod:`~rasa_llm.fallback.refusal_gate`).
        """
        if quantize not in QUANTIZE_MODES:
            raise InvalidComponentConfigError(
                COMPONENT, "local.quantize", f"is {quantize!r}", "use 'none' or 'int8'."
            )
        self._device = resolve_device(COMPONENT, device)
        if quantize == "int8" and self._device.type != "cpu":
            raise InvalidComponentConfigError(
                COMPONENT,
                "local.quantize",
                f"is 'int8' but the model runs on {self._device}; int8 runs on the CPU only",
                "set quantize to 'none', or device to 'cpu'.",
            )
        self._source = ModelSource.resolve(model, gguf_file)
        self._adapter = _adapter_path(adapter, model)
        self._cache_dir = Path(cache_dir or DEFAULT_CACHE_DIR).expanduser()
        # torch.set_num_threads is process-wide: it also bounds any other torch work in
        # the action server. That is intended: the generation model is the only heavy
        # torch user there. Half the cores by default, because torch's threads spin
        # while they wait: on 2 cores shared with another busy process, 2 threads made
        # SmolLM2 about 5x slower (2.5 tokens/s) than 1 thread (14 tokens/s), and when
        # the machine was idle 2 threads gained nothing for fp32 (15 tokens/s each).
        cores = os.cpu_count() or 1
        wanted = cpu_threads if cpu_threads is not None else cores // 2
        self._cpu_threads = max(1, min(wanted, cores))
        self._quantize = quantize
        self._repetition_penalty = float(repetition_penalty)
        self._refusal_min_probability = refusal_min_probability
        self._refusal_text = refusal_text
        self.name = f"local:{self._source.name}" + (
            f"+{self._adapter.name}" if self._adapter else ""
        )
        # Requests beyond max_concurrent wait in the pool's queue, deadline running.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_concurrent,
            thread_name_prefix="rasa-llm-generate",
            initializer=self._bound_threads,
        )
        self._load_lock = threading.Lock()
        self._loaded: Optional[LoadedModel] = None
        self._load_error: Optional[ModelLoadError] = None
        self._closed = False

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory and ready to answer."""
        return self._loaded is not None

    def warm_up(self) -> None:
        """Load the model now (blocking); raises :class:`ModelLoadError` if it cannot."""
        self._ensure_loaded()

    async def generate(
        self, messages: List[ChatMessage], *, max_new_tokens: int, deadline_s: float
    ) -> str:
        """Reply to ``messages``; see :class:`GenerationBackend`."""
        enqueued = time.monotonic()
        deadline = enqueued + deadline_s
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if self._closed:
            raise GenerationError(f"{self.name}: the backend is closed")
        if deadline_s <= 0:
            raise GenerationTimeout(f"{self.name}: the deadline had passed; not started")
        future = self._executor.submit(
            self._generate_sync, list(messages), max_new_tokens, deadline, enqueued
        )
        try:
            # Cancelling the wrapped future also cancels a job still in the queue.
            return await asyncio.wait_for(
                asyncio.wrap_future(future),
                timeout=deadline - time.monotonic() + _BACKSTOP_GRACE_S,
            )
        except asyncio.TimeoutError as e:
            raise GenerationTimeout(
                f"{self.name}: no reply within the deadline of {deadline_s:.2f} s"
            ) from e

    def refusal_probability(self, messages: List[ChatMessage]) -> float:
        """The probability the model gives the refusal's first token as its reply's first.

        What the refusal gate (``refusal_min_probability``) compares, after the same
        repetition penalty; blocking, for benchmarks (``bench.refusal_probability``).
        """
        loaded = self._ensure_loaded()
        token = self._refusal_token(loaded)
        if token is None:
            raise ValueError(f"{self.name}: no refusal_text was given")
        encoded = loaded.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        config = self._greedy_config(
            loaded, max_new_tokens=1, output_scores=True, return_dict_in_generate=True
        )
        with torch.inference_mode():
            output = loaded.model.generate(
                input_ids=encoded["input_ids"].to(loaded.device),
                attention_mask=encoded["attention_mask"].to(loaded.device),
                generation_config=config,
            )
        return float(torch.softmax(output.scores[0][0].float(), dim=-1)[token])

    async def close(self) -> None:
        """Stop taking requests; a generation already running ends at its deadline."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _bound_threads(self) -> None:
        if self._device.type == "cpu":
            torch.set_num_threads(self._cpu_threads)

    def _ensure_loaded(self) -> LoadedModel:
        with self._load_lock:
            if self._loaded is not None:
                return self._loaded
            # A broken model fails once, loudly; later requests fail fast instead of
            # spending another 30 s each on the same broken files.
            if self._load_error is not None:
                raise self._load_error
            try:
                self._bound_threads()
                self._loaded = load_shared(
                    self._source,
                    self._cache_dir,
                    self._device,
                    self._quantize,
                    adapter=self._adapter,
                )
            except ModelLoadError as e:
                self._load_error = e
                raise
            except Exception as e:  # e.g. out of memory while moving to the GPU
                self._load_error = ModelLoadError(
                    self._source.path,
                    f"loading failed ({type(e).__name__})",
                    "check the device has memory for the model, or set local.device to 'cpu'",
                )
                raise self._load_error from e
            return self._loaded

    def _generate_sync(
        self, messages: List[ChatMessage], max_new_tokens: int, deadline: float, enqueued: float
    ) -> str:
        started = time.monotonic()
        if started >= deadline:
            raise GenerationTimeout(
                f"{self.name}: queued {started - enqueued:.2f} s, past the deadline; not started"
            )
        try:
            loaded = self._ensure_loaded()
        except ModelLoadError as e:
            raise GenerationError(f"{self.name}: the model could not be loaded: {e}") from e
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GenerationTimeout(f"{self.name}: loading the model used up the deadline")
        try:
            encoded = loaded.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        except Exception as e:  # jinja and tokenizer errors have many types
            raise GenerationError(
                f"{self.name}: the chat template failed ({type(e).__name__})"
            ) from e
        input_ids = encoded["input_ids"].to(loaded.device)
        prompt_tokens = int(input_ids.shape[1])
        if loaded.max_positions and prompt_tokens + max_new_tokens > loaded.max_positions:
            raise GenerationError(
                f"{self.name}: a prompt of {prompt_tokens} tokens plus {max_new_tokens} new "
                f"tokens exceeds the model's {loaded.max_positions} positions"
            )
        new_tokens = self._run_model(loaded, input_ids, encoded, max_new_tokens, remaining)
        finished_at = time.monotonic()
        stop = next((i for i, t in enumerate(new_tokens) if t in loaded.stop_ids), None)
        complete = stop is not None or len(new_tokens) >= max_new_tokens
        logger.debug(
            "generation %s: prompt_tokens=%d new_tokens=%d queued_s=%.2f generate_s=%.2f "
            "complete=%s",
            self.name,
            prompt_tokens,
            len(new_tokens),
            started - enqueued,
            finished_at - started,
            complete,
        )
        # Neither an end of turn nor the token limit: max_time cut it off mid-reply.
        if not complete or finished_at > deadline:
            raise GenerationTimeout(
                f"{self.name}: stopped at the deadline after {len(new_tokens)} new tokens"
            )
        text = loaded.tokenizer.decode(new_tokens[:stop], skip_special_tokens=True).strip()
        if not text:
            raise GenerationError(f"{self.name}: the model's reply was empty")
        return str(text)

    def _run_model(
        self,
        loaded: LoadedModel,
        input_ids: torch.Tensor,
        encoded: Any,
        max_new_tokens: int,
        remaining: float,
    ) -> List[int]:
        from transformers import LogitsProcessorList

        config = self._greedy_config(loaded, max_new_tokens=max_new_tokens, max_time=remaining)
        attention_mask = encoded.get("attention_mask")
        processors = LogitsProcessorList()
        refusal_token = self._refusal_token(loaded)
        if refusal_token is not None and self._refusal_min_probability is not None:
            processors.append(
                RefusalGate(refusal_token, self._refusal_min_probability, input_ids.shape[1])
            )
        try:
            with torch.inference_mode():
                output = loaded.model.generate(
                    input_ids=input_ids,
                    attention_mask=None
                    if attention_mask is None
                    else attention_mask.to(loaded.device),
                    generation_config=config,
                    logits_processor=processors,
                )
        except Exception as e:  # out of memory, CUDA errors, broken weights
            raise GenerationError(f"{self.name}: generation failed ({type(e).__name__})") from e
        return [int(t) for t in output[0, input_ids.shape[1] :].tolist()]

    def _greedy_config(self, loaded: LoadedModel, **settings: Any) -> Any:
        """Greedy decoding with this backend's penalty and the model's end-of-turn tokens.

        A fresh config, not the model's: a checkpoint's own sampling defaults must not
        turn greedy replies into random ones.
        """
        from transformers import GenerationConfig

        return GenerationConfig(
            do_sample=False,
            num_beams=1,
            repetition_penalty=self._repetition_penalty,
            eos_token_id=sorted(loaded.stop_ids),
            pad_token_id=loaded.pad_id,
            bos_token_id=getattr(loaded.model.generation_config, "bos_token_id", None),
            **settings,
        )

    def _refusal_token(self, loaded: LoadedModel) -> Optional[int]:
        return first_token(loaded.tokenizer, self._refusal_text) if self._refusal_text else None


def _adapter_path(adapter: Optional[str], model: Optional[str]) -> Optional[Path]:
    """The adapter directory ``local.adapter`` names (see backend_factory), or None."""
    if adapter is None:
        return None
    if adapter == "auto":
        return PACKAGED_ADAPTER if model is None else None
    return Path(adapter).expanduser()
