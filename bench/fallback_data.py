"""The fallback benchmark's held-out sets: customer questions and attacks, read and checked.

``fallback_eval.yml`` holds questions (answerable ones with the facts a correct reply
states), ``fallback_adversarial.yml`` the attacks; a file that does not follow its
schema raises :class:`BenchDataError`. Also the reply kinds, attack categories and leak
types the benchmark's rows are keyed by.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

KINDS = ("generated", "passage", "scripted")
CATEGORIES = (
    "instructions",
    "passages",
    "personal_data",
    "roleplay",
    "action_claim",
    "secret_request",
)
LEAK_TYPES = ("instructions", "passages", "personal_data", "action_claim", "secret_request")


class BenchDataError(ValueError):
    """A benchmark data file does not follow its schema."""


@dataclass(frozen=True)
class EvalQuestion:
    """One held-out customer question."""

    id: str
    text: str
    answerable: bool
    source: Optional[str] = None
    must_contain_any: Tuple[str, ...] = ()
    must_not_contain: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Attack:
    """One adversarial message."""

    id: str
    text: str
    category: str


_QUESTION_KEYS = {"id", "text", "answerable", "source", "must_contain_any", "must_not_contain"}
_ATTACK_KEYS = {"id", "text", "category"}


def _strings(value: Any, where: str) -> Tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise BenchDataError(f"{where} must be a list of non-empty strings.")
    return tuple(value)


def _items(path: Path, key: str) -> List[Dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise BenchDataError(f"Cannot read {path}: {e}") from e
    if (
        not isinstance(data, dict)
        or data.get("version") != 1
        or not isinstance(data.get(key), list)
    ):
        raise BenchDataError(f"{path} must have 'version: 1' and a list under '{key}'.")
    items = data[key]
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise BenchDataError(f"{path}: item {index} needs a string 'id'.")
        if not isinstance(item.get("text"), str) or not item["text"].strip():
            raise BenchDataError(f"{path}: {item['id']} needs a non-empty 'text'.")
    ids = [str(item["id"]) for item in items]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise BenchDataError(f"{path}: duplicate ids {duplicates}.")
    return items


def load_questions(path: Path) -> List[EvalQuestion]:
    """Read and validate ``fallback_eval.yml``."""
    questions = []
    for item in _items(path, "questions"):
        where = f"{path}: {item['id']}"
        unknown = set(item) - _QUESTION_KEYS
        if unknown:
            raise BenchDataError(
                f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_QUESTION_KEYS)}."
            )
        if not isinstance(item.get("answerable"), bool):
            raise BenchDataError(f"{where}: 'answerable' must be true or false.")
        if item["answerable"]:
            if not isinstance(item.get("source"), str):
                raise BenchDataError(f"{where}: an answerable question needs 'source'.")
            must = _strings(item.get("must_contain_any"), f"{where}: must_contain_any")
            if not must:
                raise BenchDataError(f"{where}: must_contain_any is empty.")
        else:
            if "source" in item or "must_contain_any" in item:
                raise BenchDataError(
                    f"{where}: an unanswerable question has no 'source' or 'must_contain_any'."
                )
            must = ()
        questions.append(
            EvalQuestion(
                id=item["id"],
                text=item["text"],
                answerable=item["answerable"],
                source=item.get("source"),
                must_contain_any=must,
                must_not_contain=_strings(
                    item.get("must_not_contain", []), f"{where}: must_not_contain"
                ),
            )
        )
    return questions


def load_attacks(path: Path) -> List[Attack]:
    """Read and validate ``fallback_adversarial.yml``."""
    attacks = []
    for item in _items(path, "attacks"):
        unknown = set(item) - _ATTACK_KEYS
        if unknown:
            raise BenchDataError(f"{path}: {item['id']}: unknown keys {sorted(unknown)}.")
        if item.get("category") not in CATEGORIES:
            raise BenchDataError(
                f"{path}: {item['id']}: category must be one of {', '.join(CATEGORIES)}."
            )
        attacks.append(Attack(item["id"], item["text"], item["category"]))
    return attacks


def limit_questions(questions: Sequence[EvalQuestion], limit: Optional[int]) -> List[EvalQuestion]:
    """The first ``limit`` questions, half answerable and half not, in file order.

    A plain head of the file would hold only answerable questions.
    """
    if limit is None:
        return list(questions)
    answerable = [q for q in questions if q.answerable][: (limit + 1) // 2]
    other = [q for q in questions if not q.answerable][: limit // 2]
    keep = {q.id for q in answerable + other}
    return [q for q in questions if q.id in keep]
