"""The question-routing benchmark's scoring, and the data it scores (no model is loaded)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from bench.fallback_data import BenchDataError
from bench.fallback_detectors import find_any, normalise
from bench.question_routing import (
    RoutingQuestion,
    TaskRequest,
    load_routing,
    markdown,
    offered_a_task,
    score_question,
    score_request,
    started_form,
    summarise,
    turn_actions,
    turn_events,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "bench" / "data"
BOT = ROOT / "bot"
TOPICS = {
    "returns", "refunds", "payments", "orders", "delivery", "address", "cancellation",
    "account", "cards", "complaints",
}  # fmt: skip

POSTAGE = RoutingQuestion(
    "q1", "returns", "is return postage free", "returns_and_refunds.md#cost-of-return-shipping",
    ("free from anywhere in the UK",),
)  # fmt: skip
RETURN = TaskRequest("r1", "I want to return my lamp", "return_form")


def _events(*turn: Dict[str, Any]) -> List[Dict[str, Any]]:
    earlier = [
        {"event": "action", "name": "action_session_start"},
        {"event": "user", "text": "hi"},
        {"event": "action", "name": "utter_greet"},
        {"event": "active_loop", "name": "order_status_form"},  # an earlier turn's form
        {"event": "action", "name": "action_listen"},
    ]
    return [*earlier, {"event": "user", "text": "the question"}, *turn]


ANSWERED = _events(
    {"event": "action", "name": "action_generative_fallback"},
    {"event": "bot", "text": "Returning a Northwind order is free from anywhere in the UK."},
    {"event": "action", "name": "action_listen"},
)
FORM = _events(
    {"event": "action", "name": "return_form"},
    {"event": "active_loop", "name": "return_form"},
    {"event": "slot", "name": "requested_slot", "value": "order_number"},
    {"event": "action", "name": "action_listen"},
)


def test_the_last_turn_is_read_from_the_stored_events():
    assert turn_actions(turn_events(ANSWERED)) == ["action_generative_fallback"]
    assert started_form(turn_events(ANSWERED)) is None
    assert started_form(turn_events(FORM)) == "return_form"
    assert turn_events([]) == []


def test_a_question_is_correct_with_a_fact_and_no_form():
    answer = [
        {"text": "Returning a Northwind order is free from anywhere in the UK with the label."},
        {"text": "Would you like to start a return?", "buttons": [{"payload": "/return_item"}]},
    ]
    result = score_question(POSTAGE, answer, ANSWERED, seconds=2.5)
    assert result.correct and result.by_fallback and result.offered and result.form is None
    wrong = score_question(POSTAGE, [{"text": "Returns cost €6.95 from the EU."}], ANSWERED)
    assert not wrong.correct and not wrong.offered
    asked = [{"text": "Could you give me your 5-digit order number?"}]
    form = score_question(POSTAGE, asked, FORM)
    assert not form.correct and form.form == "return_form" and not form.by_fallback
    # A fact in a form's question does not make a started form a correct answer.
    sneaky = [{"text": "Return postage is free from anywhere in the UK. Your order number?"}]
    assert not score_question(POSTAGE, sneaky, FORM).correct


def test_an_offer_is_a_button_with_an_intent_payload_after_the_answer():
    answer = {"text": "Free in the UK."}
    offer = {"text": "Start one?", "buttons": [{"title": "Go", "payload": "/return_item"}]}
    assert offered_a_task([answer, offer])
    link = {"text": "x", "buttons": [{"title": "Site", "payload": "https://x"}]}
    assert not offered_a_task([answer, link])
    assert not offered_a_task([answer])
    # The scripted reply's own button (a person) is not an offer of the task.
    scripted = {"text": "Sorry.", "buttons": [{"title": "Person", "payload": "/request_human"}]}
    assert not offered_a_task([scripted])


def test_a_request_starts_its_task_in_its_own_turn():
    assert score_request(RETURN, [], FORM).started
    assert not score_request(RETURN, [], ANSWERED).started
    handoff = TaskRequest("r2", "a person please", "action_handoff")
    assert not score_request(handoff, [], FORM).started


def test_summary_and_table():
    results = [
        score_question(POSTAGE, [{"text": "Free from anywhere in the UK."}], ANSWERED),
        score_question(POSTAGE, [{"text": "Order number?"}], FORM),
    ]
    requests = [score_request(RETURN, [], FORM), score_request(RETURN, [], ANSWERED)]
    summary = summarise(results, requests)
    assert summary["answered_correctly"] == 0.5
    assert summary["wrongly_started_a_form"] == 0.5
    assert summary["requests_started_their_task"] == 0.5
    assert summary["by_topic"]["returns"]["questions"] == 2
    table = markdown(summary, label="after")
    assert "| questions answered correctly | 50.0 % |" in table
    assert "| requests that started their task | 50.0 % |" in table


def test_malformed_data_is_refused(tmp_path: Path):
    path = tmp_path / "routing.yml"
    question = {"id": "a", "topic": "returns", "text": "t", "source": "s", "facts": ["f"]}
    request = {"id": "b", "text": "t", "starts": "return_form"}
    for data, message in [
        ({"version": 2}, "version: 1"),
        ({"version": 1, "questions": [], "requests": [request]}, "non-empty list"),
        (
            {"version": 1, "questions": [{**question, "answer": 1}], "requests": [request]},
            "unknown",
        ),
        ({"version": 1, "questions": [{**question, "facts": "f"}], "requests": [request]}, "facts"),
        (
            {"version": 1, "questions": [question], "requests": [{**request, "id": "a"}]},
            "duplicate",
        ),
    ]:
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(BenchDataError, match=message):
            load_routing(path=path)


# ------------------------------------------------------------------ the shipped data


def _bot_texts() -> set:
    """Every line of the bot's training and test data, as the fallback eval's check reads it."""
    texts = set()
    for path in [*(BOT / "data").glob("*.yml"), *(BOT / "tests").glob("*.yml")]:
        for line in path.read_text().splitlines():
            line = re.sub(r"^\s*-\s*(?:user:\s*)?", "", line).strip().strip("|").strip()
            line = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line)
            if line:
                texts.add(normalise(line))
    return texts


def _other_bench_texts() -> set:
    texts = set()
    for name in ("fallback_eval.yml", "fallback_adversarial.yml"):
        data = yaml.safe_load((DATA / name).read_text())
        for items in data.values():
            if isinstance(items, list):
                texts.update(normalise(i["text"]) for i in items if isinstance(i, dict))
    return texts


def test_the_set_covers_every_topic_with_a_task_and_enough_requests():
    questions, requests = load_routing(path=DATA / "question_routing.yml")
    assert len(questions) >= 60 and len(requests) >= 20
    assert {q.topic for q in questions} == TOPICS
    texts = [normalise(x.text) for x in [*questions, *requests]]
    assert len(set(texts)) == len(texts)


def test_every_fact_is_in_the_section_it_names():
    from rasa_llm.fallback.knowledge_base import KnowledgeBase

    sections = {
        p.id: p.text for p in KnowledgeBase.from_directory(BOT / "knowledge" / "en").passages
    }
    questions, _ = load_routing(path=DATA / "question_routing.yml")
    for q in questions:
        assert q.source in sections, q.id
        assert find_any(sections[q.source], q.facts) == list(q.facts), q.id


def test_requests_name_a_form_or_action_of_the_domain():
    domain = yaml.safe_load((BOT / "domain.yml").read_text())
    known = set(domain["forms"]) | set(domain["actions"]) | set(domain["responses"])
    _, requests = load_routing(path=DATA / "question_routing.yml")
    assert {r.starts for r in requests} <= known


def test_the_set_is_unseen_by_the_bot_and_not_taken_from_the_fallback_eval():
    questions, requests = load_routing(path=DATA / "question_routing.yml")
    texts = {normalise(x.text) for x in [*questions, *requests]}
    assert not texts & _bot_texts()
    assert not texts & _other_bench_texts()


def test_the_bots_nlu_data_copies_no_benchmark_question():
    """The NLU no-copy check, for this set and the fallback's sets (bench/data/*.yml)."""
    questions, requests = load_routing(path=DATA / "question_routing.yml")
    bench = {normalise(x.text) for x in [*questions, *requests]} | _other_bench_texts()
    loose = {" ".join(re.sub(r"[^\w\s]", " ", t).split()) for t in bench}
    copied = [
        t
        for t in _bot_texts()
        if t in bench or " ".join(re.sub(r"[^\w\s]", " ", t).split()) in loose
    ]
    assert not copied, copied
