"""`python -m training intent --soup DIR ...`: runs of one recipe averaged into one model.

Three tiny runs differ only in --seed and share --split-seed; the soup must keep the
runs the greedy recipe keeps on their common validation rows, store exactly the mean of
their weights, and refuse runs it cannot fairly choose between.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch

from rasa_llm.models.encoder_classifier import EncoderClassifier
from rasa_llm.models.inference import predict
from rasa_llm.models.model_files import load_classifier
from tests.training.conftest import CLASS_WORDS, make_rows, tiny_args, write_csv
from training.classifier_data import prepare
from training.cli import main, parse_arguments
from training.soup import average, greedy

SPLIT = ["--split-seed", "5"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path) -> Dict[str, Path]:
    """TRAIN/TEST and three short runs (seeds 1, 2, 3) that hold out the same rows."""
    folder = tmp_path_factory.mktemp("soup")
    train = write_csv(folder / "train.csv", make_rows(CLASS_WORDS, 20, seed=1))
    test = write_csv(folder / "test.csv", make_rows(CLASS_WORDS, 8, seed=2))
    paths = {"train": train, "test": test, "folder": folder}
    for seed in (1, 2, 3):
        out = folder / f"run{seed}"
        flags = tiny_args(tiny_encoder, out, train, test, "--oos-label", "out_of_scope")
        # Run 3's learning rates wreck its encoder: averaging it in lowers validation
        # accuracy, so a greedy soup must leave it out.
        wreck = ["--lr", "0.3", "--head-lr", "0.3"] if seed == 3 else []
        assert main(["intent", *flags, "--epochs", "2", "--seed", str(seed), *SPLIT, *wreck]) == 0
        paths[f"run{seed}"] = out
    return paths


def soup_flags(tiny_encoder: Path, runs: Dict[str, Path], out: Path, *dirs: Path) -> List[str]:
    flags = tiny_args(
        tiny_encoder, out, runs["train"], runs["test"], "--oos-label", "out_of_scope", *SPLIT
    )
    return [*flags, "--soup", *(str(d) for d in dirs)]


def test_greedy_keeps_the_best_run_then_each_run_that_does_not_hurt() -> None:
    averages = {(2, 0): 0.80, (2, 0, 1): 0.70, (2, 0, 3): 0.80}
    kept, steps = greedy([0.75, 0.72, 0.78, 0.60], lambda ids: averages[tuple(ids)])
    assert kept == [2, 0, 3]  # 0 raised it, 1 lowered it, 3 tied (ties are kept)
    assert [s["kept"] for s in steps] == [True, False, True]
    assert [s["added"] for s in steps] == [0, 1, 3]


def test_the_average_is_the_mean_of_the_floating_point_weights(runs: Dict[str, Path]) -> None:
    models = [load_classifier(runs[f"run{s}"] / "model", 0.1)[0] for s in (1, 2)]
    mean = average(models).state_dict()
    first, second = (m.state_dict() for m in models)
    for key in first:
        if first[key].is_floating_point():
            assert torch.allclose(mean[key], (first[key] + second[key]) / 2, atol=1e-6), key
        else:
            assert torch.equal(mean[key], first[key]), key
    assert not torch.equal(first["head.weight"], second["head.weight"])  # seeds differ


def test_runs_with_one_split_seed_hold_out_the_same_rows(runs: Dict[str, Path]) -> None:
    splits = [
        json.loads((runs[f"run{s}"] / "model" / "rasa_llm.json").read_text())["split"]
        for s in (1, 2, 3)
    ]
    assert splits[0]["seed"] == 5 and splits[0]["validation_rows"] > 0
    assert all(s == splits[0] for s in splits)


def test_the_soup_stores_the_average_of_the_runs_greedy_keeps(
    runs: Dict[str, Path], tiny_encoder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "soup"
    dirs = [runs["run1"], runs["run2"] / "model", runs["run3"]]  # OUT or OUT/model
    flags = soup_flags(tiny_encoder, runs, out, *dirs)
    assert main(["intent", *flags]) == 0
    report = json.loads((out / "report.json").read_text())
    soup = report["soup"]

    # The greedy choice, recomputed here on the validation rows the run itself drew.
    data = prepare(parse_arguments(["intent", *flags]))
    truth = np.asarray([data.labels.index(x) for x in data.validation.labels])
    loaded = [load_classifier(runs[f"run{s}"] / "model", 0.1) for s in (1, 2, 3)]
    models, run_tokenizer = [x[0] for x in loaded], loaded[0][1]
    cpu = torch.device("cpu")

    def accuracy(model: EncoderClassifier) -> float:
        logits = predict(model, run_tokenizer, data.validation.texts, 64, cpu)[1]
        return float((logits.argmax(axis=1) == truth).mean())

    own = [accuracy(m) for m in models]
    assert [x["validation_accuracy"] for x in soup["ingredients"]] == pytest.approx(own)
    expected, _ = greedy(own, lambda ids: accuracy(average([models[i] for i in ids])))
    assert [i for i, x in enumerate(soup["ingredients"]) if x["kept"]] == sorted(expected)
    assert sorted(expected) == [0, 1]  # the wrecked run is left out

    # What is stored is that average, and it answers as the report says.
    stored, tokenizer, meta = load_classifier(out / "model", 0.1)
    want = average([models[i] for i in expected]).state_dict()
    for key, value in stored.state_dict().items():
        assert torch.allclose(value, want[key], atol=1e-6), key
    assert soup["validation_accuracy"] == pytest.approx(accuracy(stored))
    assert meta["split"] == report_split(runs["run1"])
    assert meta["trained_by"] == "python -m training intent --soup"
    logits = predict(stored, tokenizer, data.test.texts, 64, cpu)[1]
    rows = (out / "predictions.csv").read_text().splitlines()[1:]
    assert [r.rsplit(",", 2)[1] for r in rows] == [data.labels[i] for i in logits.argmax(axis=1)]

    # The training time is what the model cost: its runs' time and the averaging.
    run_seconds = sum(x["train_seconds"] for x in soup["ingredients"])
    assert run_seconds > 0
    assert report["train_seconds"] == pytest.approx(run_seconds + soup["seconds"], abs=0.2)
    assert 0 <= soup["ensemble_test_accuracy"] <= 1
    assert all(0 <= x["test_accuracy"] <= 1 for x in soup["ingredients"])
    markdown = (out / "report.md").read_text()
    assert "## Soup" in markdown and str(runs["run3"] / "model") in markdown


def report_split(run: Path) -> Dict[str, object]:
    return json.loads((run / "model" / "rasa_llm.json").read_text())["split"]


def test_uniform_soup_averages_every_run_without_a_validation_part(
    runs: Dict[str, Path], tiny_encoder: Path, tmp_path: Path
) -> None:
    # Few-shot runs have no validation part: only the uniform average is possible.
    folder = tmp_path / "fewshot"
    common = ["--oos-label", "out_of_scope", "--validation-fraction", "0", "--per-class", "6"]
    dirs = []
    for seed in (1, 2):
        out = folder / f"run{seed}"
        flags = tiny_args(tiny_encoder, out, runs["train"], runs["test"], *common)
        assert main(["intent", *flags, "--epochs", "1", "--seed", str(seed), *SPLIT]) == 0
        dirs.append(out)
    flags = tiny_args(tiny_encoder, folder / "soup", runs["train"], runs["test"], *common, *SPLIT)
    assert main(["intent", *flags, "--soup", *map(str, dirs), "--soup-method", "uniform"]) == 0
    soup = json.loads((folder / "soup" / "report.json").read_text())["soup"]
    assert [x["kept"] for x in soup["ingredients"]] == [True, True]
    assert soup["method"] == "uniform" and "validation_accuracy" not in soup
    stored = load_classifier(folder / "soup" / "model", 0.1)[0].state_dict()
    want = average([load_classifier(d / "model", 0.1)[0] for d in dirs]).state_dict()
    assert all(torch.allclose(stored[k], want[k], atol=1e-6) for k in want)


def run_failing(capsys: pytest.CaptureFixture[str], argv: List[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Fix:" in err and "Traceback" not in err
    return err


def test_runs_that_cannot_share_a_soup_are_refused_with_a_fix(
    runs: Dict[str, Path],
    tiny_encoder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "soup"
    one, two = runs["run1"], runs["run2"]

    err = run_failing(capsys, ["intent", *soup_flags(tiny_encoder, runs, out, one)])
    assert "it names one run" in err

    # The soup's own split differs from the runs': their validation rows are not its.
    flags = soup_flags(tiny_encoder, runs, out, one, two) + ["--split-seed", "6"]
    err = run_failing(capsys, ["intent", *flags])
    assert "drew other training or validation rows (split seed 5" in err
    assert "--split-seed" in err

    # Few-shot samples of another split seed: no validation rows to tell them apart.
    few = ["--validation-fraction", "0", "--per-class", "6", "--soup-method", "uniform"]
    for seed in (1, 2):
        flags = tiny_args(tiny_encoder, tmp_path / f"few{seed}", runs["train"], runs["test"])
        assert main(["intent", *flags, "--epochs", "1", *few, "--split-seed", str(seed)]) == 0
    flags = tiny_args(tiny_encoder, out, runs["train"], runs["test"], *few, "--split-seed", "1")
    err = run_failing(capsys, ["intent", *flags, "--soup", f"{tmp_path}/few1", f"{tmp_path}/few2"])
    assert "split seed 2, --per-class 6, 0 validation rows" in err

    # A model directory without the split record (rasa train's, or an older run's).
    old = tmp_path / "old"
    shutil.copytree(two / "model", old)
    meta = json.loads((old / "rasa_llm.json").read_text())
    del meta["split"]
    (old / "rasa_llm.json").write_text(json.dumps(meta))
    err = run_failing(capsys, ["intent", *soup_flags(tiny_encoder, runs, out, one, old)])
    assert "does not record which validation rows it held out" in err and str(old) in err

    # Another label set (no out-of-scope label: it becomes a class).
    flags = tiny_args(tiny_encoder, out, runs["train"], runs["test"], *SPLIT)
    err = run_failing(capsys, ["intent", *flags, "--soup", str(one), str(two)])
    assert "its labels are not the labels of TRAIN" in err

    # Greedy needs validation rows.
    flags = soup_flags(tiny_encoder, runs, out, one, two) + ["--validation-fraction", "0"]
    err = run_failing(capsys, ["intent", *flags])
    assert "use --soup-method uniform" in err

    err = run_failing(capsys, ["intent", *soup_flags(tiny_encoder, runs, out, one, tmp_path)])
    assert str(tmp_path) in err
