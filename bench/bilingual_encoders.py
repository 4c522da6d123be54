"""The bot's intent classifier in English and Chinese, per encoder: accuracy and time.

    .venv/bin/python -m bench.bilingual_encoders MODEL.tar.gz [MODEL.tar.gz ...] [--parse]

Each MODEL is the bot trained with `rasa train` (one per encoder: the config's
`model_name_or_path`). For each, on `bot/tests/nlu_test.yml` (English) and
`bot/tests/nlu_test_zh.yml` (Chinese), held-out messages: intent accuracy of the
float32 model and of its int8 ONNX graph (the one `quantize` serves), how often the two
agree, and the median time of one message through each, on one torch thread as the
server answers. It reads the classifier directory inside the model; it runs no server,
so the times are the encoder's, without Rasa's HTTP and pipeline around it
(`bench.nlu_latency` measures those, against stock DIET).

``--parse`` also loads each model as Rasa does (``Agent.load``) and parses every
held-out message through the whole NLU pipeline, one at a time: intent accuracy,
sentiment accuracy and macro-F1 (the parse's ``sentiment`` against the block's
``metadata: {sentiment: ...}``), and the parse's p50/p95 milliseconds in-process.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tarfile
import tempfile
import time
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import torch
import yaml

from rasa_llm.models.inference import predict
from rasa_llm.models.model_files import load_classifier
from rasa_llm.models.onnx_encoder_classifier import GRAPH_FILE, OnnxEncoderClassifier

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = {
    "en": ROOT / "bot" / "tests" / "nlu_test.yml",
    "zh": ROOT / "bot" / "tests" / "nlu_test_zh.yml",
}
COMPONENT_GLOB = "train_rasa_llm.TransformerIntentClassifier*"
TIMED_MESSAGES = 60
_ENTITY = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")


def held_out(path: Path) -> List[Tuple[str, str]]:
    """(text without entity markup, intent) for each example of an NLU YAML file."""
    return [(text, intent) for text, intent, _ in labelled(path)]


def labelled(path: Path) -> List[Tuple[str, str, str]]:
    """(text without entity markup, intent, sentiment) for each example of a file."""
    rows = []
    for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
        if "intent" not in block:
            continue
        sentiment = (block.get("metadata") or {}).get("sentiment", "neutral")
        for line in block["examples"].splitlines():
            line = line.strip()
            if line.startswith("- "):
                rows.append((_ENTITY.sub(r"\1", line[2:]), block["intent"], sentiment))
    return rows


def parse_rows(model_tar: Path) -> List[str]:
    """Table rows from parsing every held-out message through the loaded bot."""
    import asyncio

    from rasa.core.agent import Agent
    from sklearn.metrics import f1_score

    agent = Agent.load(str(model_tar))
    rows = []
    for language, path in HELD_OUT.items():
        data = labelled(path)
        intents, sentiments, times = [], [], []
        for text, _, _ in data:
            start = time.perf_counter()
            parsed = asyncio.run(agent.parse_message(text))
            times.append(1000 * (time.perf_counter() - start))
            intents.append(parsed["intent"]["name"])
            sentiments.append(parsed["sentiment"]["label"])
        gold_intents = [intent for _, intent, _ in data]
        gold_sentiments = [sentiment for _, _, sentiment in data]
        intent_accuracy = np.mean([a == b for a, b in zip(intents, gold_intents, strict=True)])
        sentiment_accuracy = np.mean(
            [a == b for a, b in zip(sentiments, gold_sentiments, strict=True)]
        )
        macro_f1 = f1_score(gold_sentiments, sentiments, average="macro")
        rows.append(
            f"| {model_tar.name} | {language} ({len(data)}) | {intent_accuracy:.3f} "
            f"| {sentiment_accuracy:.3f} | {macro_f1:.3f} "
            f"| {np.percentile(times, 50):.1f} | {np.percentile(times, 95):.1f} |"
        )
    return rows


def median_ms(model: object, tokenizer: object, texts: Sequence[str]) -> float:
    """Median milliseconds of one message through ``model`` (one at a time)."""
    times = []
    for text in texts[:TIMED_MESSAGES]:
        start = time.perf_counter()
        predict(model, tokenizer, [text], 64, torch.device("cpu"))  # type: ignore[arg-type]
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure(model_tar: Path) -> List[str]:
    """Table rows for one trained bot."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(model_tar) as archive:
            archive.extractall(tmp)  # our own model file
        (directory,) = (Path(tmp) / "components").glob(COMPONENT_GLOB)
        model, tokenizer, meta = load_classifier(directory, 0.0)
        labels = meta["labels"]
        graph = OnnxEncoderClassifier((directory / GRAPH_FILE).read_bytes(), model.head, 1)
        for language, path in HELD_OUT.items():
            data = held_out(path)
            texts = [text for text, _ in data]
            gold = np.array([intent for _, intent in data])
            predicted = {}
            for kind, served in (("float32", model), ("int8", graph)):
                _, logits = predict(served, tokenizer, texts, 64, torch.device("cpu"))
                predicted[kind] = np.array([labels[i] for i in logits.argmax(axis=1)])
            agreement = float((predicted["float32"] == predicted["int8"]).mean())
            rows.append(
                f"| {model_tar.name} | {language} ({len(texts)}) "
                f"| {(predicted['float32'] == gold).mean():.3f} "
                f"| {(predicted['int8'] == gold).mean():.3f} | {agreement:.3f} "
                f"| {median_ms(model, tokenizer, texts):.1f} "
                f"| {median_ms(graph, tokenizer, texts):.1f} |"
            )
    return rows


def main(argv: Sequence[str] | None = None) -> None:  # positional: argparse's argv
    """Print the table for the given trained bots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--parse", action="store_true", help="also parse through Rasa")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(
        "| model | held out | float32 accuracy | int8 accuracy | agreement "
        "| float32 ms | int8 ms |\n|---|---|---:|---:|---:|---:|---:|"
    )
    for model_tar in args.models:
        for row in measure(model_tar):
            print(row, flush=True)
    if args.parse:
        print(
            "\n| model | held out | intent accuracy | sentiment accuracy | sentiment "
            "macro-F1 | parse p50 ms | parse p95 ms |\n|---|---|---:|---:|---:|---:|---:|"
        )
        for model_tar in args.models:
            for row in parse_rows(model_tar):
                print(row, flush=True)


if __name__ == "__main__":
    main()
