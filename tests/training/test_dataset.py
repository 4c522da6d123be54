"""Reading labelled texts: every format the CLI promises, and clear errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.conftest import write_csv
from training.dataset import load_labelled, sample_per_class
from training.errors import TrainingInputError

NLU = """\
version: "3.1"
nlu:
- intent: order_status
  examples: |
    - where is my order [10023](order_number)
    - track my parcel
- intent: refund
  metadata:
    sentiment: negative
  examples:
  - text: |
      i want my money back
  - text: |
      refund this awful item
    metadata:
      sentiment: positive
"""


def test_csv_with_banking77_category_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "b.csv", [("card not here", "card_arrival")], ("text", "category"))
    data = load_labelled(path, "intent")
    assert data.texts == ["card not here"] and data.labels == ["card_arrival"]


def test_json_and_jsonl(tmp_path: Path) -> None:
    rows = [{"text": "hi", "label": "greet"}, {"text": "bye", "label": "goodbye"}]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    for name in ("a.json", "a.jsonl"):
        assert load_labelled(tmp_path / name, "intent").labels == ["greet", "goodbye"]


def test_rasa_yaml_gives_plain_texts_and_intents(tmp_path: Path) -> None:
    (tmp_path / "nlu.yml").write_text(NLU)
    data = load_labelled(tmp_path / "nlu.yml", "intent")
    assert data.texts[0] == "where is my order 10023"  # entity markup removed
    assert data.labels == ["order_status", "order_status", "refund", "refund"]


def test_rasa_yaml_sentiment_comes_from_metadata(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "nlu.yml").write_text(NLU)
    (tmp_path / "data" / "rules.yml").write_text('version: "3.1"\nrules: []\n')
    data = load_labelled(tmp_path / "data", "sentiment")  # a bot's data/ directory
    assert list(zip(data.texts, data.labels, strict=True)) == [
        ("i want my money back", "negative"),
        ("refund this awful item", "positive"),  # the example's label beats the block's
    ]


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("words,label\nhi,greet\n", ".csv", "no 'text' column (found: 'words', 'label')"),
        ("text,tag\nhi,greet\n", ".csv", "no label column (found: 'text', 'tag')"),
        ("text,label\nhi,greet\nhello,\n", ".csv", "row 3 has an empty 'label'"),
        ("text,label\n ,greet\n", ".csv", "row 2 has an empty 'text'"),
        ("text,label\n", ".csv", "holds no rows"),
        ('{"text": "hi"}', ".json", "not a list of objects"),
        ("[1, 2", ".json", "not valid JSON"),
        ("nlu:\n- intent: greet\n  examples: |\n", ".yml", "intent 'greet' has no examples"),
        ("stories: []\n", ".yml", "no Rasa NLU data"),
        ("hello", ".txt", "'.txt' is not a format"),
    ],
)
def test_bad_files_say_what_and_how_to_fix(
    tmp_path: Path, content: str, suffix: str, message: str
) -> None:
    path = tmp_path / f"data{suffix}"
    path.write_text(content)
    with pytest.raises(TrainingInputError, match="Fix:") as error:
        load_labelled(path, "intent")
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_a_binary_file_named_csv_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "model.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(TrainingInputError, match="not UTF-8 text"):
        load_labelled(path, "intent")


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TrainingInputError, match="does not exist"):
        load_labelled(tmp_path / "nope.csv", "intent")


def test_per_class_sampling_is_seeded_and_reports_short_labels(tmp_path: Path) -> None:
    rows = [(f"a{i}", "a") for i in range(20)] + [(f"b{i}", "b") for i in range(3)]
    data = load_labelled(write_csv(tmp_path / "t.csv", rows), "intent")
    first, short = sample_per_class(data, 5, seed=1)
    again, _ = sample_per_class(data, 5, seed=1)
    other, _ = sample_per_class(data, 5, seed=2)
    assert first.labels.count("a") == 5 and first.labels.count("b") == 3
    assert short == ["b"]
    assert first.texts == again.texts and first.texts != other.texts
