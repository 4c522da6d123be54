"""The Chinese fallback benchmark's data and scoring (no model is loaded)."""

import re
from dataclasses import asdict
from pathlib import Path

import pytest

from bench.fallback_data import EvalQuestion, load_questions
from bench.fallback_detectors import find_any, normalise
from bench.fallback_eval_zh import (
    Retrieved,
    SweepPoint,
    choose_min_relevance,
    choose_passage_relevance,
    hit_at,
    markdown,
    retrieved_row,
    sweep,
    sweep_point,
)
from rasa_llm.fallback.knowledge_base import KnowledgeBase

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "bench" / "data" / "fallback_eval_zh.yml"
KNOWLEDGE = ROOT / "bot" / "knowledge" / "zh"
_HAN = re.compile(r"[\u4e00-\u9fff]")


def _row(id_, answerable, ids, scores, source=None):
    return Retrieved(id_, answerable, source, tuple(ids), tuple(scores))


# Two answerable questions (one retrieved right, one wrong) and two unanswerable ones.
ROWS = [
    _row("a1", True, ["x#1", "x#2", "x#3"], [0.92, 0.85, 0.80], source="x#1"),
    _row("a2", True, ["x#2", "x#1", "x#3"], [0.88, 0.87, 0.80], source="x#1"),
    _row("u1", False, ["x#3", "x#1", "x#2"], [0.90, 0.70, 0.60]),
    _row("u2", False, ["x#2", "x#1", "x#3"], [0.80, 0.75, 0.70]),
]


# --------------------------------------------------------------------------- the data


def test_every_answerable_question_names_a_passage_that_holds_its_fact():
    passages = {p.id: p.text for p in KnowledgeBase.from_directory(KNOWLEDGE).passages}
    questions = load_questions(DATA)
    for q in questions:
        if not q.answerable:
            continue
        assert q.source in passages, f"{q.id}: no passage {q.source!r} in {KNOWLEDGE}"
        # The passage is what the customer gets, verbatim: it must state the fact.
        assert find_any(passages[q.source], q.must_contain_any), q.id


def test_the_set_is_chinese_half_answerable_without_duplicates():
    questions = load_questions(DATA)
    assert len(questions) >= 80
    assert sum(q.answerable for q in questions) * 2 == len(questions)
    texts = [normalise(q.text) for q in questions]
    assert len(set(texts)) == len(texts)
    assert all(_HAN.search(q.text) for q in questions)
    # Every file of the knowledge base is asked about.
    sources = {q.source.split("#")[0] for q in questions if q.source}
    assert sources == {p.name for p in KNOWLEDGE.glob("*.md")}


def test_no_question_is_copied_from_the_bots_training_data():
    said = set()
    for path in [*(ROOT / "bot" / "data").glob("*.yml"), *(ROOT / "bot" / "tests").glob("*.yml")]:
        for line in path.read_text(encoding="utf-8").splitlines():
            line = re.sub(r"^\s*-\s*(?:user:\s*)?", "", line).strip().strip("|").strip()
            if line:
                said.add(normalise(line))
    assert not {normalise(q.text) for q in load_questions(DATA)} & said


# --------------------------------------------------------------------------- scoring


def test_hit_at_k_counts_answerable_questions_only():
    assert hit_at(ROWS, 1) == 0.5
    assert hit_at(ROWS, 2) == 1.0
    assert hit_at([r for r in ROWS if not r.answerable], 1) == 0.0


def test_a_passage_is_sent_at_or_above_the_threshold():
    point = sweep_point(ROWS, 0.88)
    assert (point.right, point.wrong, point.unanswerable_sent) == (1, 1, 1)
    assert point.shares() == {"right": 0.5, "wrong": 0.5, "unanswerable_sent": 0.5}
    assert point.net == -1
    nothing = sweep_point(ROWS, 0.95)
    assert (nothing.right, nothing.wrong, nothing.unanswerable_sent, nothing.net) == (0, 0, 0, 0)


def test_the_chosen_threshold_has_the_most_right_less_misplaced_passages():
    points = sweep(ROWS, thresholds=[0.80, 0.85, 0.89, 0.91, 0.95])
    # 0.80: 1 - 1 - 2; 0.85: 1 - 1 - 1; 0.89: 1 - 0 - 1; 0.91: 1 - 0 - 0; 0.95: 0.
    assert [p.net for p in points] == [-2, -1, 0, 1, 0]
    assert choose_passage_relevance(points).threshold == 0.91


def test_a_tie_goes_to_the_higher_threshold():
    rows = [_row("a", True, ["x#1"], [0.9], source="x#1"), _row("u", False, ["x#1"], [0.7])]
    assert choose_passage_relevance(sweep(rows, thresholds=[0.6, 0.8, 0.85])).threshold == 0.85
    with pytest.raises(ValueError):
        choose_passage_relevance([])


def test_the_english_sweep_gives_the_english_threshold():
    # docs/decisions/fallback-thresholds.md: answered by a passage / off-topic passage,
    # 0.40: 50 / 17, 0.45: 49 / 8, 0.50: 40 / 4, 0.55: 30 / 2 (2 wrong passages each).
    english = [
        SweepPoint(t, 70, 70, right, 2, off, right)
        for t, right, off in ((0.40, 48, 17), (0.45, 47, 8), (0.50, 38, 4), (0.55, 28, 2))
    ]
    assert choose_passage_relevance(english).threshold == 0.45


def test_min_relevance_keeps_every_right_first_passage_and_stays_below_the_bar():
    assert choose_min_relevance(ROWS, 0.95) == 0.9  # the right first passage scored 0.92
    assert choose_min_relevance(ROWS, 0.86) == 0.86
    assert choose_min_relevance([r for r in ROWS if not r.answerable], 0.9) == 0.9


def test_a_row_notes_whether_the_first_passage_holds_the_fact():
    question = EvalQuestion("q", "退款几天", True, "a#1", ("5-10 个银行工作日",))
    texts = {"a#1": "借记卡 5–10 个银行工作日。", "b#1": "PayPal 1-2 个银行工作日。"}
    row = retrieved_row(question, [("b#1", 0.9), ("a#1", 0.8)], texts)
    assert (row.first_right, row.fact_in_first, row.ids) == (False, False, ("b#1", "a#1"))
    assert retrieved_row(question, [("a#1", 0.9)], texts).fact_in_first


def test_markdown_shows_every_setting_and_its_sweep():
    points = sweep(ROWS, thresholds=[0.45, 0.88, 0.89, 0.90, 0.91, 0.92])

    def result(name, chosen):
        return {
            "setting": {"name": name},
            "passages": 3,
            "hit_at_1": 0.5,
            "hit_at_3": 1.0,
            "passage_relevance": chosen.threshold,
            "min_relevance": 0.9,
            "chosen": {**asdict(chosen), "shares": chosen.shares()},
            "seconds_per_question": {"p50": 0.02, "p95": 0.03},
            "load_and_encode_s": 1.0,
            "encode_passages_s": 0.5,
            "conversion_s": None,
            "sweep": [{**asdict(p), "shares": p.shares()} for p in points],
        }

    never = sweep_point(ROWS, 0.99)
    text = markdown(
        {"settings": [result("e5", choose_passage_relevance(points)), result("MiniLM", never)]}
    )
    assert "| e5 | 0.50 | 1.00 | 0.920 (0.90) |" in text  # 0.91 and 0.92 tie: the higher
    assert "| **0.920** |" in text
    assert "none: no threshold sends a right passage" in text
    assert "| 0.450 |" in text  # MiniLM's sweep is shown around the English default
