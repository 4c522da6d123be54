"""`python -m training intent --oos-score softmax+neighbour` end to end on tiny data: what
it stores, that its figures follow the threshold on that score, and that a bot adopting
the classifier rejects exactly the messages training rejected."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from rasa_llm import TransformerIntentClassifier
from rasa_llm.errors import ModelLoadError
from rasa_llm.models import calibration
from rasa_llm.models.inference import predict
from rasa_llm.models.model_files import load_classifier
from rasa_llm.models.neighbour_score import NEIGHBOURS_FILE, nearest_cosine, unit_vectors
from tests.training.conftest import (
    CLASS_WORDS,
    make_rows,
    tiny_args,
    tiny_intent_run,
    write_csv,
)
from training.cli import main


@pytest.fixture(scope="module")
def neighbour_run(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path) -> Path:
    folder = tmp_path_factory.mktemp("neighbour-run")
    return tiny_intent_run(folder, tiny_encoder, "--oos-score", "softmax+neighbour")


def rows_of(out: Path) -> List[Dict[str, str]]:
    with (out / "predictions.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_bank_and_both_standardisations_are_stored(neighbour_run: Path) -> None:
    report = json.loads((neighbour_run / "report.json").read_text())
    meta = json.loads((neighbour_run / "model" / "rasa_llm.json").read_text())
    assert report["oos_score"] == "softmax+neighbour"
    markdown = (neighbour_run / "report.md").read_text()
    assert "out of scope when the softmax+neighbour score < threshold" in markdown
    for record in (meta["oos_score"], meta["int8"]["oos_score"]):
        assert record["name"] == "softmax+neighbour"
        assert record["confidence_std"] > 0 and record["cosine_std"] > 0
    bank = np.load(neighbour_run / "model" / NEIGHBOURS_FILE)
    # One unit vector per in-scope training row (the out-of-scope rows only validate).
    in_scope_train = report["examples"]["train"]
    assert bank.shape[0] == in_scope_train and bank.dtype == np.float16
    assert np.linalg.norm(bank.astype(np.float32), axis=1) == pytest.approx(1.0, abs=2e-3)


def test_the_scores_are_the_standardised_confidence_plus_cosine(neighbour_run: Path) -> None:
    """Recomputed from the saved float32 model: its vectors, its temperature, the bank."""
    model, tokenizer, meta = load_classifier(neighbour_run / "model", 0.0)
    rows = rows_of(neighbour_run)
    texts = [r["text"] for r in rows]
    # In batches of 128, as training scored them (the padding changes the last digits).
    vectors, logits = predict(model, tokenizer, texts, 64, torch.device("cpu"), batch_size=128)
    confidence = calibration.softmax(logits, temperature=meta["temperature"]).max(axis=1)
    bank = unit_vectors(np.load(neighbour_run / "model" / NEIGHBOURS_FILE))
    record = meta["oos_score"]
    expected = (confidence - record["confidence_mean"]) / record["confidence_std"]
    expected += (nearest_cosine(bank, vectors) - record["cosine_mean"]) / record["cosine_std"]
    assert [float(r["oos_score"]) for r in rows] == pytest.approx(expected, abs=1e-4)


def test_the_figures_follow_the_threshold_on_the_score(neighbour_run: Path) -> None:
    report = json.loads((neighbour_run / "report.json").read_text())
    rows = rows_of(neighbour_run)
    for figures in [report, *report["operating_points"]]:
        threshold = figures["threshold"]
        oos = [r for r in rows if r["label"] == "out_of_scope"]
        scoped = [r for r in rows if r["label"] != "out_of_scope"]
        rejected = [float(r["oos_score"]) < threshold for r in oos]
        assert figures["oos_recall"] == pytest.approx(np.mean(rejected), abs=1e-6)
        kept_right = [
            float(r["oos_score"]) >= threshold and r["predicted"] == r["label"] for r in scoped
        ]
        assert figures["in_scope_accuracy"] == pytest.approx(np.mean(kept_right), abs=1e-6)
    # The threshold is on the score's scale (z-units), not a probability's.
    assert report["threshold"] != pytest.approx(
        json.loads((neighbour_run / "model" / "rasa_llm.json").read_text())["temperature"]
    )


def adopt(model: Path, tmp_path: Path, quantize: str) -> TransformerIntentClassifier:
    (tmp_path / "storage").mkdir(parents=True)
    storage = LocalModelStorage(tmp_path / "storage")
    context = ExecutionContext(GraphSchema({}), "m")
    config = {
        **TransformerIntentClassifier.get_default_config(),
        "classifier_path": str(model),
        "device": "cpu",
        "quantize": quantize,
    }
    trained = TransformerIntentClassifier.create(config, storage, Resource("intent"), context)
    trained.train(TrainingData([Message.build("hi", "greet"), Message.build("refund", "refund")]))
    return TransformerIntentClassifier.load(config, storage, Resource("intent"), context)


def test_a_bot_rejects_what_training_rejected(neighbour_run: Path, tmp_path: Path) -> None:
    """float32 (quantize: none) answers exactly as the report scored: the same messages
    fall back, with the top intent's confidence; the bank went through Rasa's storage."""
    loaded = adopt(neighbour_run / "model", tmp_path, "none")
    rows = rows_of(neighbour_run)
    threshold = json.loads((neighbour_run / "report.json").read_text())["threshold"]
    messages = loaded.process([Message.build(r["text"]) for r in rows])
    rejected = 0
    for row, message in zip(rows, messages, strict=True):
        ranking = message.get("intent_ranking")
        if float(row["oos_score"]) < threshold:
            rejected += 1
            assert message.get("intent") == {
                "name": "nlu_fallback",
                "confidence": pytest.approx(float(row["confidence"]), abs=1e-5),
            }
            ranking = ranking[1:]
        else:
            assert message.get("intent")["name"] == row["predicted"]
        assert ranking[0]["name"] == row["predicted"]
    assert 0 < rejected < len(rows)


def test_the_int8_graph_uses_its_own_standardisation(neighbour_run: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(neighbour_run / "model", model)
    meta = json.loads((model / "rasa_llm.json").read_text())
    # Far apart records: a graph's message must be scored with the graph's.
    meta["int8"]["oos_score"] = {**meta["oos_score"], "cosine_mean": 5.0}
    (model / "rasa_llm.json").write_text(json.dumps(meta))
    graph = adopt(model, tmp_path / "auto", "auto")
    plain = adopt(model, tmp_path / "none", "none")
    assert graph._oos_scorer().cosine_mean == 5.0  # type: ignore[union-attr]
    assert plain._oos_scorer().cosine_mean == meta["oos_score"]["cosine_mean"]  # type: ignore[union-attr]


def test_an_adopted_classifier_without_its_bank_fails_with_the_path(
    neighbour_run: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(neighbour_run / "model", model)
    (model / NEIGHBOURS_FILE).unlink()
    with pytest.raises(ModelLoadError) as e:
        adopt(model, tmp_path, "none")
    assert str(model / NEIGHBOURS_FILE) in str(e.value) and "Fix:" in str(e.value)


def test_the_score_needs_out_of_scope_rows_and_validation_rows(
    tiny_encoder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused before any training, with the fix."""
    train = write_csv(tmp_path / "train.csv", make_rows(CLASS_WORDS, 20, seed=1))
    test = write_csv(tmp_path / "test.csv", make_rows(CLASS_WORDS, 4, seed=2))
    args = tiny_args(
        tiny_encoder, tmp_path / "out", train, test, "--oos-score", "softmax+neighbour"
    )
    assert main(["intent", *args]) == 2
    err = capsys.readouterr().err
    assert "no --oos-label (or --hold-out-labels) names them" in err and "Fix:" in err
    no_validation = [*args, "--oos-label", "out_of_scope", "--validation-fraction", "0"]
    assert main(["intent", *no_validation]) == 2
    assert (
        "standardised on the in-scope validation rows, and there are 0" in capsys.readouterr().err
    )
    assert not (tmp_path / "out" / "model").exists()
