"""Which of the bot's languages a message is in, on short, mixed and other messages."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from rasa_llm.errors import InvalidComponentConfigError
from rasa_llm.language import MessageLanguageDetector, message_language

BOTH = ("en", "zh")


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("我的订单到哪了？", "zh"),
        ("退款什么时候到账", "zh"),
        ("好", "zh"),  # one character, no Latin letters
        ("在吗", "zh"),
        # Mixed: Chinese carries the message when its characters outweigh the letters.
        ("我的order 48213呢", "zh"),
        ("帮我查下order status 48213", "zh"),
        ("refund 什么时候到", "zh"),
        # ...or when the English words alone cannot decide.
        ("我想退货 because it is broken", "zh"),
        ("where is my order", "en"),
        ("can you check 订单 48213", "en"),
        ("I want to return the 保温杯", "en"),
        # Nothing to tell by: the conversation keeps its language.
        ("48213", None),
        ("ok", None),
        ("refund status", None),
        ("😡😡", None),
        ("li.wei@example.com", None),
        # A language the bot does not speak gets its first one.
        ("¿dónde está mi pedido? no lo tengo", "en"),
        ("注文はどこですか", "en"),  # kana: Japanese, even with Han characters
    ],
)
def test_message_language(text: str, language: str | None) -> None:
    assert message_language(text, BOTH) == language


def test_the_first_language_is_the_one_for_languages_the_bot_does_not_speak() -> None:
    assert message_language("¿dónde está mi pedido? no lo tengo", ("zh", "en")) == "zh"
    assert message_language("我的订单到哪了", ("en",)) == "en"


def test_no_languages_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        message_language("hello there, where is my order", ())


def test_the_component_sets_language_in_the_parse_result_and_on_training_data() -> None:
    detector = MessageLanguageDetector.create({}, None, None, None)  # type: ignore[arg-type]
    messages = [Message(data={"text": t}) for t in ("我的订单到哪了", "where is my order", "48213")]
    detector.process(messages)
    assert [m.get("language") for m in messages] == ["zh", "en", None]
    assert messages[0].as_dict(only_output_properties=True)["language"] == "zh"
    training = TrainingData([Message(data={"text": "退款什么时候到账", "intent": "refund_status"})])
    detector.process_training_data(training)
    assert training.training_examples[0].get("language") == "zh"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"languages": []}, "at least one"),
        ({"languages": ["en", "fr"]}, "'fr'"),
        ({"languages": ["en", "en"]}, "twice"),
        ({"languages": "en"}, "must be"),
        ({"language": ["en"]}, "not a known key"),
    ],
)
def test_bad_config_is_refused_with_the_key(config: dict, message: str) -> None:
    with pytest.raises(InvalidComponentConfigError, match=message):
        MessageLanguageDetector.create(config, None, None, None)  # type: ignore[arg-type]
