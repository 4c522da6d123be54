"""The encoder as it answers messages: int8 ONNX Runtime on the CPU, as trained on a GPU.

``quantize: auto`` (the default) and ``int8`` serve the encoder on the CPU as a
per-channel dynamic-int8 ONNX Runtime graph (:mod:`rasa_llm.models.onnx_encoder_classifier`):
on Banking77's test set it is within 0.06 points of float32 and answers a message in
about a fifth of the time (docs/benchmarks.md, "Encoder serving on the CPU"). Torch's
own dynamic int8, which ``auto`` served before, lost 0.78 points there and was half as
fast as this, so it is gone. ``none`` serves the float32 torch model. A GPU gains
nothing from int8, so ``auto`` leaves GPU models alone. The graph is exported once, when
the model is trained, and stored in it; a model trained on a GPU or before graphs were
stored gets one when it is loaded.

``auto`` serves the graph only if it changes almost no answers. Training measures how
often the graph's top label is the float32 model's on messages it did not train on
(``agreement`` in the model's int8 record), and ``auto`` answers in float32 below
``int8_min_agreement``: 0.99, at most one changed answer in a hundred. On Banking77's
test set, graphs of MiniLM models agreed on 99.1-99.3 % and lost 0.0 to 0.39 points;
graphs of all-mpnet-base-v2 models agreed on 94.0-97.4 % and lost 0.4 to 1.2 points, and
6 points of in-scope accuracy at an out-of-scope threshold
(docs/decisions/int8-agreement-check.md). A changed answer counts whether it is right or
wrong: a 10-shot MiniLM soup's graph agreed on 98.3 % and gained 0.2 points, and would
answer in float32. The share of changed answers needs no labels and varies less than an
accuracy difference, so a few hundred held-out messages can measure it where they could
not test a 0.3-point drop. Answering in float32 costs speed (about 13 ms a message
against 2.3 on one core), never accuracy.
``int8`` serves the graph anyway.

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
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from rasa_llm.errors import InvalidComponentConfigError, RasaLLMError
from rasa_llm.models.encoder_classifier import EncoderClassifier
from rasa_llm.models.onnx_encoder_classifier import (
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
# ``auto`` serves the graph when its top label was the float32 model's on at least this
# share of the texts training measured it on (see the module's docstring).
DEFAULT_MIN_AGREEMENT = 0.99
# Agreement is measured on held-out texts; with fewer than AGREEMENT_MIN_TEXTS of them
# (a bot's validation part is often ~100 messages) training texts are added, up to
# AGREEMENT_MAX_TEXTS in all. The float32 model fits those, so their figure is a
# little optimistic; the record says which texts it counted.
AGREEMENT_MIN_TEXTS = 200
AGREEMENT_MAX_TEXTS = 1000
# Before a graph answers, 16 sequences of random tokens go through it and through the
# float32 encoder; below this mean cosine between their sentence vectors the graph does
# not compute what the encoder does. Measured here: 0.99 for the bot's MiniLM graph,
# 0.82 for a sound all-mpnet-base-v2 graph (random tokens are far from its training
# data), 0.09 for that model's 8-bit graph on a CPU without VNNI, which answered
# Banking77 at chance. It catches graphs that are broken on the serving CPU or belong to
# other weights, and costs well under a second at load.
PROBE_MIN_COSINE = 0.5
PROBE_SHAPE = (16, 12)
THREADS_ENV = "RASA_LLM_TORCH_THREADS"
DEFAULT_SERVING_THREADS = 1


class ServingThreadsError(RasaLLMError):
    """``RASA_LLM_TORCH_THREADS`` is not a whole number of threads."""


def serving_threads(*, environ: Optional[Mapping[str, str]] = None) -> int:
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


def use_serving_threads(*, environ: Optional[Mapping[str, str]] = None) -> int:
    """Set torch's CPU threads (process-wide) for a process that answers messages."""
    threads = serving_threads(environ=environ)
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


def check_min_agreement(component: str, value: Any) -> None:
    """Reject an ``int8_min_agreement`` that is not a share in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidComponentConfigError(
            component,
            "int8_min_agreement",
            f"is {value!r}",
            f"give a share in [0, 1] (default {DEFAULT_MIN_AGREEMENT}); 0 serves the int8 "
            "graph whatever it changes, as quantize: int8 does.",
        )


Served = Union[EncoderClassifier, OnnxEncoderClassifier]


def agreement_texts(
    held_out: Sequence[str], training: Sequence[str], *, seed: int = 0
) -> Tuple[List[str], str]:
    """The texts to measure int8 agreement on, and what they are.

    The held-out texts, when there are at least ``AGREEMENT_MIN_TEXTS``; otherwise
    those and a seeded sample of the training texts, up to ``AGREEMENT_MAX_TEXTS``.
    """
    texts = list(held_out)
    if len(texts) >= AGREEMENT_MIN_TEXTS or not training:
        return texts, "validation"
    room = max(AGREEMENT_MAX_TEXTS - len(texts), 0)
    rng = np.random.default_rng(seed)
    picked = rng.permutation(len(training))[:room]
    texts += [training[i] for i in sorted(picked)]
    return texts, ("validation+training" if held_out else "training")


def agreement_record(
    float32_logits: np.ndarray, int8_logits: np.ndarray, measured_on: str
) -> Dict[str, Any]:
    """The int8 record's agreement: the share of texts whose top label int8 keeps."""
    same = float32_logits.argmax(axis=1) == int8_logits.argmax(axis=1)
    return {
        "agreement": float(same.mean()) if len(same) else None,
        "agreement_texts": int(len(same)),
        "agreement_measured_on": measured_on,
    }


def int8_refusal(meta: Mapping[str, Any], min_agreement: float) -> Optional[str]:
    """Why ``auto`` must not serve this model's int8 graph, or None when it may.

    Models without an agreement figure (trained before it was measured) are served in
    int8, as they were.
    """
    record = meta.get(INT8_META)
    if not isinstance(record, Mapping) or record.get("agreement") is None:
        return None
    agreement = record["agreement"]
    if float(agreement) >= min_agreement:
        return None
    return (
        f"its int8 graph kept the float32 model's top label on only {float(agreement):.1%} "
        f"of {record.get('agreement_texts', '?')} {record.get('agreement_measured_on', '')} "
        f"texts at training, below int8_min_agreement {min_agreement}; set quantize: int8 "
        "to serve the graph anyway (about five times as fast), or quantize: none to say so"
    )


def graph_cosine(
    model: EncoderClassifier, served: OnnxEncoderClassifier, *, seed: int = 0
) -> float:
    """Mean cosine of the float32 and graph sentence vectors of random token sequences."""
    config = getattr(model.encoder, "config", None)
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    if vocab < 2:
        return 1.0  # nothing to draw tokens from; the agreement record still holds
    generator = torch.Generator().manual_seed(seed)
    # The lowest ids are special tokens in BERT-like vocabularies.
    ids = torch.randint(vocab // 10, vocab, PROBE_SHAPE, generator=generator)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        expected = model(ids.to(model.head.weight.device), mask.to(model.head.weight.device))[0]
        got = served(ids, mask)[0]
    cosine = torch.nn.functional.cosine_similarity(expected.float().cpu(), got.float(), dim=1)
    return float(cosine.mean())


def uses_graph(device: torch.device, mode: str) -> bool:
    """Whether ``mode`` on ``device`` answers with the int8 ONNX Runtime graph."""
    return mode != "none" and device.type == "cpu"


def serving_model(
    model: EncoderClassifier,
    device: torch.device,
    mode: str,
    *,
    graph: Optional[bytes] = None,
    component: str = "the encoder",
    meta: Optional[Mapping[str, Any]] = None,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
) -> Served:
    """The model to answer messages with: ``model`` itself, or its int8 ONNX graph.

    ``graph`` is the one stored in the trained model; without it the encoder is
    exported now (a few seconds). If that fails, ``auto`` answers with the float32
    model and says so in the log, and ``int8`` fails with the fix. ``auto`` also
    answers in float32 when ``meta``'s int8 record shows the graph changed more
    answers than ``min_agreement`` allows (:func:`int8_refusal`), and both modes treat
    a graph whose sentence vectors do not match the float32 encoder's on random tokens
    (:func:`graph_cosine`) as one that cannot be served.
    """
    if not uses_graph(device, mode):
        return model
    refusal = int8_refusal(meta or {}, min_agreement) if mode == "auto" else None
    if refusal:
        logger.warning("%s answers in float32 (quantize: auto): %s", component, refusal)
        return model
    try:
        if graph is None:
            graph = export_int8_graph(model)
        served = OnnxEncoderClassifier(graph, model.head, torch.get_num_threads())
        cosine = graph_cosine(model, served)
        if cosine < PROBE_MIN_COSINE:
            raise OnnxServingError(
                f"the int8 graph does not compute what the float32 encoder does on this CPU "
                f"(mean cosine {cosine:.2f} of their sentence vectors on random tokens, "
                f"below {PROBE_MIN_COSINE}): a graph with 8-bit weights on a CPU without "
                f"VNNI, or one made for other weights. Fix: delete {GRAPH_FILE} from the "
                "model (it is exported again, with 7-bit weights) or run 'rasa train "
                "--force'; quantize: none serves float32"
            )
        return served
    except OnnxServingError as e:
        if mode == "int8":
            raise
        logger.warning("%s answers in float32 (quantize: auto): %s", component, e)
        return model


def stored_graph(directory: Path) -> Optional[bytes]:
    """The int8 graph a trained component's directory holds, if it holds one."""
    path = Path(directory) / GRAPH_FILE
    return path.read_bytes() if path.is_file() else None


def store_graph(directory: Path, served: Served, *, graph: Optional[bytes] = None) -> None:
    """Keep the int8 graph in the component's directory, so loads skip the export.

    ``served``'s graph, or ``graph`` when float32 answers (``auto`` refused the graph):
    its int8 calibration was fitted on that graph, which ``quantize: int8`` then serves.
    """
    if isinstance(served, OnnxEncoderClassifier):
        graph = served.graph
    if graph is not None:
        (Path(directory) / GRAPH_FILE).write_bytes(graph)


def served_temperature(meta: Mapping[str, Any], served: Served) -> float:
    """The temperature fitted on the logits of what answers: the int8 graph or float32.

    A classifier without an int8 calibration (trained before it was stored) answers
    with its one temperature, as it did.
    """
    temperature = meta.get("temperature", 1.0)
    if isinstance(served, OnnxEncoderClassifier) and INT8_META in meta:
        # Without validation texts the record holds only the agreement.
        temperature = meta[INT8_META].get("temperature", temperature)
    return float(temperature)


def served_threshold(meta: Mapping[str, Any], served: Served) -> Optional[float]:
    """The stored out-of-scope threshold for what answers (see :func:`served_temperature`)."""
    threshold = meta.get("oos_threshold")
    if isinstance(served, OnnxEncoderClassifier) and INT8_META in meta:
        threshold = meta[INT8_META].get("oos_threshold", threshold)
    return None if threshold is None else float(threshold)


def served_oos_score(meta: Mapping[str, Any], served: Served) -> Optional[Dict[str, Any]]:
    """The out-of-scope score record the served threshold applies to (None: softmax)."""
    record = meta.get("oos_score")
    if isinstance(served, OnnxEncoderClassifier) and INT8_META in meta:
        record = meta[INT8_META].get("oos_score", record)
    return None if not record else dict(record)
