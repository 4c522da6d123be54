"""Strict validation of a component's config: unknown keys and wrong types fail early.

Rasa silently keeps a typo such as ``treshold``; a bot builder would then train for
an hour with the default. Every component of rasa-llm validates its merged config in
``create`` and ``load`` with :func:`validate_config`.
"""

from __future__ import annotations

import difflib
from typing import Any, Dict, Mapping, Sequence, Tuple, Type

from rasa_llm.errors import InvalidComponentConfigError

# Keys Rasa itself may add to any component's config (``rasa train --finetune``).
_RASA_INJECTED_KEYS = frozenset({"finetuning_epoch_fraction"})

TypeSpec = Type[Any] | Tuple[Type[Any], ...]


def unknown_key_fix(key: str, known: Sequence[str]) -> str:
    """The fix to suggest for an unknown ``key``: the nearest known key, or the list."""
    close = difflib.get_close_matches(key, list(known), n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"remove it; known keys are {', '.join(known)}."


def validate_config(
    component: str,
    config: Mapping[str, Any],
    defaults: Mapping[str, Any],
    types: Mapping[str, TypeSpec],
) -> None:
    """Reject keys that are not in ``defaults`` and values of the wrong type.

    Args:
        component: class name used in the error text.
        config: the merged config Rasa hands to the component.
        defaults: the component's ``get_default_config()``.
        types: the accepted type(s) for each key; ``type(None)`` allows ``null``.

    """
    for key in config:
        if key in defaults or key in _RASA_INJECTED_KEYS:
            continue
        raise InvalidComponentConfigError(
            component, key, "is not a known key", unknown_key_fix(key, sorted(defaults))
        )
    for key, expected in types.items():
        value = config.get(key, defaults[key])
        # bool is an int in Python; a `true` where a number belongs is a mistake.
        wrong_bool = isinstance(value, bool) and not _allows(expected, bool)
        if wrong_bool or not isinstance(value, expected):
            raise InvalidComponentConfigError(
                component,
                key,
                f"must be {_describe(expected)}, got {value!r}",
                f"set '{key}' to {_describe(expected)}, or remove it to use the "
                f"default {defaults[key]!r}.",
            )


def require(component: str, key: str, condition: bool, problem: str, default: Any) -> None:
    """Raise a config error for ``key`` unless ``condition`` holds."""
    if not condition:
        raise InvalidComponentConfigError(
            component, key, problem, f"change it, or remove it to use {default!r}."
        )


def _allows(expected: TypeSpec, kind: Type[Any]) -> bool:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return kind in kinds


def _describe(expected: TypeSpec) -> str:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    if int in kinds and float in kinds:  # "an integer or a number" says it twice
        kinds = tuple(k for k in kinds if k is not int)
    names: Dict[Type[Any], str] = {
        type(None): "null",
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        list: "a list",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)
