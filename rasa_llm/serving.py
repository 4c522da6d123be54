"""The encoder as it answers messages: int8 ONNX Runtime on the CPU, as trained on a GPU.

``quantize: auto`` (the default) and ``int8`` serve the encoder on the CPU as a
per-channel dynamic-int8 ONNX Runtime graph (:mod:`rasa_llm.onnx_encoder_classifier`):
on Banking77's test set it is within 0.06 points of float32 and answers a message in
about a fifth of the time (docs/benchmarks.md, "Encoder serving on the CPU"). Torch's
own dynamic int8, which ``auto`` served before, lost 0.78 points there and was half as
fast as this, so it is gone. ``none`` serves the float32 torch model. A GPU gains
nothing from int8, so ``auto`` leaves GPU models alone. The graph is exported once, when
the model is trained, and stored in it; a model trained on a GPU or before graphs were
stored gets one when it is loaded.

A serving process also runs torch on one CPU thread (``RASA_LLM_TORCH_THREADS``): a
message is one short sequence, which a second thread barely speeds up, while several
Rasa workers on one host each running a thread per core fight over the cores. Two
torch processes with two threads each on two cores ran about ten times slower than
either alone (measured here, 2026-12-02). ONNX Runtime gets as many threads as torch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch

from rasa_llm.encoder_classifier import EncoderClassifier
from rasa_llm.errors import InvalidComponentConfigError, RasaLLMError
from rasa_llm.onnx_encoder_classifier import (
    GRAPH_FILE,
    OnnxEncoderClassifier,
    OnnxServingError,
    export_int8_graph,
)

logger = logging.getLogger(__name__)

QUANTIZE_MODES = ("auto", "int8", "none")
# The classifier meta's calibration for its int8 graph: {"temperature", "oos_threshold"}
# fitted on the logits the graph gives. The top-level "temperature" and
# "oos_threshold" are the float32 model's.
INT8_META = "int8"
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


Served = Union[EncoderClassifier, OnnxEncoderClassifier]


def uses_graph(device: torch.device, mode: str) -> bool:
    """Whether ``mode`` on ``device`` answers with the int8 ONNX Runtime graph."""
    return mode != "none" and device.type == "cpu"


def serving_model(
    model: EncoderClassifier,
    device: torch.device,
    mode: str,
    graph: Optional[bytes] = None,
    component: str = "the encoder",
) -> Served:
    """The model to answer messages with: ``model`` itself, or its int8 ONNX graph.

    ``graph`` is the one stored in the trained model; without it the encoder is
    exported now (a few seconds). If that fails, ``auto`` answers with the float32
    model and says so in the log, and ``int8`` fails with the fix.
    """
    if not uses_graph(device, mode):
        return model
    try:
        if graph is None:
            graph = export_int8_graph(model)
        return OnnxEncoderClassifier(graph, model.head, torch.get_num_threads())
    except OnnxServingError as e:
        if mode == "int8":
            raise
        logger.warning("%s answers in float32 (quantize: auto): %s", component, e)
        return model


def stored_graph(directory: Path) -> Optional[bytes]:
    """The int8 graph a trained component's directory holds, if it holds one."""
    path = Path(directory) / GRAPH_FILE
    return path.read_bytes() if path.is_file() else None


def store_graph(directory: Path, served: Served) -> None:
    """Keep ``served``'s int8 graph in the component's directory, so loads skip the export."""
    if isinstance(served, OnnxEncoderClassifier):
        (Path(directory) / GRAPH_FILE).write_bytes(served.graph)


def served_temperature(meta: Mapping[str, Any], served: Served) -> float:
    """The temperature fitted on the logits of what answers: the int8 graph or float32.

    A classifier without an int8 calibration (trained before it was stored) answers
    with its one temperature, as it did.
    """
    if isinstance(served, OnnxEncoderClassifier) and INT8_META in meta:
        return float(meta[INT8_META]["temperature"])
    return float(meta.get("temperature", 1.0))


def served_threshold(meta: Mapping[str, Any], served: Served) -> Optional[float]:
    """The stored out-of-scope threshold for what answers (see :func:`served_temperature`)."""
    threshold = meta.get("oos_threshold")
    if isinstance(served, OnnxEncoderClassifier) and INT8_META in meta:
        threshold = meta[INT8_META].get("oos_threshold", threshold)
    return None if threshold is None else float(threshold)
