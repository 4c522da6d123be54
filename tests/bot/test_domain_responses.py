"""Every response and action the bot's own actions use is declared in bot/domain.yml.

Rasa only finds out at run time that a response is missing (it logs an error and the
customer gets nothing), so the names are checked here, from the actions' source.
"""

from __future__ import annotations

import re
from pathlib import Path

from rasa_sdk import Action

from bot.actions import (
    account_actions,
    form_validation,
    order_actions,
    return_and_payment_actions,
    store_action,
)

ACTIONS_DIR = Path(order_actions.__file__).parent
MODULES = [
    account_actions,
    form_validation,
    order_actions,
    return_and_payment_actions,
    store_action,
]


def used_responses() -> set:
    names = set()
    for module in MODULES:
        source = Path(module.__file__).read_text()
        names |= set(re.findall(r"[\"'](utter_[a-z_]+)[\"']", source))
    return names


def our_actions() -> set:
    found = set()
    for module in MODULES:
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Action)
                and value.__module__ == module.__name__
                and not getattr(value, "__abstractmethods__", None)
            ):
                found.add(value().name())
    return found


def test_the_actions_use_responses_the_domain_declares(domain):
    used = used_responses()
    assert "utter_order_status_dispatched" in used and len(used) > 40
    missing = sorted(used - set(domain.get("responses", {})))
    assert not missing, f"add these responses to bot/domain.yml: {missing}"


def test_every_action_of_the_bot_is_listed_in_the_domain(domain):
    actions = our_actions()
    assert len(actions) == 23
    missing = sorted(actions - set(domain.get("actions", [])))
    assert not missing, f"list these under actions: in bot/domain.yml: {missing}"
