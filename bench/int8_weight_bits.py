"""What 7-bit weights (``reduce_range``) cost against 8-bit ones on this CPU.

    .venv/bin/python -m bench.int8_weight_bits --model RUN/model

(RUN: a `python -m training intent` output folder trained on Banking77, e.g.
/tmp/rasa-llm-training-bench/oos_neighbour from bench.training_benchmarks.)

Exports the classifier's encoder twice, as rasa-llm does (per-channel dynamic int8) with
7-bit and with 8-bit weights, and scores both graphs and the float32 model on
Banking77's TEST rows whose intent the model knows: accuracy and the share of rows whose
top intent is float32's. rasa-llm always exports 7-bit weights, which CPUs without VNNI
need; on a CPU with VNNI this measures what that choice costs.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime.quantization as quantization
import torch

from rasa_llm.models.inference import predict
from rasa_llm.models.model_files import load_classifier
from rasa_llm.models.onnx_encoder_classifier import OnnxEncoderClassifier, export_int8_graph


def export(model: Any, reduce_range: bool) -> bytes:
    original = quantization.quantize_dynamic

    def forced(*args: Any, **kwargs: Any) -> Any:
        kwargs["reduce_range"] = reduce_range
        return original(*args, **kwargs)

    quantization.quantize_dynamic = forced
    try:
        return export_int8_graph(model)
    finally:
        quantization.quantize_dynamic = original


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    args = parser.parse_args(argv)
    model, tokenizer, meta = load_classifier(args.model, 0.0)
    labels = list(meta["labels"])
    with (args.data / "banking77" / "test.csv").open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if (r.get("label") or r.get("category")) in labels]
    texts = [r["text"] for r in rows]
    truth = np.asarray([labels.index(r.get("label") or r["category"]) for r in rows])
    cpu = torch.device("cpu")
    top = {"float32": predict(model, tokenizer, texts, 64, cpu, batch_size=128)[1].argmax(axis=1)}
    for bits, reduce_range in (("7-bit", True), ("8-bit", False)):
        served = OnnxEncoderClassifier(export(model, reduce_range), model.head, 2)
        top[bits] = predict(served, tokenizer, texts, 64, cpu, batch_size=128)[1].argmax(axis=1)
    figures = {
        name: {
            "accuracy": float((answer == truth).mean()),
            "agreement_with_float32": float((answer == top["float32"]).mean()),
        }
        for name, answer in top.items()
    }
    print(json.dumps({"rows": len(rows), "labels": len(labels), **figures}, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
