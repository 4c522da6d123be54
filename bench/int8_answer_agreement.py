"""Would counting changed *answers* instead of changed top intents let more graphs serve?

    .venv/bin/python -m bench.int8_answer_agreement --run RUN [training flags]

(RUN: a `python -m training intent` output folder trained on Banking77 with an
out-of-scope threshold, e.g. /tmp/rasa-llm-training-bench/oos_neighbour from
bench.training_benchmarks; the flags after it are the ones that run was trained with
beyond the benchmark's common ones, e.g. ``--oos-score softmax+neighbour`` or
``--oos-train-fraction 0.5``, so that the same validation rows come back.)

Training's int8 check (``rasa_llm.models.serving``) counts how often the graph keeps the
float32 model's top intent on the validation rows, in and out of scope. On an
out-of-scope row the top intent is no answer when the threshold rejects it, so a graph
could be refused for changes no customer sees. This prints, on the same rows, the share
of unchanged top intents (the rule) and of unchanged answers: the intent kept, or the
rejection, each model with its own temperature, score record and threshold, split by
in-scope and out-of-scope rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence, Tuple

import numpy as np
import torch

from bench.training_benchmarks import banking77, held_out_intents
from rasa_llm.models.calibration import softmax
from rasa_llm.models.inference import predict
from rasa_llm.models.model_files import load_classifier
from rasa_llm.models.neighbour_score import load_neighbours, neighbour_score
from rasa_llm.models.onnx_encoder_classifier import GRAPH_FILE, OnnxEncoderClassifier
from rasa_llm.models.serving import served_oos_score, served_temperature, served_threshold
from training.classifier_data import prepare
from training.cli import parse_arguments


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    args, training_flags = parser.parse_known_args(argv)
    train_csv, test_csv = banking77(args.data)
    flags = ["intent", "--train", str(train_csv), "--test", str(test_csv), "--out", "/tmp/x"]
    flags += ["--seed", "0", "--hold-out-labels", ",".join(held_out_intents(args.data))]
    data = prepare(parse_arguments(flags + training_flags))
    directory = args.run / "model"
    model, tokenizer, meta = load_classifier(directory, 0.0)
    graph = OnnxEncoderClassifier((directory / GRAPH_FILE).read_bytes(), model.head, 2)
    bank = load_neighbours(directory, meta, model.hidden_size)
    texts = [*data.validation.texts, *data.validation_oos]

    def answers(served: Any) -> Tuple[np.ndarray, np.ndarray]:
        vectors, logits = predict(served, tokenizer, texts, 64, torch.device("cpu"), batch_size=128)
        confidence = softmax(logits, temperature=served_temperature(meta, served)).max(axis=1)
        scorer = neighbour_score(served_oos_score(meta, served), bank)
        score = confidence if scorer is None else scorer(vectors, confidence)
        threshold = served_threshold(meta, served)
        top = logits.argmax(axis=1)
        # Out of scope when the score is strictly below the threshold (choose_threshold).
        kept = np.ones(len(top), dtype=bool) if threshold is None else score >= threshold
        return top, np.where(kept, top, -1)

    float32_top, float32_answer = answers(model)
    graph_top, graph_answer = answers(graph)
    inside = np.arange(len(texts)) < len(data.validation.texts)
    print(f"{len(texts)} validation rows ({int(inside.sum())} in scope)")
    print(f"recorded int8.agreement: {meta.get('int8', {}).get('agreement')}")
    for name, same in (
        ("same top intent", float32_top == graph_top),
        ("same answer", float32_answer == graph_answer),
    ):
        print(
            f"{name:16s} all {same.mean():.4f}  in scope {same[inside].mean():.4f}  "
            f"out of scope {same[~inside].mean():.4f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
