from pathlib import Path
from typing import Any, Dict, List

import pytest
from rasa.core.constants import RULE_POLICY_PRIORITY
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ConversationPaused,
    ConversationResumed,
    Event,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from rasa_llm.errors import InvalidComponentConfigError
from rasa_llm.handoff.human_handoff_policy import HumanHandoffPolicy

DOMAIN = Domain.from_yaml(
    """
version: "3.1"
intents: [greet, order_status, complain, out_of_scope, nlu_fallback, request_human]
entities: [sentiment]
actions: [action_handoff, action_generative_fallback]
responses:
  utter_greet: [{text: hi}]
  utter_order_status: [{text: status}]
  utter_apologize: [{text: sorry}]
"""
)


def _policy(tmp_path: Path, **config: Any) -> HumanHandoffPolicy:
    merged: Dict[str, Any] = {**HumanHandoffPolicy.get_default_config(), **config}
    return HumanHandoffPolicy.create(
        merged,
        LocalModelStorage(tmp_path),
        Resource("handoff"),
        ExecutionContext(GraphSchema({}), "test"),
    )


def _user(intent: str, negative: bool = False) -> UserUttered:
    entities = [{"entity": "sentiment", "value": "negative"}] if negative else []
    return UserUttered("text", intent={"name": intent, "confidence": 1.0}, entities=entities)


def _tracker(*steps: Any) -> DialogueStateTracker:
    events: List[Event] = [ActionExecuted("action_listen")]
    for step in steps:
        if isinstance(step, str):
            events += [ActionExecuted(step), ActionExecuted("action_listen")]
        else:
            events.append(step)
    return DialogueStateTracker.from_events("someone", events)


def _predicted(policy: HumanHandoffPolicy, tracker: DialogueStateTracker) -> str | None:
    prediction = policy.predict_action_probabilities(tracker, DOMAIN)
    if prediction.max_confidence == 0:
        return None
    return DOMAIN.action_names_or_texts[prediction.max_confidence_index]


def test_second_negative_turn_predicts_the_handoff_above_the_rules(tmp_path: Path):
    policy = _policy(tmp_path)
    one = _tracker(_user("order_status", True))
    assert _predicted(policy, one) is None
    two = _tracker(_user("order_status", True), "utter_order_status", _user("greet", True))
    prediction = policy.predict_action_probabilities(two, DOMAIN)
    assert _predicted(policy, two) == "action_handoff"
    assert prediction.policy_priority > RULE_POLICY_PRIORITY


def test_after_the_handoff_the_bot_listens(tmp_path: Path):
    policy = _policy(tmp_path)
    two = _tracker(_user("order_status", True), "utter_order_status", _user("greet", True))
    two.update(ActionExecuted("action_handoff"))
    assert _predicted(policy, two) == "action_listen"
    # Any other action of the bot's turn is left to the other policies.
    other = _tracker(_user("order_status", True))
    other.update(ActionExecuted("utter_apologize"))
    assert _predicted(policy, other) is None


def test_second_fallback_in_a_row_predicts_the_handoff(tmp_path: Path):
    policy = _policy(tmp_path)
    tracker = _tracker(_user("out_of_scope"), "action_generative_fallback", _user("nlu_fallback"))
    assert _predicted(policy, tracker) == "action_handoff"
    answered = _tracker(
        _user("out_of_scope"),
        "action_generative_fallback",
        _user("order_status"),
        "utter_order_status",
        _user("out_of_scope"),
    )
    assert _predicted(policy, answered) is None


def test_only_right_after_a_customer_message(tmp_path: Path):
    policy = _policy(tmp_path)
    tracker = _tracker(_user("order_status", True), "utter_order_status", _user("greet", True))
    tracker.update(ActionExecuted("utter_apologize"))
    assert _predicted(policy, tracker) is None


def test_counting_restarts_after_a_handoff_and_a_resume(tmp_path: Path):
    policy = _policy(tmp_path)
    tracker = _tracker(
        _user("complain", True),
        "utter_apologize",
        _user("complain", True),
        "action_handoff",
        ConversationPaused(),
        ConversationResumed(),
        ActionExecuted("action_listen"),
        _user("order_status", True),
    )
    assert _predicted(policy, tracker) is None


def test_disabled_trigger_and_config_errors(tmp_path: Path):
    policy = _policy(tmp_path, negative_turns=0)
    two = _tracker(_user("order_status", True), "utter_order_status", _user("greet", True))
    assert _predicted(policy, two) is None
    with pytest.raises(InvalidComponentConfigError, match="negative_turn.*did you mean"):
        _policy(tmp_path, negative_turn=3)
    with pytest.raises(InvalidComponentConfigError, match="fallback_turns"):
        _policy(tmp_path, fallback_turns=-1)


def test_training_fails_when_the_domain_lacks_the_handoff_action(tmp_path: Path):
    policy = _policy(tmp_path, handoff_action="action_missing")
    with pytest.raises(InvalidComponentConfigError, match="not in the domain"):
        policy.train([], DOMAIN)
