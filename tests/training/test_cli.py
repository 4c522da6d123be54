"""`python -m training intent|sentiment` end to end on tiny data and a tiny local BERT:
the report's figures, the exported model in Rasa's components, and input errors."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from rasa_llm import TransformerIntentClassifier, TransformerSentimentAnalyzer
from tests.training.conftest import (
    CLASS_WORDS,
    SENTIMENT_WORDS,
    make_rows,
    tiny_args,
    tiny_intent_run,
    write_csv,
)
from training.classification import INT8_META_KEYS
from training.cli import main

ROOT = Path(__file__).resolve().parents[2]


def predictions(out: Path) -> List[Dict[str, str]]:
    with (out / "predictions.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def intent_run(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path) -> Path:
    """One tiny intent run with out-of-scope rows, shared by the tests that read it."""
    return tiny_intent_run(tmp_path_factory.mktemp("intent-run"), tiny_encoder)


def test_help_is_there_for_every_task() -> None:
    for argv in ([], ["intent"], ["sentiment"], ["generate"]):
        done = subprocess.run(
            [sys.executable, "-m", "training", *argv, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "--train" in done.stdout or "intent" in done.stdout


def test_the_run_writes_model_report_and_plots(intent_run: Path) -> None:
    report = json.loads((intent_run / "report.json").read_text())
    for key in ("accuracy", "macro_f1", "ece", "train_seconds", "in_scope_accuracy"):
        assert isinstance(report[key], float), key
    for key in ("oos_recall", "auroc", "threshold"):
        assert isinstance(report[key], float), key
    for name in ("report.md", "confusion.png", "reliability.png", "curves.png"):
        assert (intent_run / name).stat().st_size > 500, name
    meta = json.loads((intent_run / "model" / "rasa_llm.json").read_text())
    assert meta["kind"] == "intent_classifier"
    assert meta["labels"] == ["greet", "order_status", "refund"]
    assert meta["oos_threshold"] == report["threshold"]
    assert not (intent_run / "checkpoint").exists()  # removed after success


def test_report_figures_match_a_confusion_matrix_counted_by_hand(intent_run: Path) -> None:
    report = json.loads((intent_run / "report.json").read_text())
    rows = [r for r in predictions(intent_run) if r["label"] != "out_of_scope"]
    labels = report["labels"]
    counts = {(t, p): 0 for t in labels for p in labels}
    for row in rows:
        counts[(row["label"], row["predicted"])] += 1
    assert report["confusion"] == [[counts[(t, p)] for p in labels] for t in labels]
    correct = sum(counts[(x, x)] for x in labels)
    assert report["accuracy"] == pytest.approx(correct / len(rows))
    f1s = []
    for x in labels:
        predicted = sum(counts[(t, x)] for t in labels)
        actual = sum(counts[(x, p)] for p in labels)
        precision = counts[(x, x)] / predicted if predicted else 0.0
        recall = counts[(x, x)] / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert report["per_class"][x]["f1"] == pytest.approx(f1)
        f1s.append(f1)
    assert report["macro_f1"] == pytest.approx(sum(f1s) / len(f1s))


def test_out_of_scope_figures_follow_the_stored_threshold(intent_run: Path) -> None:
    report = json.loads((intent_run / "report.json").read_text())
    assert_figures_follow(predictions(intent_run), report["threshold"], report)
    assert 0.0 <= report["auroc"] <= 1.0


def test_other_operating_points_are_reported_with_their_own_thresholds(
    intent_run: Path,
) -> None:
    report = json.loads((intent_run / "report.json").read_text())
    points = report["operating_points"]
    assert [p["target_oos_recall"] for p in points] == [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    thresholds = [p["threshold"] for p in points]
    assert thresholds == sorted(thresholds)  # a higher target never lowers the threshold
    for point in points:
        assert_figures_follow(predictions(intent_run), point["threshold"], point)
    markdown = (intent_run / "report.md").read_text()
    assert "| Target recall | Threshold | In-scope accuracy | Out-of-scope recall |" in markdown
    assert markdown.count("\n| 0.") >= len(points)


def assert_figures_follow(
    rows: List[Dict[str, str]], threshold: float, figures: Dict[str, Any]
) -> None:
    """In-scope accuracy and out-of-scope recall counted by hand from predictions.csv."""
    oos = [r for r in rows if r["label"] == "out_of_scope"]
    scoped = [r for r in rows if r["label"] != "out_of_scope"]
    assert oos and scoped
    rejected = [float(r["confidence"]) < threshold for r in oos]
    assert figures["oos_recall"] == pytest.approx(sum(rejected) / len(oos), abs=1e-6)
    kept_right = [
        float(r["confidence"]) >= threshold and r["predicted"] == r["label"] for r in scoped
    ]
    assert figures["in_scope_accuracy"] == pytest.approx(sum(kept_right) / len(scoped), abs=1e-6)


def component_context(tmp_path: Path) -> Tuple[LocalModelStorage, ExecutionContext]:
    (tmp_path / "storage").mkdir()
    return LocalModelStorage(tmp_path / "storage"), ExecutionContext(GraphSchema({}), "m")


def test_the_exported_intent_model_predicts_in_rasa_what_it_did_in_training(
    intent_run: Path, tmp_path: Path
) -> None:
    storage, context = component_context(tmp_path)
    config = {
        **TransformerIntentClassifier.get_default_config(),
        "classifier_path": str(intent_run / "model"),
        "device": "cpu",
        "quantize": "none",  # exactly the float32 model the report scored
    }
    trained = TransformerIntentClassifier.create(config, storage, Resource("intent"), context)
    data = TrainingData(
        [Message.build("where is my order", "order_status"), Message.build("hi", "greet")]
    )
    trained.train(data)  # adopts the directory and stores it in Rasa's model storage
    loaded = TransformerIntentClassifier.load(config, storage, Resource("intent"), context)
    rows = predictions(intent_run)
    messages = loaded.process([Message.build(r["text"]) for r in rows])
    threshold = json.loads((intent_run / "report.json").read_text())["threshold"]
    below = 0
    for row, message in zip(rows, messages, strict=True):
        ranking = message.get("intent_ranking")
        if float(row["confidence"]) < threshold:
            below += 1
            assert message.get("intent") == {"name": "nlu_fallback", "confidence": threshold}
            ranking = ranking[1:]
        else:
            assert message.get("intent")["name"] == row["predicted"]
        assert ranking[0]["name"] == row["predicted"]
        assert ranking[0]["confidence"] == pytest.approx(float(row["confidence"]), abs=1e-5)
    assert below > 0  # the out-of-scope rows really went through the threshold

    ignoring = {**config, "use_stored_threshold": False}
    plain = TransformerIntentClassifier.load(ignoring, storage, Resource("intent"), context)
    names = [
        m.get("intent")["name"] for m in plain.process([Message.build(r["text"]) for r in rows])
    ]
    assert names == [r["predicted"] for r in rows]


def adopted_intent_classifier(
    model: Path, tmp_path: Path, **config: Any
) -> Tuple[TransformerIntentClassifier, TransformerIntentClassifier]:
    """The intent classifier adopting ``model`` in `rasa train`, and loaded back after."""
    storage, context = component_context(tmp_path)
    config = {
        **TransformerIntentClassifier.get_default_config(),
        "classifier_path": str(model),
        "device": "cpu",
        **config,
    }
    trained = TransformerIntentClassifier.create(config, storage, Resource("intent"), context)
    trained.train(TrainingData([Message.build("hi", "greet"), Message.build("refund", "refund")]))
    loaded = TransformerIntentClassifier.load(config, storage, Resource("intent"), context)
    return trained, loaded


def served_probabilities(classifier: TransformerIntentClassifier, texts: List[str]) -> np.ndarray:
    """Each message's probabilities over the classifier's intents, read from Rasa's ranking."""
    probs = np.zeros((len(texts), len(classifier.labels)))
    for i, message in enumerate(classifier.process([Message.build(t) for t in texts])):
        for entry in message.get("intent_ranking"):
            probs[i, classifier.labels.index(entry["name"])] = entry["confidence"]
    return probs


def test_an_adopted_intent_classifier_serves_the_int8_graph_the_report_scored(
    intent_run: Path, tmp_path: Path
) -> None:
    """On a CPU the bot answers with the int8 graph stored beside the classifier: the
    report's `served_int8` figures are what the bot serves."""
    from rasa_llm.models import calibration
    from rasa_llm.models.onnx_encoder_classifier import GRAPH_FILE, OnnxEncoderClassifier

    report = json.loads((intent_run / "report.json").read_text())
    int8 = report["served_int8"]
    meta = json.loads((intent_run / "model" / "rasa_llm.json").read_text())
    assert meta["int8"] == {k: int8[k] for k in INT8_META_KEYS}
    markdown = (intent_run / "report.md").read_text()
    assert "As a bot on a CPU serves it" in markdown
    # Fewer than 200 validation texts: the agreement also counts every training text.
    examples = report["examples"]
    assert int8["agreement_measured_on"] == "validation+training"
    assert int8["agreement_texts"] == (
        examples["train"] + examples["validation"] + examples["validation_out_of_scope"]
    )
    assert int8["agreement"] >= 0.99 and 0 <= int8["test_agreement"] <= 1
    assert "A bot with `quantize: auto` serves this graph" in markdown

    trained, loaded = adopted_intent_classifier(
        intent_run / "model", tmp_path, use_stored_threshold=False
    )
    graph = (intent_run / "model" / GRAPH_FILE).read_bytes()
    assert trained._graph == graph, "the stored graph is adopted, not exported again"
    assert isinstance(loaded._serving, OnnxEncoderClassifier) and loaded._serving.graph == graph

    rows = [r for r in predictions(intent_run) if r["label"] != "out_of_scope"]
    probs = served_probabilities(loaded, [r["text"] for r in rows])
    truth = np.asarray([loaded.labels.index(r["label"]) for r in rows])
    assert float((probs.argmax(axis=1) == truth).mean()) == pytest.approx(int8["accuracy"])
    ece = calibration.expected_calibration_error(probs, truth)
    assert ece == pytest.approx(int8["ece"], abs=1e-4)


@pytest.mark.parametrize("quantize", ["auto", "none"])
def test_the_int8_graph_answers_with_its_own_temperature_and_threshold(
    intent_run: Path, tmp_path: Path, quantize: str
) -> None:
    """The int8 calibration differs from float32's by little on this tiny model, so the
    test stores far apart values and checks which ones each serving path uses."""
    from rasa_llm.models import calibration
    from rasa_llm.models.inference import predict

    model = tmp_path / "model"
    shutil.copytree(intent_run / "model", model)
    meta = json.loads((model / "rasa_llm.json").read_text())
    meta.update(temperature=0.7, oos_threshold=0.5)
    meta["int8"] = {"temperature": 2.5, "oos_threshold": 0.8}
    (model / "rasa_llm.json").write_text(json.dumps(meta))
    _, loaded = adopted_intent_classifier(model, tmp_path, quantize=quantize)
    expected = meta["int8"] if quantize == "auto" else meta

    texts = [r["text"] for r in predictions(intent_run)]
    _, logits = predict(loaded._served(loaded.model), loaded.tokenizer, texts, 64, loaded.device)
    probs = calibration.softmax(logits, temperature=expected["temperature"])
    messages = loaded.process([Message.build(t) for t in texts])
    rejected = 0
    for message, row in zip(messages, probs, strict=True):
        ranking = message.get("intent_ranking")
        if row.max() < expected["oos_threshold"]:
            rejected += 1
            assert message.get("intent") == {
                "name": "nlu_fallback",
                "confidence": expected["oos_threshold"],
            }
            ranking = ranking[1:]
        assert ranking[0]["confidence"] == pytest.approx(row.max(), abs=1e-5)
    assert rejected > 0


def adopted_sentiment_classifier(
    tiny_encoder: Path, tmp_path: Path, quantize: str, agreement: Optional[float] = None
) -> Tuple[Path, Any, Any]:
    """`python -m training sentiment`'s model, adopted by the analyzer and loaded back:
    the model directory, the trained analyzer and the loaded one. ``agreement``
    rewrites the model's int8 agreement first."""
    train = write_csv(tmp_path / "train.csv", make_rows(SENTIMENT_WORDS, 20, seed=7))
    test = write_csv(tmp_path / "test.csv", make_rows(SENTIMENT_WORDS, 6, seed=8))
    out = tmp_path / "out"
    assert main(["sentiment", *tiny_args(tiny_encoder, out, train, test)]) == 0
    if agreement is not None:
        meta = json.loads((out / "model" / "rasa_llm.json").read_text())
        meta["int8"]["agreement"] = agreement
        (out / "model" / "rasa_llm.json").write_text(json.dumps(meta))
    storage, context = component_context(tmp_path)
    config = {
        **TransformerSentimentAnalyzer.get_default_config(),
        "classifier_path": str(out / "model"),
        "device": "cpu",
        "quantize": quantize,
    }
    analyzer = TransformerSentimentAnalyzer.create(config, storage, Resource("sent"), context)
    analyzer.train(TrainingData())  # no sentiment metadata needed: it adopts the classifier
    loaded = TransformerSentimentAnalyzer.load(config, storage, Resource("sent"), context)
    return out, analyzer, loaded


def test_sentiment_model_loads_in_the_sentiment_analyzer(
    tiny_encoder: Path, tmp_path: Path
) -> None:
    out, _, loaded = adopted_sentiment_classifier(tiny_encoder, tmp_path, "none")
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] == ["negative", "neutral", "positive"]
    assert report["accuracy"] > 0.5  # three classes: better than chance
    rows = predictions(out)
    messages = loaded.process([Message.build(r["text"]) for r in rows])
    for row, message in zip(rows, messages, strict=True):
        assert message.get("sentiment")["label"] == row["predicted"]
        assert message.get("sentiment")["score"] == pytest.approx(
            float(row["confidence"]), abs=1e-5
        )
        negative = [e for e in message.get("entities", []) if e["entity"] == "sentiment"]
        assert bool(negative) == (row["predicted"] == "negative")


def test_an_adopted_sentiment_classifier_serves_its_stored_int8_graph_on_the_cpu(
    tiny_encoder: Path, tmp_path: Path
) -> None:
    from rasa_llm.models.onnx_encoder_classifier import GRAPH_FILE, OnnxEncoderClassifier

    out, analyzer, loaded = adopted_sentiment_classifier(tiny_encoder, tmp_path, "auto")
    storage = analyzer._model_storage
    with storage.read_from(Resource("sent")) as directory:
        assert (Path(directory) / GRAPH_FILE).read_bytes() == analyzer._serving.graph
    assert isinstance(loaded._serving, OnnxEncoderClassifier)
    rows = predictions(out)
    messages = loaded.process([Message.build(r["text"]) for r in rows])
    # The report's predictions are the float32 model's; int8 may flip a near tie.
    labels = [m.get("sentiment")["label"] for m in messages]
    same = [label == row["predicted"] for label, row in zip(labels, rows, strict=True)]
    assert sum(same) >= 0.9 * len(rows)


def test_an_adopted_sentiment_classifier_whose_graph_changed_answers_serves_float32(
    tiny_encoder: Path, tmp_path: Path
) -> None:
    from rasa_llm.models.onnx_encoder_classifier import GRAPH_FILE

    out, analyzer, loaded = adopted_sentiment_classifier(tiny_encoder, tmp_path, "auto", 0.9)
    assert loaded._serving is loaded.classifier[0]
    rows = predictions(out)
    messages = loaded.process([Message.build(r["text"]) for r in rows])
    # Float32 answers exactly as the report's predictions.
    for row, message in zip(rows, messages, strict=True):
        assert message.get("sentiment")["label"] == row["predicted"]
    # The graph stays in the bot's model, for quantize: int8.
    with analyzer._model_storage.read_from(Resource("sent")) as directory:
        stored = (Path(directory) / GRAPH_FILE).read_bytes()
    assert stored == (out / "model" / GRAPH_FILE).read_bytes()


def test_sentiment_analyzer_refuses_an_intent_model(intent_run: Path, tmp_path: Path) -> None:
    from rasa_llm.errors import ModelLoadError

    storage, context = component_context(tmp_path)
    config = {
        **TransformerSentimentAnalyzer.get_default_config(),
        "classifier_path": str(intent_run / "model"),
    }
    analyzer = TransformerSentimentAnalyzer.create(config, storage, Resource("sent"), context)
    with pytest.raises(ModelLoadError, match="holds a 'intent_classifier'"):
        analyzer.train(TrainingData())


def run_failing(capsys: pytest.CaptureFixture[str], argv: List[str]) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_input_errors_are_one_line_with_a_fix(
    tiny_encoder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows: List[Tuple[str, str]] = make_rows(CLASS_WORDS, 5, seed=1)
    train = write_csv(tmp_path / "train.csv", [r for r in rows if r[1] != "refund"])
    test = write_csv(tmp_path / "test.csv", rows)
    out = tmp_path / "out"
    args: List[Any] = tiny_args(tiny_encoder, out, train, test)

    err = run_failing(capsys, ["intent", *args])
    assert "labels ['refund'] occur in TEST but never in TRAIN" in err and "Fix:" in err
    assert "Traceback" not in err

    err = run_failing(capsys, ["intent", *args, "--oos-label", "nothing_like_it"])
    assert "no row has the out-of-scope label 'nothing_like_it'" in err

    err = run_failing(capsys, ["sentiment", *tiny_args(tiny_encoder, out, test, test)])
    assert "sentiment labels must be among" in err

    whole = tiny_args(tmp_path / "no-such-model", out, test, test, "--oos-label", "out_of_scope")
    err = run_failing(capsys, ["intent", *whole])
    assert "Cannot load the model" in err and str(tmp_path / "no-such-model") in err


def test_few_shot_trains_on_n_per_class(tiny_encoder: Path, tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", make_rows(CLASS_WORDS, 20, seed=1))
    test = write_csv(tmp_path / "test.csv", make_rows(CLASS_WORDS, 4, seed=2))
    out = tmp_path / "out"
    args = tiny_args(tiny_encoder, out, train, test, "--oos-label", "out_of_scope")
    assert main(["intent", *args, "--per-class", "5", "--epochs", "1"]) == 0
    examples = json.loads((out / "report.json").read_text())["examples"]
    assert examples["train"] + examples["validation"] == 3 * 5
    assert examples["validation_out_of_scope"] == 20  # out-of-scope rows are not sampled
    assert np.isfinite(json.loads((out / "report.json").read_text())["accuracy"])


@pytest.mark.parametrize("groups", [None, "0", "3"])
def test_length_groups_reach_the_loop_and_the_report(
    tiny_encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, groups: Optional[str]
) -> None:
    from rasa_llm.models import fine_tuning

    seen: List[int] = []
    real_loop = fine_tuning.train_loop

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[4].length_groups)  # the LoopSettings
        return real_loop(*args, **kwargs)

    monkeypatch.setattr(fine_tuning, "train_loop", spy)
    train = write_csv(tmp_path / "train.csv", make_rows(CLASS_WORDS, 6, seed=1))
    test = write_csv(tmp_path / "test.csv", make_rows(CLASS_WORDS, 2, seed=2))
    out = tmp_path / "out"
    flags = [] if groups is None else ["--length-groups", groups]
    args = tiny_args(tiny_encoder, out, train, test, "--epochs", "1", *flags)
    assert main(["intent", *args]) == 0
    expected = 50 if groups is None else int(groups)
    assert seen == [expected]
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["length_groups"] == expected


def test_a_negative_length_group_is_refused(
    tiny_encoder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = tiny_args(tiny_encoder, tmp_path / "out", tmp_path / "a.csv", tmp_path / "b.csv")
    with pytest.raises(SystemExit) as exited:
        main(["intent", *args, "--length-groups", "-1"])
    assert exited.value.code == 2
    assert "--length-groups: must be 0 or more" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, key, value",
    [
        (None, "label_smoothing", 0.0),
        ("--label-smoothing", "label_smoothing", 0.1),
        (None, "rdrop_weight", 0.0),
        ("--rdrop", "rdrop_weight", 1.5),
    ],
)
def test_loss_flags_reach_the_fine_tuning_and_the_report(
    tiny_encoder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flag: Optional[str],
    key: str,
    value: float,
) -> None:
    from rasa_llm.models import fine_tuning

    seen: List[float] = []
    real_fine_tune = fine_tuning.fine_tune

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(args[6], key))  # the FineTuneSettings
        return real_fine_tune(*args, **kwargs)

    monkeypatch.setattr(fine_tuning, "fine_tune", spy)
    train = write_csv(tmp_path / "train.csv", make_rows(CLASS_WORDS, 6, seed=1))
    test = write_csv(tmp_path / "test.csv", make_rows(CLASS_WORDS, 2, seed=2))
    out = tmp_path / "out"
    flags = [] if flag is None else [flag, str(value)]
    assert (
        main(["intent", *tiny_args(tiny_encoder, out, train, test, "--epochs", "1", *flags)]) == 0
    )
    assert seen == [value]
    report = json.loads((out / "report.json").read_text())
    assert report["settings"][key] == value


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--label-smoothing", "1", "must be in [0, 1)"),
        ("--rdrop", "-1", "must be 0 or more"),
        ("--rdrop", "nan", "must be 0 or more"),
    ],
)
def test_out_of_range_loss_flags_are_refused(
    tiny_encoder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    value: str,
    message: str,
) -> None:
    args = tiny_args(tiny_encoder, tmp_path / "out", tmp_path / "a.csv", tmp_path / "b.csv")
    with pytest.raises(SystemExit) as exited:
        main(["intent", *args, flag, value])
    assert exited.value.code == 2
    assert f"{flag}: {message}" in capsys.readouterr().err


def test_a_test_file_without_out_of_scope_rows_still_stores_the_threshold(
    tiny_encoder: Path, tmp_path: Path
) -> None:
    train = write_csv(tmp_path / "train.csv", make_rows(CLASS_WORDS, 10, seed=1))
    rows = [r for r in make_rows(CLASS_WORDS, 4, seed=2) if r[1] != "out_of_scope"]
    test = write_csv(tmp_path / "test.csv", rows)
    out = tmp_path / "out"
    args = tiny_args(tiny_encoder, out, train, test, "--oos-label", "out_of_scope")
    assert main(["intent", *args, "--epochs", "1"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert "oos_recall" not in report
    meta = json.loads((out / "model" / "rasa_llm.json").read_text())
    assert meta["oos_threshold"] == report["threshold"]


def test_oos_train_fraction_trains_on_part_of_the_out_of_scope_rows(
    tiny_encoder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = write_csv(tmp_path / "train.csv", make_rows(CLASS_WORDS, 20, seed=1))
    test = write_csv(tmp_path / "test.csv", make_rows(CLASS_WORDS, 4, seed=2))
    out = tmp_path / "out"
    args = tiny_args(tiny_encoder, out, train, test, "--oos-label", "out_of_scope")
    assert main(["intent", *args, "--epochs", "1", "--oos-train-fraction", "0.25"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["examples"]["train_out_of_scope"] == 5
    assert report["examples"]["validation_out_of_scope"] == 15
    assert report["oos_train_fraction"] == 0.25

    err = run_failing(capsys, ["intent", *args, "--oos-train-fraction", "0.99"])
    assert "leaves none of its 20 out-of-scope rows to choose the threshold" in err

    no_label = tiny_args(tiny_encoder, out, train, test)
    err = run_failing(capsys, ["intent", *no_label, "--oos-train-fraction", "0.5"])
    assert "no --oos-label (or --hold-out-labels) names them" in err
