"""The bot's training and test data keep the promises bot/README.md makes about them."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Dict, List, Set

import pytest
from rasa.shared.core.constants import DEFAULT_INTENTS
from rasa.shared.core.domain import Domain
from rasa.shared.nlu.training_data.loading import load_data
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa.shared.utils.io import read_yaml_file

BOT = Path(__file__).resolve().parents[2] / "bot"
# Intents whose examples are few by nature: a file arriving.
FEW_EXAMPLES = {"send_attachment": 20}
MIN_EXAMPLES = 40
# Requests: each needs upset examples, so the sentiment analyzer learns anger about
# every topic, not only in complaints.
REQUESTS = [
    "order_status",
    "cancel_order",
    "change_address",
    "delivery_problem",
    "return_item",
    "refund_status",
    "payment_problem",
    "request_invoice",
    "account_access",
    "reset_password",
    "close_account",
    "lost_card",
    "request_human",
    "complain",
]


def _normalised(text: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]*)\]\{[^}]*\}", r"\1", text)
    return " ".join(text.lower().split())


@pytest.fixture(scope="module")
def train() -> TrainingData:
    return load_data(str(BOT / "data" / "nlu.yml"))


@pytest.fixture(scope="module")
def held_out() -> TrainingData:
    return load_data(str(BOT / "tests" / "nlu_test.yml"))


def _sentiment_of(path: Path) -> Dict[str, Counter]:
    """Per intent, how many examples each sentiment block of the file labels."""
    counts: Dict[str, Counter] = {}
    for block in read_yaml_file(path)["nlu"]:
        if "intent" in block:
            label = (block.get("metadata") or {}).get("sentiment")
            examples = [x for x in block["examples"].splitlines() if x.strip().startswith("- ")]
            counts.setdefault(block["intent"], Counter())[label] += len(examples)
    return counts


def test_every_intent_has_enough_varied_examples(train: TrainingData):
    domain = Domain.load(str(BOT / "domain.yml"))
    counts = Counter(m.get("intent") for m in train.intent_examples)
    short = {
        intent: counts[intent]
        for intent in domain.intents
        if intent not in DEFAULT_INTENTS and counts[intent] < FEW_EXAMPLES.get(intent, MIN_EXAMPLES)
    }
    assert not short, f"intents with too few examples in data/nlu.yml: {short}"
    assert set(counts) <= set(domain.intents), set(counts) - set(domain.intents)


def test_every_example_is_labelled_with_a_sentiment_and_requests_have_upset_ones():
    counts = _sentiment_of(BOT / "data" / "nlu.yml")
    unlabelled = {i: c[None] for i, c in counts.items() if c[None]}
    assert not unlabelled, f"blocks without metadata: sentiment: {unlabelled}"
    few_upset = {i: counts[i]["negative"] for i in REQUESTS if counts[i]["negative"] < 10}
    assert not few_upset, f"requests with fewer than 10 negative examples: {few_upset}"
    total = sum(counts.values(), Counter())
    assert min(total["negative"], total["neutral"], total["positive"]) >= 100, total


def test_held_out_examples_are_not_in_the_training_data(
    train: TrainingData, held_out: TrainingData
):
    seen = {_normalised(m.get("text")) for m in train.intent_examples}
    again = [m.get("text") for m in held_out.intent_examples if _normalised(m.get("text")) in seen]
    assert not again, again
    per_intent = Counter(m.get("intent") for m in held_out.intent_examples)
    assert min(per_intent.values()) >= 8, per_intent


def _test_stories() -> List[dict]:
    return read_yaml_file(BOT / "tests" / "test_stories.yml")["stories"]


def test_at_least_40_test_conversations_cover_what_the_issue_asks():
    stories = _test_stories()
    assert len(stories) >= 40
    steps = [[list(step.items())[0] for step in story["steps"]] for story in stories]

    def count(found) -> int:
        return sum(1 for story in steps if found(story))

    def has(story, key: str, value: str) -> bool:
        return (key, value) in story

    forms = {f"{name}" for name in read_yaml_file(BOT / "domain.yml")["forms"]}
    # A happy path for every form, and the interruptions, switches and hand-offs.
    used_forms: Set[str] = {v for story in steps for k, v in story if k == "active_loop"}
    assert forms <= used_forms, forms - used_forms
    assert count(lambda s: has(s, "action", "action_deactivate_loop")) >= 1
    interrupted = [
        s
        for s in steps
        if any(
            k == "action" and v.startswith(("utter_iamabot", "utter_chitchat", "utter_hours"))
            for k, v in s
        )
        and any(k == "active_loop" for k, v in s)
    ]
    assert len(interrupted) >= 3
    switched = [
        s for s in steps if len({v for k, v in s if k == "active_loop" and v is not None}) >= 2
    ]
    assert len(switched) >= 3
    assert count(lambda s: has(s, "action", "action_handoff")) >= 4
    assert count(lambda s: has(s, "action", "utter_offer_human")) >= 2
    assert count(lambda s: has(s, "action", "action_generative_fallback")) >= 3
    assert count(lambda s: has(s, "action", "utter_iamabot")) >= 2


def test_test_conversations_use_new_sentences(train: TrainingData, held_out: TrainingData):
    known = {
        _normalised(m.get("text")) for m in [*train.intent_examples, *held_out.intent_examples]
    }
    reused = []
    for story in _test_stories():
        for step in story["steps"]:
            text = _normalised(step.get("user", ""))
            # Bare answers (an order number, an email address, a name) are what any
            # customer types; a sentence must be new.
            if len(text.split()) >= 4 and text in known:
                reused.append(text)
    assert not reused, reused
