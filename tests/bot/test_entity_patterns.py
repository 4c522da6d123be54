"""The bot's entity patterns (bot/data/nlu.yml) find order numbers, emails and mobile
numbers in Chinese and mixed text, through Rasa's own RegexEntityExtractor as the bot's
config sets it up."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import pytest
import yaml
from rasa.nlu.extractors.regex_entity_extractor import RegexEntityExtractor
from rasa.shared.nlu.training_data.loading import load_data
from rasa.shared.nlu.training_data.message import Message

BOT = Path(__file__).resolve().parents[2] / "bot"


@pytest.fixture(scope="module")
def extractor(tmp_path_factory: pytest.TempPathFactory) -> RegexEntityExtractor:
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource

    config = next(
        c
        for c in yaml.safe_load((BOT / "config.yml").read_text())["pipeline"]
        if c["name"] == "RegexEntityExtractor"
    )
    settings = {**RegexEntityExtractor.get_default_config(), **config}
    settings.pop("name")
    storage = LocalModelStorage(tmp_path_factory.mktemp("storage"))
    component = RegexEntityExtractor.create(
        settings,
        storage,
        Resource("regex"),
        None,  # type: ignore[arg-type]
    )
    # Rasa keeps only the patterns of entities annotated somewhere in the data (the
    # phone numbers are annotated in nlu_zh.yml), as `rasa train` does with bot/data.
    data = load_data(str(BOT / "data" / "nlu.yml")).merge(
        load_data(str(BOT / "data" / "nlu_zh.yml"))
    )
    component.train(data)
    return component


def _found(extractor: RegexEntityExtractor, text: str) -> Dict[str, List[str]]:
    message = Message(data={"text": text})
    extractor.process([message])
    found: Dict[str, List[str]] = {}
    for entity in message.get("entities", []):
        found.setdefault(entity["entity"], []).append(entity["value"])
    return found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的订单48213呢", {"order_number": ["48213"]}),
        ("订单号：４８２１３", {"order_number": ["４８２１３"]}),
        ("我的order 48213呢", {"order_number": ["48213"]}),
        ("邮箱是li.wei@example.com谢谢", {"email": ["li.wei@example.com"]}),
        (
            "手机13812345678，订单10023",
            {"phone_number": ["13812345678"], "order_number": ["10023"]},
        ),
        ("电话 +86 138 1234 5678", {"phone_number": ["+86 138 1234 5678"]}),
        ("where is order 48213?", {"order_number": ["48213"]}),
        # Not order numbers: part of a longer number, or glued to Latin letters.
        ("流水号123456789", {}),
        ("code AB12345", {}),
    ],
)
def test_entities_in_chinese_and_mixed_text(
    extractor: RegexEntityExtractor, text: str, expected: Dict[str, List[str]]
) -> None:
    assert _found(extractor, text) == expected
