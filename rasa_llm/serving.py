"""The encoder as it answers messages: int8 on the CPU, as trained on a GPU.

Dynamic int8 quantization of the encoder's linear layers (weights stored as int8,
activations quantized per batch) makes a CPU forward pass about twice as fast as
float32 for MiniLM. It is not free: on the bot's held-out tests it changed no
prediction, but on Banking77's 3,080 test messages it cost 0.78 points of accuracy
(docs/benchmarks.md, "Encoder serving on the CPU"; `quantize: none` avoids it). The
head stays float32 so that calibrated confidences keep
their resolution. A GPU gains nothing from it, so ``auto`` leaves GPU models alone.

A serving process also runs torch on one CPU thread (``RASA_LLM_TORCH_THREADS``): a
message is one short sequence, which a second thread barely speeds up, while several
Rasa workers on one host each running a thread per core fight over the cores. Two
torch processes with two threads each on two cores ran about ten times slower than
either alone (measured here, 2026-12-02).
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import Mapping, Optional

import torch
from torch import nn

from rasa_llm.encoder_classifier import EncoderClassifier
from rasa_llm.errors import InvalidComponentConfigError, RasaLLMError

QUANTIZE_MODES = ("auto", "int8", "none")
THREADS_ENV = "RASA_LLM_TORCH_THREADS"
DEFAULT_SERVING_THREADS = 1


class ServingThreadsError(RasaLLMError):
    """``RASA_LLM_TORCH_THREADS`` is not a whole number of threads."""


def serving_threads(environ: Optional[Mapping[str, str]] = None) -> int:
    """The CPU threads torch answers messages with: ``RASA_LLM_TORCH_THREADS``, else 1."""
    raw = (environ if environ is not None else os.environ).get(THREADS_ENV, "").strip()
    if not raw:
        return DEFAULT_SERVING_THREADS
    if not raw.isdigit() or int(raw) < 1:
        raise ServingThreadsError(
            f"{THREADS_ENV}={raw!r} is not a whole number of at least 1; unset it for "
            f"{DEFAULT_SERVING_THREADS} thread per Rasa worker (several workers share the "
            f"cores), or give e.g. 4 for a single worker on a machine of its own"
        )
    return int(raw)


def use_serving_threads(environ: Optional[Mapping[str, str]] = None) -> int:
    """Set torch's CPU threads (process-wide) for a process that answers messages."""
    threads = serving_threads(environ)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def check_quantize(component: str, mode: str, device: torch.device) -> None:
    """Reject a mode that is unknown or cannot run on ``device``."""
    if mode not in QUANTIZE_MODES:
        raise InvalidComponentConfigError(
            component,
            "quantize",
            f"is {mode!r}",
            f"use one of {', '.join(repr(m) for m in QUANTIZE_MODES)}.",
        )
    if mode == "int8" and device.type != "cpu":
        raise InvalidComponentConfigError(
            component,
            "quantize",
            f"is 'int8' but the model runs on {device}; int8 serving runs on the CPU only",
            "set quantize to 'auto' (int8 on the CPU, unchanged on a GPU) or 'none'.",
        )


def serving_model(model: EncoderClassifier, device: torch.device, mode: str) -> EncoderClassifier:
    """The model to answer messages with: ``model`` itself, or an int8 copy of it."""
    if mode == "none" or device.type != "cpu":
        return model
    served = copy.deepcopy(model).eval()
    with warnings.catch_warnings():
        # torch announces that eager-mode quantization moves to torchao; it still
        # works in the torch versions pyproject.toml allows, and torchao is not
        # installable for every Python 3.10 platform torch supports.
        warnings.simplefilter("ignore")
        served.encoder = torch.ao.quantization.quantize_dynamic(
            served.encoder, {nn.Linear}, dtype=torch.qint8
        )
    return served
