"""The report writer: files, JSON round trip, Markdown contents and real PNG images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import matplotlib.image
import numpy as np
import pytest

from rasa_llm.models.calibration import softmax
from training.metrics import classification_figures, confusion_matrix, reliability_bins
from training.report import write_report
from training.report_plots import plot_training_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HISTORY = [
    {"epoch": 1.0, "step": 10.0, "train_loss": 1.2, "val_loss": 1.0, "val_accuracy": 0.55},
    {"epoch": 2.0, "step": 20.0, "train_loss": 0.7, "val_loss": 0.8, "val_accuracy": 0.71},
    {"epoch": 3.0, "step": 30.0, "train_loss": 0.4, "val_loss": 0.75, "val_accuracy": 0.78},
]


def _image(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and min(pixels.shape[:2]) > 100
    assert float(pixels[..., :3].std()) > 0.01  # not a blank canvas
    return pixels


def _run(tmp_path: Path, n_labels: int, seed: int = 0) -> Dict[str, Any]:
    rng = np.random.default_rng(seed)
    labels = [f"intent_{i}" for i in range(n_labels)]
    y_true = rng.integers(0, n_labels, 40 * n_labels)
    probs = softmax(rng.normal(0, 1, (len(y_true), n_labels)) + 3 * np.eye(n_labels)[y_true])
    confusion = confusion_matrix(y_true, probs.argmax(axis=1), n_labels)
    figures = classification_figures(confusion, labels)
    report = {
        **figures,
        "ece": np.float64(0.0421337),
        "in_scope_accuracy": np.float32(0.9375),
        "oos_recall": 0.8765432,
        "auroc": 0.97,
        "threshold": np.float64(0.41234),
        "train_seconds": 733.6,
        "test_examples": np.int64(len(y_true)),
        "held_out_labels": ["lost_or_stolen_card", "card_arrival"],
        "settings": {"learning_rate": 2e-5, "epochs": np.int64(3), "freeze": "embeddings"},
        "confidences": np.array([0.5, 0.25]),
    }
    paths = write_report(
        tmp_path,
        report,
        labels=labels,
        confusion=confusion,
        reliability=reliability_bins(probs, y_true),
        history=HISTORY,
        title="Banking77 test",
    )
    return {"paths": paths, "report": report, "figures": figures}


def test_report_files_and_json_round_trip(tmp_path: Path) -> None:
    run = _run(tmp_path / "out", 3)
    paths = run["paths"]
    assert {p.name for p in paths.values()} == {
        "report.json",
        "report.md",
        "confusion.png",
        "reliability.png",
        "curves.png",
    }
    assert all(p.parent == tmp_path / "out" and p.is_file() for p in paths.values())
    loaded = json.loads(paths["json"].read_text())
    assert loaded["ece"] == 0.0421337 and loaded["test_examples"] == 3 * 40
    assert loaded["in_scope_accuracy"] == pytest.approx(0.9375)
    assert loaded["settings"] == {"learning_rate": 2e-5, "epochs": 3, "freeze": "embeddings"}
    assert loaded["confidences"] == [0.5, 0.25]
    assert loaded["per_class"] == run["figures"]["per_class"]
    assert set(loaded) == set(run["report"])
    assert paths["json"].read_text() == json.dumps(loaded, indent=2, sort_keys=True) + "\n"
    for name in ("confusion", "reliability", "curves"):
        _image(paths[name])


def test_markdown_holds_figures_labels_and_worst_class_first(tmp_path: Path) -> None:
    run = _run(tmp_path, 3)
    text = run["paths"]["markdown"].read_text()
    figures = run["figures"]
    assert text.startswith("# Banking77 test\n")
    assert f"| Accuracy | {figures['accuracy']:.4f} |" in text
    assert f"| Macro-F1 | {figures['macro_f1']:.4f} |" in text
    assert "| 0.0421 |" in text and "| 0.9375 |" in text and "| 0.8765 |" in text
    assert "| 0.4123 |" in text and "| 734 s |" in text
    assert "`lost_or_stolen_card`, `card_arrival`" in text
    assert "| `learning_rate` | 2e-05 |" in text
    assert "| `test_examples` | 120 |" in text
    for image in ("confusion.png", "reliability.png", "curves.png"):
        assert f"]({image})" in text
    per_class = figures["per_class"]
    worst_first = sorted(per_class, key=lambda label: (per_class[label]["f1"], label))
    positions = [text.index(f"| `{label}` |") for label in worst_first]
    assert positions == sorted(positions)
    worst = worst_first[0]
    row = f"| `{worst}` | {per_class[worst]['precision']:.4f} |"
    assert row in text


def test_markdown_leaves_out_missing_figures(tmp_path: Path) -> None:
    paths = write_report(
        tmp_path,
        {"accuracy": 0.5},
        labels=["a", "b"],
        confusion=np.array([[1, 1], [1, 1]]),
        reliability=[],
        history=[],
        title="tiny",
    )
    text = paths["markdown"].read_text()
    assert "| Accuracy | 0.5000 |" in text
    for absent in ("Macro-F1", "Out-of-scope", "Training time", "## Settings", "## Per class"):
        assert absent not in text
    _image(paths["reliability"])
    _image(paths["curves"])


def test_77_labels(tmp_path: Path) -> None:
    small = _image(_run(tmp_path / "small", 3)["paths"]["confusion"])
    run = _run(tmp_path / "large", 77)
    large = _image(run["paths"]["confusion"])
    assert large.shape[0] > small.shape[0] and large.shape[1] > small.shape[1]
    assert large.shape[0] <= 2500  # capped
    text = run["paths"]["markdown"].read_text()
    assert text.count("| `intent_") == 77


def test_no_figure_stays_open(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    for i in range(3):
        plot_training_curves(HISTORY, tmp_path / f"c{i}.png", "run")
    assert len(plt.get_fignums()) == before


def test_curves_with_one_record_and_missing_keys(tmp_path: Path) -> None:
    plot_training_curves([{"epoch": 1, "train_loss": 0.9}], tmp_path / "one.png", "one")
    _image(tmp_path / "one.png")
    plot_training_curves(
        [{"step": 5, "train_loss": 2.0}, {"step": 10, "train_loss": 1.5}],
        tmp_path / "no_val.png",
        "no validation",
    )
    _image(tmp_path / "no_val.png")
    plot_training_curves(
        [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.6}],
        tmp_path / "only_accuracy.png",
        "accuracy only",
    )
    _image(tmp_path / "only_accuracy.png")


def test_confusion_shape_must_match_labels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="3 labels"):
        write_report(
            tmp_path,
            {},
            labels=["a", "b", "c"],
            confusion=np.zeros((2, 2)),
            reliability=[],
            history=[],
            title="bad",
        )
