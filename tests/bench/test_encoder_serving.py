"""The encoder-serving benchmark's helpers, on a tiny BERT made here (no ../shared)."""

import io
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List

import numpy as np
import pytest
import torch

from bench.encoder_figures import (
    adopt,
    calibration_figures,
    compare_predictions,
    latency_summary,
    markdown_table,
    mcnemar_exact_p,
    paired_difference_ci,
    ratios,
)
from bench.encoder_serving import measure_interleaved, rotation
from bench.encoder_variants import (
    REFERENCE,
    SERVED,
    build_variants,
    extract_intent_classifier,
    find_component_dir,
    nodes_to_quantize,
)
from rasa_llm.models.encoder_classifier import EncoderClassifier
from rasa_llm.models.model_files import load_pretrained, save_classifier
from tests.rasa_llm.conftest import build_tiny_bert

LABELS = ["greet", "order_status", "refund"]
TEXTS = ["hello there", "where is my order", "i want my money back", "hi", "order late"]


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    encoder, tokenizer = load_pretrained(build_tiny_bert(tmp_path_factory.mktemp("bert")))
    torch.manual_seed(0)
    model = EncoderClassifier(encoder, len(LABELS), 0.1).eval()
    path = tmp_path_factory.mktemp("classifier")
    save_classifier(
        path, model, tokenizer, {"labels": LABELS, "temperature": 1.0, "max_length": 16}
    )
    return path


def test_rotation_puts_every_variant_first_equally_often() -> None:
    names = ["a", "b", "c"]
    orders = [rotation(names, i) for i in range(6)]
    assert all(sorted(order) == names for order in orders)
    assert [order[0] for order in orders] == ["a", "b", "c", "a", "b", "c"]
    assert rotation([], 3) == []


def test_latency_summary() -> None:
    summary = latency_summary([float(x) for x in range(1, 101)])
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p95_ms"] == pytest.approx(95.05)
    assert summary["mean_ms"] == pytest.approx(50.5)
    assert summary["max_ms"] == 100.0


def test_mcnemar_exact_p() -> None:
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(3, 3) == 1.0
    assert mcnemar_exact_p(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact_p(6, 0) == mcnemar_exact_p(0, 6)


def test_paired_difference_ci() -> None:
    assert paired_difference_ci(0, 0, 100) == (0.0, 0.0)
    low, high = paired_difference_ci(3, 0, 100)
    assert low < -3.0 < high
    assert high - low == pytest.approx(2 * 1.96 * ((0.03 - 0.03**2) / 100) ** 0.5 * 100)
    low, high = paired_difference_ci(5, 5, 1000)
    assert low == pytest.approx(-high)
    assert paired_difference_ci(1, 0, 0) == (0.0, 0.0)


def test_compare_predictions_counts_discordant_pairs() -> None:
    gold = ["a", "a", "b", "b"]
    rows = compare_predictions(
        gold,
        {REFERENCE: ["a", "a", "b", "a"], "int8": ["a", "b", "b", "b"]},
    )
    assert rows[REFERENCE]["accuracy"] == 0.75
    assert rows[REFERENCE]["delta_points"] == 0.0
    assert rows[REFERENCE]["agreement_with_reference"] == 1.0
    int8 = rows["int8"]
    assert int8["accuracy"] == 0.75
    assert int8["delta_points"] == pytest.approx(0.0)
    assert int8["agreement_with_reference"] == 0.5
    assert int8["reference_right_variant_wrong"] == 1
    assert int8["reference_wrong_variant_right"] == 1


def test_ratios_against_the_reference() -> None:
    rows: Dict[str, Dict[str, Any]] = {
        REFERENCE: {"p50_ms": 10.0, "size_bytes": 0},
        "fast": {"p50_ms": 5.0, "size_bytes": 10},
    }
    ratios(rows, ("p50_ms", "size_bytes", "missing"))
    assert rows["fast"]["p50_ms_ratio"] == 0.5
    assert rows[REFERENCE]["p50_ms_ratio"] == 1.0
    assert "size_bytes_ratio" not in rows["fast"]  # no ratio against zero


def test_adopt_rule_allows_a_drop_of_at_most_three_tenths() -> None:
    assert adopt(0.0)
    assert adopt(+0.5)
    assert adopt(-0.3)
    assert not adopt(-0.31)


def test_find_component_dir() -> None:
    names = [
        "metadata.json",
        "components/train_rasa_llm.TransformerIntentClassifier0/rasa_llm.json",
        "components/train_rasa_llm.TransformerIntentClassifier0/encoder/config.json",
        "components/train_rasa_llm.TransformerSentimentAnalyzer1/rasa_llm.json",
    ]
    assert find_component_dir(names) == "components/train_rasa_llm.TransformerIntentClassifier0"
    with pytest.raises(ValueError, match="make train"):
        find_component_dir(names[:1])


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_extract_intent_classifier_copies_only_its_folder(tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    folder = "components/train_rasa_llm.TransformerIntentClassifier0"
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, f"{folder}/rasa_llm.json", b"{}")
        _add(tar, f"{folder}/encoder/config.json", b'{"a": 1}')
        _add(tar, "components/train_rasa_llm.TransformerSentimentAnalyzer1/rasa_llm.json", b"x")
    out = extract_intent_classifier(archive, tmp_path / "out")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "encoder/config.json",
        "rasa_llm.json",
    ]
    assert (out / "encoder" / "config.json").read_bytes() == b'{"a": 1}'


def test_nodes_to_quantize_leave_the_head_out() -> None:
    names = ("/encoder/embeddings/Gather", "/encoder/x/MatMul", "/head/Gemm", "/head/Add")
    nodes = [SimpleNamespace(name=n) for n in names]
    assert nodes_to_quantize(nodes) == ["/encoder/embeddings/Gather", "/encoder/x/MatMul"]


def test_markdown_table_has_a_row_per_variant() -> None:
    row = {
        "p50_ms": 10.0,
        "p95_ms": 20.0,
        "load_seconds": 1.0,
        "size_bytes": 90_000_000,
        "rss_growth_mib": 100.0,
        "accuracy": 0.9,
        "delta_points": 0.0,
        "delta_points_ci95": [0.0, 0.0],
        "agreement_with_reference": 1.0,
    }
    fast = {**row, "p50_ms": 5.0, "p50_ms_ratio": 0.5, "delta_points": -0.25}
    table = markdown_table({"variants": {REFERENCE: row, "fast": fast}})
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[3].startswith("| fast | 5.00 |") and "| 0.50 |" in lines[3]
    assert "-0.25" in lines[3]


def test_torch_variants_are_loaded_and_timed_round_robin(
    classifier_dir: Path, tmp_path: Path
) -> None:
    variants, info = build_variants(classifier_dir, tmp_path, with_onnx=False, per_channel=True)
    assert [v.name for v in variants] == [REFERENCE, "torch_int8", "torch_int8_per_channel"]
    assert info["labels"] == LABELS and info["max_length"] == 16
    assert all(v.load_seconds > 0 and v.size_bytes > 0 for v in variants)
    assert variants[1].extra["quantize_seconds"] > 0
    latencies, predictions, logits, loads = measure_interleaved(variants, TEXTS, LABELS, warmup=1)
    for name in latencies:
        assert len(latencies[name]) == len(TEXTS)
        assert all(ms > 0 for ms in latencies[name])
        assert set(predictions[name]) <= set(LABELS)
        assert logits[name].shape == (len(TEXTS), len(LABELS))
        assert predictions[name] == [LABELS[i] for i in logits[name].argmax(axis=1)]
    assert len(loads) >= 2


def test_calibration_uses_the_stored_temperature_and_bounds_it_with_the_best() -> None:
    gold = ["a", "b", "a", "b", "a", "b", "a", "a"]
    sure = np.asarray([[6.0, -6.0] if g == "a" else [-6.0, 6.0] for g in gold])
    sure[-1] = [-6.0, 6.0]  # one confident mistake
    figures = calibration_figures(gold, ["a", "b"], {"sure": sure, "timid": sure / 20}, 1.0)
    # Confident: 7 of 8 right at ~1.0 confidence: ECE = |7/8 - 1| = 0.125.
    assert figures["sure"]["ece"] == pytest.approx(0.125, abs=1e-3)
    # The same ranking with logits 20 times smaller: confidences near 0.65, 7/8 right.
    assert figures["timid"]["ece"] == pytest.approx(abs(0.875 - 1 / (1 + np.exp(-0.6))), abs=1e-3)
    for row in figures.values():
        assert row["ece_best_temperature"] <= row["ece"] + 1e-9
    assert figures["timid"]["best_temperature"] < 1.0
    # A variant with a temperature of its own stored in the model is scored with it.
    own = calibration_figures(
        gold, ["a", "b"], {"sure": sure, "timid": sure / 20}, 1.0, own={"timid": 0.05}
    )
    assert own["sure"] == figures["sure"]
    assert own["timid"]["stored_temperature"] == 0.05
    assert own["timid"]["ece"] == pytest.approx(figures["sure"]["ece"], abs=1e-3)


def test_onnx_variants_match_torch(classifier_dir: Path, tmp_path: Path) -> None:
    import onnx

    variants, _ = build_variants(classifier_dir, tmp_path, with_onnx=True)
    by_name = {v.name: v for v in variants}
    assert list(by_name) == [REFERENCE, SERVED, "torch_int8", "onnx_fp32", "onnx_int8"]
    assert by_name[SERVED].extra["export_and_quantize_seconds"] > 0
    for text in TEXTS:  # different lengths: the sequence axis is dynamic
        expected = by_name[REFERENCE].predict(text)
        np.testing.assert_allclose(by_name["onnx_fp32"].predict(text), expected, atol=1e-4)
        assert by_name["onnx_int8"].predict(text).shape == expected.shape
        assert by_name[SERVED].predict(text).shape == expected.shape
    quantized = onnx.load(str(tmp_path / "model.int8.onnx"))
    ops: List[str] = [n.op_type for n in quantized.graph.node if n.name.startswith("/head/")]
    assert ops and "MatMulInteger" not in ops  # the head stays float32, as in torch
    assert any(n.op_type == "MatMulInteger" for n in quantized.graph.node)
