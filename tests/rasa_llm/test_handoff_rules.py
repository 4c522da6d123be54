from rasa_llm.handoff.handoff_rules import (
    REASON_ASKED,
    REASON_FALLBACK,
    REASON_NEGATIVE,
    HandoffRule,
    UserTurn,
)

RULE = HandoffRule()
NEG = [{"entity": "sentiment", "value": "negative"}]


def test_asking_for_a_person_hands_off_at_once():
    assert RULE.reason([UserTurn("request_human", False)]) == REASON_ASKED


def test_two_negative_turns_in_a_row_hand_off_but_not_one_or_broken_runs():
    assert RULE.reason([UserTurn("order_status", True)]) is None
    assert RULE.reason([UserTurn("order_status", True), UserTurn("complain", True)]) == (
        REASON_NEGATIVE
    )
    broken = [UserTurn("a", True), UserTurn("b", False), UserTurn("c", True)]
    assert RULE.reason(broken) is None


def test_second_fallback_in_a_row_hands_off():
    first = UserTurn("out_of_scope", False, answered_by_fallback=True)
    assert RULE.reason([first, UserTurn("nlu_fallback", False)]) == REASON_FALLBACK
    answered = UserTurn("order_status", False, answered_by_fallback=False)
    assert RULE.reason([first, answered, UserTurn("out_of_scope", False)]) is None
    assert RULE.reason([UserTurn("out_of_scope", False)]) is None


def test_an_answered_policy_question_is_not_a_failed_turn():
    question = UserTurn("ask_policy", False, answered_by_fallback=True)
    assert RULE.reason([question, UserTurn("nlu_fallback", False)]) is None
    assert RULE.reason([question, UserTurn("ask_policy", False)]) is None
    unclear = UserTurn("nlu_fallback", False, answered_by_fallback=True)
    assert RULE.reason([question, unclear, UserTurn("out_of_scope", False)]) == REASON_FALLBACK


def test_zero_turns_off_a_trigger():
    off = HandoffRule(negative_turns=0, fallback_turns=0)
    assert off.reason([UserTurn("a", True), UserTurn("b", True)]) is None


def _user(intent: str, entities=()) -> dict:
    return {"event": "user", "parse_data": {"intent": {"name": intent}, "entities": list(entities)}}


def _action(name: str) -> dict:
    return {"event": "action", "name": name}


def test_turns_from_json_events_restart_after_a_handoff_or_resume():
    events = [
        _action("action_listen"),
        _user("out_of_scope"),
        _action("action_generative_fallback"),
        _action("action_listen"),
        _user("complain", NEG),
        _action("action_handoff"),
        {"event": "pause"},
        _user("greet", NEG),
        {"event": "resume"},
        _action("action_listen"),
        _user("order_status", NEG),
        _action("utter_order_status"),
        _action("action_listen"),
        _user("out_of_scope"),
    ]
    turns = RULE.turns_from_events(events)
    assert turns == [UserTurn("order_status", True, False), UserTurn("out_of_scope", False, False)]
    assert RULE.reason(turns) is None
