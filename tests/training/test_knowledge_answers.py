"""training/data/knowledge_answers.yml: grounded answers from one knowledge section each."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "training" / "data" / "knowledge_answers.yml"
KNOWLEDGE = ROOT / "bot" / "knowledge" / "en"

URL = re.compile(r"https?://[^\s\"()]+")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
DOMAIN = re.compile(r"\b[\w-]+(?:\.[\w-]+)*\.(?:uk|com|org|example)\b")
NUMBER = re.compile(r"[£€]?\d+(?:[.,:]\d+)*(?:-\d+(?:[.:]\d+)*)?%?")


def _sections() -> Dict[Tuple[str, str], str]:
    sections: Dict[Tuple[str, str], str] = {}
    for path in sorted(KNOWLEDGE.glob("*.md")):
        heading = None
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("## "):
                heading = line[3:].strip()
                sections[(path.name, heading)] = ""
            elif heading is not None and line.strip():
                sections[(path.name, heading)] += line.strip() + " "
    return sections


SECTIONS = _sections()


@pytest.fixture(scope="module")
def examples() -> List[dict]:
    data = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and data.get("version") == 1
    assert isinstance(data.get("examples"), list)
    return data["examples"]


def _key(source: str) -> Tuple[str, str]:
    name, _, heading = source.partition("#")
    return name, heading


def test_schema(examples: List[dict]) -> None:
    for ex in examples:
        assert set(ex) == {"question", "source", "answer"}, ex
        assert isinstance(ex["question"], str) and ex["question"].strip(), ex
        assert isinstance(ex["source"], str) and "#" in ex["source"], ex
        assert ex["answer"] is None or (isinstance(ex["answer"], str) and ex["answer"].strip()), ex


def test_sources_exist(examples: List[dict]) -> None:
    for ex in examples:
        name, heading = _key(ex["source"])
        assert (KNOWLEDGE / name).is_file(), ex["source"]
        assert (name, heading) in SECTIONS, ex["source"]


def test_no_duplicate_questions(examples: List[dict]) -> None:
    questions = [ex["question"].strip().lower() for ex in examples]
    assert len(questions) == len(set(questions))


def _facts(answer: str) -> List[str]:
    facts = [u.rstrip(".,;:") for u in URL.findall(answer)]
    rest = URL.sub(" ", answer)
    facts += [e.rstrip(".") for e in EMAIL.findall(rest)]
    rest = EMAIL.sub(" ", rest)
    facts += DOMAIN.findall(rest)
    rest = DOMAIN.sub(" ", rest)
    facts += [n.rstrip(".,:") for n in NUMBER.findall(rest)]
    return facts


def test_answer_facts_occur_in_section(examples: List[dict]) -> None:
    for ex in examples:
        if ex["answer"] is None:
            continue
        text = SECTIONS[_key(ex["source"])]
        for fact in _facts(ex["answer"]):
            assert fact in text, f"{fact!r} not in {ex['source']}: {ex['answer']}"


def test_counts(examples: List[dict]) -> None:
    answerable = sum(ex["answer"] is not None for ex in examples)
    unanswerable = sum(ex["answer"] is None for ex in examples)
    assert answerable >= 150
    assert unanswerable >= 50


def test_every_section_has_an_example(examples: List[dict]) -> None:
    covered = {_key(ex["source"]) for ex in examples}
    missing = sorted(set(SECTIONS) - covered)
    assert not missing, missing
