"""Serving the intent encoder on the CPU: float32 torch, what ``quantize: auto`` serves
(rasa_llm.models.serving: a per-channel int8 ONNX Runtime graph of the encoder, the head in
torch float32), torch's dynamic int8 (the default until 2026-12-02), and ONNX Runtime
in float32 and int8 with the head inside the graph, for one trained model, in one
process, on the same messages.

    .venv/bin/python -m bench.encoder_serving [--data ../shared/data] [--out bench/results]

Two models and held-out sets: the bot's own intent classifier (taken out of
bot/models/customer-service.tar.gz) on bot/tests/nlu_test.yml, and a Banking77
classifier on Banking77's 3,080 test rows, because a few hundred messages cannot
resolve the 0.3-point accuracy rule of issue 7. The Banking77 model is trained with
`python -m training intent` for --train-epochs epochs when --banking77-model does not
exist yet: the figures compare serving variants of one model, not recipes.

Every message goes to every variant in turn, one message at a time (batch of 1, as
the server parses), with the variant that goes first rotating, so machine load falls
on all of them alike, on as many threads as `rasa run` gives torch
(RASA_LLM_TORCH_THREADS, default 1; ONNX Runtime gets the same number). Each call
is timed from the text to the logits (tokenizer included). Accuracy and agreement
with float32 come from the same calls. ONNX Runtime and onnx are dependencies of
rasa-llm; where they are missing only the torch variants run.
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BOT_ARCHIVE = ROOT / "bot" / "models" / "customer-service.tar.gz"
BOT_TEST = ROOT / "bot" / "tests" / "nlu_test.yml"
INTENT_COMPONENT = "TransformerIntentClassifier"
REFERENCE = "torch_fp32"
# The project's own serving path, as `quantize: auto` runs it on the CPU.
SERVED = "rasa_llm_auto"
# Nodes of the exported graph that belong to the head: the project keeps the head in
# float32 so calibrated confidences keep their resolution (rasa_llm/models/serving.py), and
# ONNX Runtime's int8 is made to do the same so the two int8 variants differ only in
# the runtime.
HEAD_NODE_PREFIX = "/head/"
ENV = {
    **os.environ,
    "RASA_TELEMETRY_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}

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


# ----------------------------------------------------------------------- pure helpers
def rotation(names: Sequence[str], i: int) -> List[str]:
    """The order for message ``i``: each variant goes first as often as the others."""
    if not names:
        return []
    k = i % len(names)
    return list(names[k:]) + list(names[:k])


def latency_summary(ms: Sequence[float]) -> Dict[str, float]:
    values = np.asarray(ms, dtype=np.float64)
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "mean_ms": float(values.mean()),
        # A process stopped or starved mid-call shows here (and in the mean), not at p95.
        "max_ms": float(values.max()),
    }


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs.

    Paired, because both variants answer the same messages: only the messages on which
    they disagree carry information about which is more accurate.
    """
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_difference_ci(b: int, c: int, n: int, *, z: float = 1.96) -> Tuple[float, float]:
    """95 % interval, in points, of accuracy(variant) − accuracy(reference) on ``n`` pairs.

    ``b``: reference right, variant wrong; ``c``: reference wrong, variant right. The
    usual normal interval for a difference of paired proportions.
    """
    if n == 0:
        return (0.0, 0.0)
    diff = (c - b) / n
    var = ((b + c) / n - diff**2) / n
    half = z * math.sqrt(max(var, 0.0))
    return (100 * (diff - half), 100 * (diff + half))


def compare_predictions(
    gold: Sequence[str], predictions: Mapping[str, Sequence[str]], *, reference: str = REFERENCE
) -> Dict[str, Dict[str, Any]]:
    """Accuracy, its change in points against ``reference``, and agreement with it."""
    truth = np.asarray(gold)
    ref = np.asarray(predictions[reference])
    ref_right = ref == truth
    rows: Dict[str, Dict[str, Any]] = {}
    for name, predicted in predictions.items():
        pred = np.asarray(predicted)
        right = pred == truth
        b = int(np.sum(ref_right & ~right))
        c = int(np.sum(~ref_right & right))
        low, high = paired_difference_ci(b, c, len(truth))
        rows[name] = {
            "accuracy": float(right.mean()),
            "delta_points": float(100 * (right.mean() - ref_right.mean())),
            "delta_points_ci95": [low, high],
            "agreement_with_reference": float(np.mean(pred == ref)),
            "reference_right_variant_wrong": b,
            "reference_wrong_variant_right": c,
            "mcnemar_p": mcnemar_exact_p(b, c),
        }
    return rows


def ratios(
    rows: Dict[str, Dict[str, Any]], keys: Sequence[str], *, reference: str = REFERENCE
) -> None:
    """Add ``<key>_ratio`` (variant ÷ reference) to every row, in place."""
    for row in rows.values():
        for key in keys:
            base = rows[reference].get(key)
            if base and key in row:
                row[f"{key}_ratio"] = row[key] / base


def adopt(delta_points: float, *, max_drop_points: float = 0.3) -> bool:
    """Issue 7's rule: adopt by default if accuracy drops by no more than 0.3 points."""
    return delta_points >= -max_drop_points - 1e-9


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


def markdown_table(result: Dict[str, Any]) -> str:
    """The table docs/benchmarks.md shows for one data set."""
    rows = result["variants"]
    lines = [
        "| variant | p50 ms | p95 ms | p50 ratio | p95 ratio | load s | size MB | "
        "RSS growth MiB | accuracy | Δ points (95 % CI) | agreement | ECE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for name, row in rows.items():
        low, high = row["delta_points_ci95"]
        ece = f"{row['ece']:.4f}" if "ece" in row else ""
        lines.append(
            f"| {name} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} "
            f"| {row.get('p50_ms_ratio', 1.0):.2f} | {row.get('p95_ms_ratio', 1.0):.2f} "
            f"| {row['load_seconds']:.2f} | {row['size_bytes'] / 1e6:.1f} "
            f"| {row['rss_growth_mib']:.0f} | {100 * row['accuracy']:.2f} "
            f"| {row['delta_points']:+.2f} ({low:+.2f}, {high:+.2f}) "
            f"| {100 * row['agreement_with_reference']:.2f} % | {ece} |"
        )
    return "\n".join(lines)


# -------------------------------------------------------------------- machine state
def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_for_quiet(max_load: float, patience_s: float) -> Tuple[float, float, float]:
    """Wait (up to ``patience_s``) for the 1-minute load average to fall below ``max_load``.

    The cores are shared with other work; timing under a heavy neighbour slows every
    variant alike (they interleave) but widens the spread, so a quieter start is better.
    """
    deadline = time.monotonic() + patience_s
    while os.getloadavg()[0] > max_load and time.monotonic() < deadline:
        print(f"load {os.getloadavg()[0]:.2f} > {max_load}: waiting", flush=True)
        time.sleep(30)
    return os.getloadavg()


# ------------------------------------------------------------------------ variants
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


def measure_interleaved(
    variants: Sequence[Variant], texts: Sequence[str], labels: Sequence[str], warmup: int
) -> Tuple[
    Dict[str, List[float]],
    Dict[str, List[str]],
    Dict[str, np.ndarray],
    List[Tuple[float, float, float]],
]:
    """Time every variant on every text, round-robin; return latencies, predictions,
    logits (one row per text) and load averages."""
    by_name = {v.name: v for v in variants}
    names = list(by_name)
    for text in texts[:warmup]:
        for name in names:
            by_name[name].predict(text)
    latencies: Dict[str, List[float]] = {name: [] for name in names}
    predictions: Dict[str, List[str]] = {name: [] for name in names}
    logits_by: Dict[str, List[np.ndarray]] = {name: [] for name in names}
    loads = [os.getloadavg()]
    for i, text in enumerate(texts):
        for name in rotation(names, i):
            started = time.perf_counter()
            logits = by_name[name].predict(text)
            latencies[name].append((time.perf_counter() - started) * 1000)
            predictions[name].append(labels[int(np.argmax(logits))])
            logits_by[name].append(np.asarray(logits, dtype=np.float64))
        if i % 250 == 249:
            loads.append(os.getloadavg())
    loads.append(os.getloadavg())
    stacked = {name: np.stack(rows) for name, rows in logits_by.items()}
    return latencies, predictions, stacked, loads


def calibration_figures(
    gold: Sequence[str],
    labels: Sequence[str],
    logits: Mapping[str, np.ndarray],
    temperature: float,
    *,
    own: Optional[Mapping[str, float]] = None,
) -> Dict[str, Dict[str, float]]:
    """Expected calibration error of each variant with the model's stored temperature
    (``own[variant]`` where the model stores one for it, as the int8 graph's; else the
    one fitted at training on float32 logits), and with the temperature that would be
    best for its own logits on these messages (fitted on them: a bound, not a deployable
    figure). Close figures mean the stored temperature serves the variant as well."""
    from rasa_llm.models.calibration import expected_calibration_error, fit_temperature, softmax

    truth = np.asarray([list(labels).index(label) for label in gold])
    figures: Dict[str, Dict[str, float]] = {}
    for name, rows in logits.items():
        best = fit_temperature(rows, truth)
        stored = (own or {}).get(name, temperature)
        figures[name] = {
            "stored_temperature": stored,
            "ece": expected_calibration_error(softmax(rows, temperature=stored), truth),
            "best_temperature": best,
            "ece_best_temperature": expected_calibration_error(
                softmax(rows, temperature=best), truth
            ),
        }
    return figures


def run_set(
    name: str,
    model_dir: Path,
    texts: Sequence[str],
    gold: Sequence[str],
    args: argparse.Namespace,
    with_onnx: bool,
) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        variants, info = build_variants(
            model_dir, Path(tmp), with_onnx, per_channel=args.per_channel
        )
        unknown = sorted(set(gold) - set(info["labels"]))
        if unknown:
            raise SystemExit(f"{name}: the model does not know the test labels {unknown}")
        load_before = wait_for_quiet(args.max_load, args.patience)
        print(f"{name}: timing {len(texts)} messages × {len(variants)} variants", flush=True)
        latencies, predictions, logits, loads = measure_interleaved(
            variants, texts, info["labels"], args.warmup
        )
    rows = compare_predictions(gold, predictions)
    calibration = calibration_figures(
        gold, info["labels"], logits, info["temperature"], own=info["own_temperatures"]
    )
    for variant in variants:
        rows[variant.name].update(
            latency_summary(latencies[variant.name]),
            load_seconds=variant.load_seconds,
            size_bytes=variant.size_bytes,
            rss_growth_mib=variant.rss_growth_mib,
            **calibration[variant.name],
            **variant.extra,
        )
        rows[variant.name]["adopt_by_rule"] = adopt(rows[variant.name]["delta_points"])
    ratios(rows, ("p50_ms", "p95_ms", "mean_ms", "load_seconds", "size_bytes"))
    return {
        "model": str(model_dir),
        "messages": len(texts),
        "warmup_messages": args.warmup,
        "load_average_before": list(load_before),
        "load_average_during": [list(x) for x in loads],
        "load_average_1min_mean": float(np.mean([x[0] for x in loads])),
        **{k: v for k, v in info.items() if k != "labels"},
        "variants": rows,
    }


# ------------------------------------------------------------------------------ data
def banking77_model(args: argparse.Namespace) -> Path:
    """The Banking77 classifier: --banking77-model, trained there first if missing."""
    model_dir: Path = args.banking77_model
    if (model_dir / "rasa_llm.json").is_file():
        return model_dir
    out = model_dir.parent
    command = [
        sys.executable, "-m", "training", "intent",
        "--train", str(args.data / "banking77" / "train.csv"),
        "--test", str(args.data / "banking77" / "test.csv"),
        "--out", str(out), "--epochs", str(args.train_epochs),
        "--max-length", "64", "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    print("training:", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, env=ENV, check=True)
    return model_dir


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--bot-model", type=Path, default=BOT_ARCHIVE)
    parser.add_argument(
        "--banking77-model",
        type=Path,
        default=None,
        help="classifier directory (default: OUT/encoder_serving_banking77/model, "
        "trained there when missing)",
    )
    parser.add_argument("--train-epochs", type=int, default=1)
    parser.add_argument("--sets", default="bot,banking77", help="comma-separated: bot, banking77")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--limit", type=int, default=0, help="first N messages of each set")
    parser.add_argument(
        "--per-channel", action="store_true", help="also int8 with per-channel weight scales"
    )
    parser.add_argument("--max-load", type=float, default=2.5)
    parser.add_argument("--patience", type=float, default=600, help="seconds to wait for it")
    args = parser.parse_args()
    if args.banking77_model is None:
        args.banking77_model = args.out / "encoder_serving_banking77" / "model"

    from rasa_llm.models.serving import use_serving_threads
    from training.dataset import load_labelled

    # The threads `rasa run` answers with (RASA_LLM_TORCH_THREADS, default 1); ONNX
    # Runtime gets as many (build_variants).
    use_serving_threads()

    try:
        import onnxruntime  # noqa: F401

        with_onnx = True
    except ImportError:
        print("onnxruntime is not installed (pip install -e .): torch variants only")
        with_onnx = False

    results: Dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "command": " ".join(
            [Path(sys.executable).name, "-m", "bench.encoder_serving", *sys.argv[1:]]
        ),
        "started_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    versions: Dict[str, Optional[str]] = {}
    for package in ("torch", "transformers", "onnxruntime", "onnx"):
        try:
            versions[package] = __import__(package).__version__
        except ImportError:
            versions[package] = None
    results["versions"] = versions
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    for name in sets:
        if name == "bot":
            if not args.bot_model.is_file():
                raise SystemExit(f"{args.bot_model} is missing: run `make train` first")
            data = load_labelled(BOT_TEST, "intent")
            tmp = Path(tempfile.mkdtemp(prefix="encoder-serving-bot-"))
            try:
                model_dir = extract_intent_classifier(args.bot_model, tmp)
                texts, gold = data.texts, data.labels
                if args.limit:
                    texts, gold = texts[: args.limit], gold[: args.limit]
                results[name] = run_set(name, model_dir, texts, gold, args, with_onnx)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            results[name]["data"] = str(BOT_TEST.relative_to(ROOT))
        elif name == "banking77":
            model_dir = banking77_model(args)
            data = load_labelled(args.data / "banking77" / "test.csv", "intent")
            texts, gold = data.texts, data.labels
            if args.limit:
                texts, gold = texts[: args.limit], gold[: args.limit]
            results[name] = run_set(name, model_dir, texts, gold, args, with_onnx)
            results[name]["data"] = "banking77/test.csv"
            report = model_dir.parent / "report.json"
            if report.is_file():
                trained = json.loads(report.read_text())
                results[name]["training"] = {
                    k: trained.get(k) for k in ("accuracy", "train_seconds", "epochs_run")
                }
        else:
            raise SystemExit(f"unknown set {name!r}: use bot, banking77")
        print(f"\n{name}\n{markdown_table(results[name])}\n", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "encoder_serving.json").write_text(json.dumps(results, indent=2))
    print("wrote", args.out / "encoder_serving.json")


if __name__ == "__main__":
    main()
