"""docs/configuration.md agrees with every component's and channel's get_default_config().

Each checked table in the document follows a marker line ``<!-- defaults: NAME -->`` and
has one row per key: ``| `key` | `default` | meaning |``. Nested keys are dotted
(``generation.local.adapter``), and defaults are written as ``format_default`` writes
them. The test fails when a default key is missing from its table, when a table shows
another default, when a table documents a key the defaults do not have, and when a
module defines a ``get_default_config`` that no table covers. Nothing is loaded but the
classes and functions themselves.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

import channels.agent_desk_config
import channels.agent_slack_bridge
import channels.rest
import channels.slack_config
import channels.sms_config
import channels.telegram_config
import channels.webchat_config
import rasa_llm
import rasa_llm.fallback.backend_factory
import rasa_llm.fallback.generative_fallback
import rasa_llm.fallback.language_shelves
from rasa_llm.fallback.pii_masker import PiiMasker
from rasa_llm.fallback.reply_guard import ReplyGuard

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configuration.md"
# Where a get_default_config() makes a component's or a channel's settings.
SOURCE_DIRS = ("rasa_llm", "channels", "bot/actions")

Defaults = Callable[[], Dict[str, Any]]

# Each checked table (its marker's NAME) and the defaults it documents: (prefix, function);
# a prefix nests that function's keys under one key of the table's component (the
# fallback's `generation`, the desk's `slack`).
TABLES: Dict[str, List[Tuple[str, Defaults]]] = {
    "rasa_llm.TransformerIntentClassifier": [
        ("", rasa_llm.TransformerIntentClassifier.get_default_config)
    ],
    "rasa_llm.TransformerSentimentAnalyzer": [
        ("", rasa_llm.TransformerSentimentAnalyzer.get_default_config)
    ],
    "rasa_llm.HumanHandoffPolicy": [("", rasa_llm.HumanHandoffPolicy.get_default_config)],
    "rasa_llm.MessageLanguageDetector": [("", rasa_llm.MessageLanguageDetector.get_default_config)],
    "fallback.yml": [
        ("", rasa_llm.fallback.generative_fallback.get_default_config),
        ("generation", rasa_llm.fallback.backend_factory.get_default_config),
    ],
    "fallback.yml.other_languages": [("", rasa_llm.fallback.language_shelves.get_default_config)],
    "ReplyGuard": [("", ReplyGuard.get_default_config)],
    "PiiMasker": [("", PiiMasker.get_default_config)],
    "channels.rest.RestInput": [("", channels.rest.get_default_config)],
    "channels.webchat.WebChatInput": [("", channels.webchat_config.get_default_config)],
    "channels.slack.SlackInput": [("", channels.slack_config.get_default_config)],
    "channels.telegram.TelegramInput": [("", channels.telegram_config.get_default_config)],
    "channels.sms.TwilioSmsInput": [("", channels.sms_config.get_default_config)],
    "channels.agent_desk.AgentDeskInput": [
        ("", channels.agent_desk_config.get_default_config),
        ("slack", channels.agent_slack_bridge.get_default_config),
    ],
}

MARKER = re.compile(r"^<!-- defaults: (\S+) -->$")
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*`([^`]*)`\s*\|")


def format_default(value: Any) -> str:
    """A default as the document writes it: strings bare, the rest as YAML reads it."""
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, float):
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        if exponent and "." not in mantissa:
            return f"{mantissa}.0e{exponent}"  # YAML 1.1 reads 5e-05 as text
        return text
    return json.dumps(value)


def flatten(config: Dict[str, Any], prefix: str = "") -> Iterator[Tuple[str, Any]]:
    """Dotted keys and leaf values; an empty mapping is a leaf (`{}`)."""
    for key, value in config.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            yield from flatten(value, dotted)
        else:
            yield dotted, value


def expected(name: str) -> Dict[str, str]:
    """Every dotted key of one table's component with its formatted default."""
    keys: Dict[str, str] = {}
    for prefix, defaults in TABLES[name]:
        if prefix:
            keys.pop(prefix, None)  # a placeholder (`generation: {}`, `slack: null`)
        keys.update((key, format_default(value)) for key, value in flatten(defaults(), prefix))
    return keys


def documented() -> Dict[str, Dict[str, str]]:
    """The checked tables of docs/configuration.md: marker name to {key: default}."""
    tables: Dict[str, Dict[str, str]] = {}
    current = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        marker = MARKER.match(line.strip())
        if marker:
            current = tables.setdefault(marker.group(1), {})
        elif line.startswith("#"):
            current = None
        elif current is not None:
            row = ROW.match(line.strip())
            if row:
                assert row.group(1) not in current, f"{row.group(1)} is documented twice"
                current[row.group(1)] = row.group(2)
    return tables


@pytest.fixture(scope="module")
def tables() -> Dict[str, Dict[str, str]]:
    return documented()


def test_every_checked_table_is_in_the_document(tables: Dict[str, Dict[str, str]]):
    assert sorted(tables) == sorted(TABLES), (
        "docs/configuration.md's <!-- defaults: NAME --> markers and this test's TABLES differ"
    )


@pytest.mark.parametrize("name", sorted(TABLES))
def test_the_document_shows_every_default_key_with_its_value(
    name: str, tables: Dict[str, Dict[str, str]]
):
    rows = tables.get(name, {})
    wrong = {
        key: {"default": value, "documented": rows.get(key, "(missing)")}
        for key, value in expected(name).items()
        if rows.get(key) != value
    }
    assert not wrong, f"docs/configuration.md, {name}: fix these rows: {wrong}"


@pytest.mark.parametrize("name", sorted(TABLES))
def test_the_document_shows_no_key_the_defaults_lack(name: str, tables: Dict[str, Dict[str, str]]):
    extra = sorted(set(tables.get(name, {})) - set(expected(name)))
    assert not extra, f"docs/configuration.md, {name}: no such key in the defaults: {extra}"


def test_every_get_default_config_in_the_source_has_a_table():
    covered = {
        f"{defaults.__module__}.{defaults.__qualname__}"
        for entries in TABLES.values()
        for _, defaults in entries
    }
    found = set()
    for directory in SOURCE_DIRS:
        for path in sorted((ROOT / directory).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in tree.body:
                if isinstance(node, ast.FunctionDef) and node.name == "get_default_config":
                    found.add(f"{module}.get_default_config")
                elif isinstance(node, ast.ClassDef):
                    for item in node.body:
                        if isinstance(item, ast.FunctionDef) and item.name == "get_default_config":
                            found.add(f"{module}.{node.name}.get_default_config")
    assert not found - covered, (
        f"document these in docs/configuration.md and add them to TABLES: {sorted(found - covered)}"
    )


def test_the_formatting_is_the_one_the_document_uses():
    assert format_default(None) == "null"
    assert format_default(True) == "true"
    assert format_default(5e-05) == "5.0e-05"
    assert format_default(0.002) == "0.002"
    assert format_default("") == '""'
    assert format_default(["negative"]) == '["negative"]'
    assert dict(flatten({"a": {"b": 1, "c": {}}})) == {"a.b": 1, "a.c": {}}
