"""The Chinese benchmarks' data conversion, splitting and scoring, without training.

Nothing here needs jieba or snownlp (``pip install .[bench]``): the steps that do import
them only when they run.
"""

import csv
from collections import Counter
from pathlib import Path

import pytest

from bench.chinese_benchmarks import (
    CATEGORIES,
    first_per_label,
    latency_summary,
    nlu_examples,
    nlu_yaml,
    our_config,
    per_group_accuracy,
    read_rows,
    scores,
    shopping_rows,
    stock_config,
    stratified_split,
    write_rows,
)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _csv(path: Path, header, rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_read_rows_strips_byte_order_marks_and_drops_empty_texts(tmp_path):
    path = _csv(
        tmp_path / "a.csv",
        ["text", "label"],
        [["\ufeff打开熊猫看书", "app"], ["  ", "chat"], [" 今天天气怎么样 ", "weather "]],
    )
    assert read_rows(path) == [("打开熊猫看书", "app"), ("今天天气怎么样", "weather")]


def test_write_rows_round_trips_through_read_rows(tmp_path):
    rows = [("好评，物流快", "positive"), ('有逗号,和"引号"', "negative")]
    assert read_rows(write_rows(tmp_path / "sub" / "b.csv", rows)) == rows


def test_first_per_label_keeps_file_order_and_at_most_n_of_each():
    rows = [("a1", "a"), ("a2", "a"), ("b1", "b"), ("a3", "a"), ("b2", "b")]
    assert first_per_label(rows, 2) == [("a1", "a"), ("a2", "a"), ("b1", "b"), ("b2", "b")]
    assert first_per_label(rows, None) == rows


def test_shopping_rows_map_labels_and_drop_empty_and_repeated_reviews(tmp_path):
    path = _csv(
        tmp_path / "shop.csv",
        ["cat", "label", "review"],
        [["书籍", "1", "\ufeff很好看"], ["书籍", "0", ""], ["水果", "0", "不新鲜"],
         ["水果", "1", "不新鲜"], ["酒店", "0", "房间小"]],
    )  # fmt: skip
    assert shopping_rows(path) == [
        ("书籍", "positive", "很好看"),
        ("水果", "negative", "不新鲜"),
        ("酒店", "negative", "房间小"),
    ]


def _shop(n_per_stratum: int):
    return [
        (cat, label, f"{cat}-{label}-{i}")
        for cat in ("书籍", "水果", "酒店")
        for label in ("positive", "negative")
        for i in range(n_per_stratum)
    ]


def test_stratified_split_is_disjoint_seeded_and_keeps_the_strata():
    rows = _shop(50)
    train, test = stratified_split(rows, train=60, test=30)
    assert (len(train), len(test)) == (60, 30)
    assert not {t for *_, t in train} & {t for *_, t in test}
    assert Counter((c, label) for c, label, _ in train) == Counter(
        {(c, label): 10 for c in ("书籍", "水果", "酒店") for label in ("positive", "negative")}
    )
    assert set(Counter((c, label) for c, label, _ in test).values()) == {5}
    assert stratified_split(rows, train=60, test=30) == (train, test)
    assert stratified_split(rows, train=60, test=30, seed=0) != (train, test)


def test_stratified_split_gives_the_rest_when_test_asks_for_more():
    train, test = stratified_split(_shop(5), train=12, test=1000)
    assert len(train) + len(test) == 30


def test_scores_and_per_group_accuracy():
    gold = ["positive", "positive", "negative", "negative"]
    predicted = ["positive", "negative", "negative", "negative"]
    assert scores(gold, predicted) == {
        "accuracy": 0.75,
        "macro_f1": pytest.approx(0.7333, abs=1e-4),
    }
    assert per_group_accuracy(["books", "books", "fruit", "fruit"], gold, predicted) == {
        "books": {"accuracy": 0.5, "n": 2},
        "fruit": {"accuracy": 1.0, "n": 2},
    }
    with pytest.raises(ValueError):
        per_group_accuracy(["books"], gold, predicted)


def test_nlu_yaml_round_trips_chinese_texts_and_labels(tmp_path):
    rows = [("明天北京飞上海的航班", "flight"), ("讲个笑话", "chat"), ("今天下雨吗", "weather")]
    path = tmp_path / "nlu.yml"
    path.write_text(nlu_yaml(rows), encoding="utf-8")
    assert sorted(nlu_examples(path)) == sorted(rows)


def test_nlu_examples_removes_entity_markup_from_the_bots_chinese_tests():
    examples = nlu_examples(
        Path(__file__).resolve().parents[2] / "bot" / "tests" / "nlu_test_zh.yml"
    )
    assert len(examples) > 100
    assert not [text for text, _ in examples if "](" in text]


def test_stock_config_is_jieba_with_character_ngrams_and_the_asked_epochs():
    config = stock_config(epochs=7)
    names = [c["name"] for c in config["pipeline"]]
    assert config["language"] == "zh"
    assert names[0] == "JiebaTokenizer"
    assert {"analyzer": "char", "min_ngram": 1, "max_ngram": 4}.items() <= next(
        c for c in config["pipeline"] if c.get("analyzer")
    ).items()
    assert next(c for c in config["pipeline"] if c["name"] == "DIETClassifier")["epochs"] == 7
    assert stock_config(epochs=100) != config


def test_our_config_is_the_bots_with_the_sentiment_analyzer_only_when_asked():
    def names(config):
        return [c["name"] for c in config["pipeline"]]

    with_sentiment = names(our_config(sentiment=True))
    without = names(our_config(sentiment=False))
    assert "rasa_llm.TransformerSentimentAnalyzer" in with_sentiment
    assert without == [n for n in with_sentiment if n != "rasa_llm.TransformerSentimentAnalyzer"]
    assert "rasa_llm.TransformerIntentClassifier" in without


def test_latency_summary():
    summary = latency_summary([1.0, 2.0, 3.0, 4.0, 100.0])
    assert summary["p50_ms"] == 3.0
    assert summary["mean_ms"] == 22.0
    assert summary["messages"] == 5
    assert 4.0 < summary["p95_ms"] < 100.0


@pytest.mark.skipif(not (DATA / "online_shopping_10_cats").is_dir(), reason="needs ../shared/data")
def test_the_real_shopping_split_has_every_category_and_no_shared_review():
    rows = shopping_rows(DATA / "online_shopping_10_cats" / "online_shopping_10_cats.csv")
    train, test = stratified_split(rows, train=3000, test=2000)
    assert {c for c, _, _ in train} == {c for c, _, _ in test} == set(CATEGORIES)
    assert not {t for *_, t in train} & {t for *_, t in test}
