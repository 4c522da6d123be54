"""The ways the encoder benchmark serves one trained intent classifier on the CPU.

Each :class:`Variant` is a text → logits function with what it cost to load: float32
torch (the reference), what ``quantize: auto`` serves (the stored int8 ONNX graph of
the encoder, the head in torch float32), torch's dynamic int8, and ONNX Runtime in
float32 and int8 with the head inside the graph. :func:`build_variants` loads them all
from a classifier directory, measuring each as it loads; the classifier can be taken
out of a Rasa model archive with :func:`extract_intent_classifier`.
"""

from __future__ import annotations

import copy
import functools
import gc
import io
import tarfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

INTENT_COMPONENT = "TransformerIntentClassifier"
REFERENCE = "torch_fp32"
# The project's own serving path, as `quantize: auto` runs it on the CPU.
SERVED = "rasa_llm_auto"
# Nodes of the exported graph that belong to the head: the project keeps the head in
# float32 so calibrated confidences keep their resolution (rasa_llm/models/serving.py), and
# ONNX Runtime's int8 is made to do the same so the two int8 variants differ only in
# the runtime.
HEAD_NODE_PREFIX = "/head/"

Predict = Callable[[str], np.ndarray]


@dataclass
class Variant:
    """One way of serving the model: a text → logits function and what it cost to load."""

    name: str
    predict: Predict
    load_seconds: float
    size_bytes: int
    rss_growth_mib: float
    notes: str = ""
    extra: Dict[str, float] = field(default_factory=dict)


def find_component_dir(names: Sequence[str], *, component: str = INTENT_COMPONENT) -> str:
    """The archive folder holding ``component``'s model (``components/train_...0/``)."""
    found = sorted(
        {
            name.lstrip("/").split("/")[1]
            for name in names
            if name.lstrip("/").startswith("components/")
            and len(name.lstrip("/").split("/")) > 2
            and component in name.lstrip("/").split("/")[1]
        }
    )
    if len(found) != 1:
        raise ValueError(
            f"expected one {component} in the model archive, found {found or 'none'}; "
            "train the bot (make train) with rasa_llm.TransformerIntentClassifier"
        )
    return f"components/{found[0]}"


def extract_intent_classifier(archive: Path, dest: Path) -> Path:
    """Copy the intent classifier's directory out of a Rasa model archive into ``dest``."""
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        folder = find_component_dir([m.name for m in members])
        wanted = [m for m in members if m.name.lstrip("/").startswith(folder + "/") and m.isfile()]
        for member in wanted:
            target = dest / member.name.lstrip("/")[len(folder) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
    return dest


def nodes_to_quantize(graph_nodes: Sequence[Any]) -> List[str]:
    """Every node of the exported graph but the head's (ONNX Runtime picks the weight
    MatMuls and embedding lookups among them).

    Listing what to quantize, not what to exclude: the quantizer rewrites the head's
    Gemm into a MatMul of another name before it reads an exclusion list.
    """
    return [node.name for node in graph_nodes if not node.name.startswith(HEAD_NODE_PREFIX)]


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def torch_variant(
    name: str, model: Any, tokenizer: Any, max_length: int, load_seconds: float
) -> Variant:
    import torch

    from rasa_llm.models.inference import predict

    device = torch.device("cpu")
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)  # int8 packed weights serialise as int8

    def run(text: str) -> np.ndarray:
        # The component's own inference path (tokenize → forward → numpy).
        return predict(model, tokenizer, [text], max_length, device)[1][0]

    return Variant(name, run, load_seconds, buffer.getbuffer().nbytes, 0.0)


def export_onnx(model: Any, tokenizer: Any, path: Path) -> float:
    """Export encoder + pooling + head to ONNX; return the seconds it took."""
    import torch

    sample = tokenizer(["where is my order", "hi"], padding=True, return_tensors="pt")
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript exporter (dynamo=False), not torch.export: with the onnx
        # that protobuf 4.23 (TensorFlow 2.12, Rasa's) allows, the dynamo graph fails
        # ONNX Runtime's shape inference in quantize_dynamic, and it exports 20x slower.
        torch.onnx.export(
            model.eval(),
            (sample["input_ids"], sample["attention_mask"]),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["pooled", "logits"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "pooled": {0: "batch"},
                "logits": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    return time.perf_counter() - started


def quantize_onnx(source: Path, target: Path, *, per_channel: bool = False) -> float:
    """ONNX Runtime's dynamic int8 of every weight MatMul but the head's."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    started = time.perf_counter()
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        nodes_to_quantize=nodes_to_quantize(onnx.load(str(source)).graph.node),
    )
    return time.perf_counter() - started


def onnx_variant(name: str, path: Path, model_dir: Path, max_length: int, threads: int) -> Variant:
    import onnxruntime as ort
    from transformers import AutoTokenizer

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir / "encoder"), local_files_only=True)
    options = ort.SessionOptions()
    # As many threads as torch uses, so the runtimes get the same cores.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # ONNX Runtime's threads spin after each run by default; interleaved with torch,
    # that spinning would eat the cores the next variant's message needs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    load_seconds = time.perf_counter() - started

    def run(text: str) -> np.ndarray:
        batch = tokenizer([text], truncation=True, max_length=max_length, return_tensors="np")
        feed = {
            "input_ids": batch["input_ids"].astype(np.int64),
            "attention_mask": batch["attention_mask"].astype(np.int64),
        }
        return np.asarray(session.run(["logits"], feed)[0][0])

    return Variant(name, run, load_seconds, path.stat().st_size, 0.0)


def torch_int8(model: Any, *, per_channel: bool = False) -> Any:
    """Torch's dynamic int8 of the encoder's linear layers, the head left float32: what
    ``quantize: auto`` served until 2026-12-02, with one weight scale per matrix, or
    with one per output channel."""
    import torch
    from torch import nn

    served = copy.deepcopy(model).eval()
    qconfig = (
        torch.ao.quantization.per_channel_dynamic_qconfig
        if per_channel
        else torch.ao.quantization.default_dynamic_qconfig
    )
    with warnings.catch_warnings():
        # torch announces that eager-mode quantization moves to torchao.
        warnings.simplefilter("ignore")
        served.encoder = torch.ao.quantization.quantize_dynamic(
            served.encoder, {nn.Linear: qconfig}
        )
    return served


def build_variants(
    model_dir: Path, workdir: Path, with_onnx: bool, *, per_channel: bool = False
) -> Tuple[List[Variant], Dict]:
    """Load every variant of the classifier in ``model_dir``, measuring each as it loads.

    ``per_channel`` adds int8 variants with a scale per output channel instead of one
    per weight matrix (torch and ONNX Runtime): candidates if per-tensor int8 costs
    more accuracy than the rule allows.
    """
    import torch

    from rasa_llm.models.model_files import load_classifier
    from rasa_llm.models.onnx_encoder_classifier import export_int8_graph
    from rasa_llm.models.serving import serving_model

    info: Dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    variants: List[Variant] = []

    def measured(make: Callable[[], Variant]) -> None:
        gc.collect()
        before = rss_mib()
        variant = make()
        variant.predict("warm up once so lazily allocated buffers count")
        gc.collect()
        variant.rss_growth_mib = rss_mib() - before
        variants.append(variant)

    state: Dict[str, Any] = {}

    def fp32() -> Variant:
        started = time.perf_counter()
        model, tokenizer, meta = load_classifier(model_dir, 0.1)
        seconds = time.perf_counter() - started
        state.update(model=model, tokenizer=tokenizer, meta=meta)
        max_length = int(meta.get("max_length", 64))
        variant = torch_variant(REFERENCE, model, tokenizer, max_length, seconds)
        variant.size_bytes = sum(
            p.stat().st_size for p in model_dir.rglob("*.safetensors")
        )  # what the model directory holds on disk
        return variant

    def served() -> Variant:
        # What `quantize: auto` answers with on the CPU (rasa_llm.models.serving). The export
        # and quantization happen once, at `rasa train`; a server's load reads the
        # stored graph, so its load time is the float32 load plus the session.
        started = time.perf_counter()
        graph = export_int8_graph(state["model"])
        export_seconds = time.perf_counter() - started
        started = time.perf_counter()
        model = serving_model(state["model"], torch.device("cpu"), "int8", graph=graph)
        seconds = time.perf_counter() - started
        max_length = int(state["meta"].get("max_length", 64))
        variant = torch_variant(
            SERVED, model, state["tokenizer"], max_length, variants[0].load_seconds + seconds
        )
        variant.size_bytes = len(graph)
        variant.extra["export_and_quantize_seconds"] = export_seconds
        return variant

    def int8() -> Variant:
        # Quantized from the loaded float32 model, as the component did at its first
        # message; its load time is the float32 load plus the quantization.
        started = time.perf_counter()
        served = torch_int8(state["model"])
        seconds = time.perf_counter() - started
        max_length = int(state["meta"].get("max_length", 64))
        variant = torch_variant(
            "torch_int8", served, state["tokenizer"], max_length, variants[0].load_seconds + seconds
        )
        variant.extra["quantize_seconds"] = seconds
        return variant

    def int8_per_channel() -> Variant:
        started = time.perf_counter()
        served = torch_int8(state["model"], per_channel=True)
        seconds = time.perf_counter() - started
        max_length = int(state["meta"].get("max_length", 64))
        variant = torch_variant(
            "torch_int8_per_channel",
            served,
            state["tokenizer"],
            max_length,
            variants[0].load_seconds + seconds,
        )
        variant.extra["quantize_seconds"] = seconds
        return variant

    measured(fp32)
    if with_onnx:
        measured(served)
    measured(int8)
    if per_channel:
        measured(int8_per_channel)
    info["labels"] = list(state["meta"]["labels"])
    info["max_length"] = int(state["meta"].get("max_length", 64))
    info["temperature"] = float(state["meta"].get("temperature", 1.0))
    # `python -m training` stores the int8 graph's own temperature (since 2026-12-03).
    int8 = state["meta"].get("int8") or {}
    info["own_temperatures"] = {SERVED: float(int8["temperature"])} if int8 else {}
    if with_onnx:
        fp32_path, int8_path = workdir / "model.onnx", workdir / "model.int8.onnx"
        info["onnx_export_seconds"] = export_onnx(state["model"], state["tokenizer"], fp32_path)
        info["onnx_quantize_seconds"] = quantize_onnx(fp32_path, int8_path)
        onnx_files = [("onnx_fp32", fp32_path), ("onnx_int8", int8_path)]
        if per_channel:
            channel_path = workdir / "model.int8-per-channel.onnx"
            quantize_onnx(fp32_path, channel_path, per_channel=True)
            onnx_files.append(("onnx_int8_per_channel", channel_path))
        threads, max_length = int(info["torch_threads"]), int(info["max_length"])
        for name, path in onnx_files:
            measured(functools.partial(onnx_variant, name, path, model_dir, max_length, threads))
    return variants, info
