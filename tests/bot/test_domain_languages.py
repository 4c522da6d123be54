"""Every response of bot/domain.yml speaks English and Chinese, and Rasa picks the one
the conversation speaks.

The domain is loaded by Rasa (``Domain.load``, with its schema validation) and each
response is put through Rasa's own ``ResponseVariationFilter`` and
``TemplatedNaturalLanguageGenerator``, for each language and each value that matters
of the other slots a response's conditions name (each value a condition names, empty,
and another filled value). Rasa picks at random among the matching conditioned
variations, and takes an unconditioned one only when none matches: so a variation in
the wrong language, or two that compete, shows up here as a pick in the wrong language.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from rasa.core.nlg.generator import ResponseVariationFilter
from rasa.core.nlg.response import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain

from .conftest import BOT, has_han

LANGUAGES = ("en", "zh")
Responses = Dict[str, List[Dict[str, Any]]]
Slots = Dict[str, Any]

# Placeholders a Chinese variation leaves out on purpose, and why.
LEFT_OUT = {
    ("utter_attachment_received", "attachment_kind"): (
        "the channels set it to an English word ('photo', 'voice note'); 附件 names any kind"
    ),
    ("utter_ask_email", "order_number"): (
        "a condition can match an empty slot but not a filled one, so a Chinese question "
        "with the number would also be picked when the number is empty"
    ),
}
# A filled value for a slot that conditions name, besides the values they name.
FILLED = {"bool": True, "text": "10023", "categorical": "neutral", "float": 1.0}
PLACEHOLDER = re.compile(r"{(\w+)}")
# What may be Latin in a Chinese text: placeholders, links, email addresses, and the
# app's and website's English labels, quoted in 「」 ("「Card > Freeze card」（冻结卡片）").
_NOT_PROSE = re.compile(r"{\w+}|https?://\S+|\S+@\S+|「[^」]*」")
_LATIN = re.compile(r"[A-Za-z]")


@pytest.fixture(scope="module")
def rasa_domain() -> Domain:
    return Domain.load(str(BOT / "domain.yml"))


def language_of(variation: Dict[str, Any]) -> str:
    """The language a variation is written in: Chinese if its text has Han characters."""
    return "zh" if has_han(variation.get("text", "")) else "en"


def chinese_enough(text: str) -> bool:
    """Han characters outnumber Latin letters once placeholders, links, addresses and
    quoted labels are set aside: a Chinese text may name Northwind or DPD, but not be
    English.
    """
    prose = _NOT_PROSE.sub("", text)
    return len(re.findall("[\u3400-\u9fff]", prose)) > len(_LATIN.findall(prose))


def slot_cases(
    variations: List[Dict[str, Any]], slot_types: Dict[str, str], language: str
) -> Iterator[Slots]:
    """The filled slots to try a response with: ``language`` and, for each other slot its
    conditions name, every value named, empty, and one more filled value.
    """
    values: Dict[str, List[Any]] = {}
    for variation in variations:
        for condition in variation.get("condition") or []:
            if condition["name"] != "language":
                values.setdefault(condition["name"], [None]).append(condition["value"])
    for name, named in values.items():
        filled = FILLED.get(slot_types.get(name, "text"), "x")
        values[name] = list(dict.fromkeys([*named, filled]))
    names = sorted(values)
    for combination in itertools.product(*(values[name] for name in names)):
        yield {"language": language, **dict(zip(names, combination, strict=True))}


def picks(responses: Responses, name: str, slots: Slots) -> List[Dict[str, Any]]:
    """The variations Rasa chooses among for response ``name`` with these filled slots."""
    return ResponseVariationFilter(responses).responses_for_utter_action(name, "rest", slots)


def payloads(variations: List[Dict[str, Any]]) -> List[Tuple[str, ...]]:
    """Each variation's button payloads, in order."""
    return [tuple(b["payload"] for b in v.get("buttons", [])) for v in variations]


def placeholders(variations: List[Dict[str, Any]]) -> set:
    """The placeholders the variations' texts fill in."""
    return {p for v in variations for p in PLACEHOLDER.findall(v.get("text", ""))}


def language_problems(responses: Responses, slot_types: Dict[str, str]) -> List[str]:
    """What is wrong with the responses' languages, one line each; [] when nothing is."""
    problems = []
    for name, variations in responses.items():
        for chinese in (v for v in variations if language_of(v) == "zh"):
            titles = [b.get("title", "") for b in chinese.get("buttons", [])]
            if not chinese_enough(chinese.get("text", "")) or not all(map(has_han, titles)):
                problems.append(f"{name}: a Chinese variation is written in Latin letters")
        for en_slots in slot_cases(variations, slot_types, "en"):
            zh_slots = {**en_slots, "language": "zh"}
            chosen = {
                lang: picks(responses, name, s) for lang, s in (("en", en_slots), ("zh", zh_slots))
            }
            case = {k: v for k, v in en_slots.items() if k != "language"}
            for language, found in chosen.items():
                wrong = [v.get("text", "")[:30] for v in found if language_of(v) != language]
                if not found or wrong:
                    problems.append(
                        f"{name} {case}: in {language}, Rasa picks {wrong or 'nothing'}"
                    )
            en, zh = chosen["en"], chosen["zh"]
            if en and zh and set(payloads(zh)) != set(payloads(en)):
                problems.append(f"{name} {case}: the Chinese buttons' payloads differ")
            left_out = {p for p in placeholders(en) if (name, p) in LEFT_OUT}
            if en and zh and placeholders(zh) != placeholders(en) - left_out:
                problems.append(f"{name} {case}: the Chinese placeholders differ")
    return problems


def slot_types(domain: Domain) -> Dict[str, str]:
    return {slot.name: slot.type_name for slot in domain.slots}


def test_every_response_speaks_both_languages_and_rasa_picks_the_conversations(rasa_domain):
    assert len(rasa_domain.responses) > 80
    assert language_problems(rasa_domain.responses, slot_types(rasa_domain)) == []


def test_the_check_finds_a_missing_or_english_chinese_variation_and_a_competing_one():
    zh = [{"type": "slot", "name": "language", "value": "zh"}]
    en_only: Responses = {"utter_x": [{"text": "Hello"}]}
    assert language_problems(en_only, {}) == ["utter_x {}: in zh, Rasa picks ['Hello']"]
    latin: Responses = {
        "utter_x": [{"text": "Hello"}, {"text": "Hello 您好 Northwind", "condition": zh}]
    }
    assert "a Chinese variation is written in Latin letters" in language_problems(latin, {})[0]
    no_buttons: Responses = {
        "utter_x": [
            {"text": "Hi {email}", "buttons": [{"title": "Yes", "payload": "/affirm"}]},
            {"text": "您好", "condition": zh},
        ]
    }
    assert len(language_problems(no_buttons, {})) == 2  # neither buttons nor {email}
    # An English variation with another condition and no language condition competes
    # with the Chinese one when its condition holds.
    attached = [{"type": "slot", "name": "attachment_supported", "value": True}]
    zh_none = [*zh, {**attached[0], "value": None}]
    competing: Responses = {
        "utter_x": [
            {"text": "Hi"},
            {"text": "Got it", "condition": attached},
            {"text": "您好", "condition": zh_none},
            {"text": "收到", "condition": [*zh, *attached]},
        ]
    }
    found = language_problems(competing, {"attachment_supported": "bool"})
    assert found == ["utter_x {'attachment_supported': True}: in zh, Rasa picks ['Got it']"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_response_renders_whole_in_each_language(rasa_domain, language):
    """Filled in as Rasa fills it (slots, then the action's values), no placeholder is
    left and no empty slot shows as 'None'."""
    generator = TemplatedNaturalLanguageGenerator(rasa_domain.responses)
    types = slot_types(rasa_domain)
    for name, variations in rasa_domain.responses.items():
        values = {p: "10023" for p in placeholders(variations)}
        for slots in slot_cases(variations, types, language):
            for variation in picks(rasa_domain.responses, name, slots):
                filled = generator._fill_response(dict(variation), slots, **values)
                text = filled["text"]
                assert "{" not in text and "None" not in text, (name, slots, text)
                assert language_of(filled) == language, (name, slots, text)


def test_the_language_slot_starts_in_english_and_has_the_two_languages(rasa_domain):
    # A conversation always has a language, so some variation always matches.
    slot = next(s for s in rasa_domain.slots if s.name == "language")
    assert slot.initial_value == "en"
    assert sorted(v for v in slot.values if v != "__other__") == sorted(LANGUAGES)


def test_the_desks_handback_response_is_one_of_these(rasa_domain):
    # Said by the agent desk, not by an action: it is checked above with the others.
    from channels.agent_desk_config import get_default_config

    assert get_default_config()["handback_response"] in rasa_domain.responses
    credentials = (BOT / "credentials.yml").read_text()
    named = re.findall(r"handback_response:\s*(\w+)", credentials)
    assert all(name in rasa_domain.responses for name in named)
