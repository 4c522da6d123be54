"""The local generation model, loaded once per process and shared by every backend.

The action server may build several fallbacks (or rebuild one); each asks
:func:`load_shared` and they hold the weights once. Loading merges the adapter into the
float32 weights, then moves and (optionally) quantizes the model, and finds the tokens
that end a chat turn.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, FrozenSet, Optional, Tuple

import torch
from torch import nn

from rasa_llm.errors import ModelLoadError
from rasa_llm.fallback.adapter import merge_adapter
from rasa_llm.fallback.model_source import ModelSource

logger = logging.getLogger(__name__)

# Chat models end a turn with one of these even when the tokenizer names another EOS
# (SmolLM2's GGUF tokenizer calls <|im_start|> its EOS).
_END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>")


@dataclass
class LoadedModel:
    """A model ready to generate: moved, quantized, with its stop and padding tokens."""

    model: Any
    tokenizer: Any
    device: torch.device
    stop_ids: FrozenSet[int]
    pad_id: int
    max_positions: Optional[int]


# One loaded model per (source, device, quantize, adapter) for the whole process: the
# action server may build several fallbacks (or rebuild one) but holds the weights once.
_SHARED: Dict[Tuple[str, str, str, str], LoadedModel] = {}
_SHARED_LOCK = threading.Lock()


def clear_model_cache() -> None:
    """Forget every model loaded in this process (backends already loaded keep theirs)."""
    with _SHARED_LOCK:
        _SHARED.clear()


def load_shared(
    source: ModelSource,
    cache_dir: Path,
    device: torch.device,
    quantize: str,
    *,
    adapter: Optional[Path] = None,
) -> LoadedModel:
    """The model for this source, device, quantization and adapter, loaded once per process."""
    key = (str(source.path.resolve()), str(device), quantize, str(adapter))
    with _SHARED_LOCK:
        if key in _SHARED:
            return _SHARED[key]
        began = time.monotonic()
        model, tokenizer = source.load(cache_dir)
        if adapter is not None:
            # Before quantizing and moving: the update is added to the float32 weights.
            merge_adapter(model, adapter, source.name)
        loaded = _prepare(model, tokenizer, device, quantize, source.path)
        _SHARED[key] = loaded
        logger.info(
            "Loaded generation model %s%s on %s (quantize=%s) in %.1f s.",
            source.name,
            f" with adapter {adapter}" if adapter else "",
            device,
            quantize,
            time.monotonic() - began,
        )
        return loaded


def _prepare(
    model: Any, tokenizer: Any, device: torch.device, quantize: str, path: Path
) -> LoadedModel:
    if not getattr(tokenizer, "chat_template", None):
        raise ModelLoadError(
            path,
            "its tokenizer has no chat template, so chat messages cannot be turned into a prompt",
            "use an instruction-tuned chat model, or add a chat_template to its "
            "tokenizer_config.json",
        )
    model = model.to(device).eval()
    if quantize == "int8":
        with warnings.catch_warnings():
            # torch announces that eager-mode quantization moves to torchao; it still
            # works in every torch version pyproject.toml allows.
            warnings.simplefilter("ignore")
            model = torch.ao.quantization.quantize_dynamic(
                model, {nn.Linear}, dtype=torch.qint8, inplace=True
            )
    stop_ids = set()
    for ids in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if ids is not None:
            stop_ids.update(ids if isinstance(ids, list) else [ids])
    vocab = tokenizer.get_vocab()
    stop_ids.update(vocab[token] for token in _END_OF_TURN_TOKENS if token in vocab)
    if not stop_ids:
        raise ModelLoadError(
            path,
            "neither the tokenizer nor the generation config names an end-of-sequence token",
            "set eos_token in tokenizer_config.json",
        )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(stop_ids)
    max_positions = getattr(model.config, "max_position_embeddings", None)
    return LoadedModel(model, tokenizer, device, frozenset(stop_ids), pad_id, max_positions)
