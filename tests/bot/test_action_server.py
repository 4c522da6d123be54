"""The bot's actions through the real `rasa run actions` (in bot/, as `make run` starts it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
import requests

from tests.rasa_process import ACTION_TOKEN, ActionServer

from .conftest import JANE, SAM, TODAY, owned, tracker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def action_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActionServer]:
    workdir = tmp_path_factory.mktemp("actions")
    server = ActionServer(
        workdir,
        env={
            "BOT_STORE_URL": f"sqlite:///{workdir / 'northwind.db'}",
            "BOT_STORE_TODAY": TODAY.isoformat(),
            # The generative fallback is not called here: do not load its model.
            "RASA_LLM_FALLBACK_WARM_UP": "0",
        },
    ).start()
    yield server
    server.stop()


def call(
    server: ActionServer, action: str, slots: Dict[str, Any], domain: Dict[str, Any], **kw: Any
) -> Dict[str, Any]:
    """POST one action call as Rasa does (with the action token), and return the
    server's JSON answer."""
    state = tracker(slots, **kw).current_state()
    body = {
        "next_action": action,
        "sender_id": state["sender_id"],
        "tracker": state,
        "domain": domain,
        "version": "3.6.21",
    }
    token = os.environ.get("RASA_LLM_ACTION_TOKEN", ACTION_TOKEN)
    answer = requests.post(
        f"{server.url}/webhook",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_order_status_over_the_webhook_answers_from_the_store(action_server, domain):
    reply = call(action_server, "action_order_status", owned("10023"), domain)
    assert reply["events"] == []
    [said] = reply["responses"]
    assert said["response"] == "utter_order_status_dispatched"
    assert said["order_number"] == "10023" and said["carrier"] == "DPD"
    assert said["dispatched_on"] == "Monday 9 June" and said["expected_on"] == "Thursday 12 June"
    assert said["tracking_url"] == "https://northwind.example/track/10023"
    # The server made its own store where it was told to, not in bot/store/.
    assert (Path(action_server.log_path).parent / "northwind.db").exists()


def test_a_form_validation_over_the_webhook_rejects_someone_elses_email(action_server, domain):
    slots = {"order_number": "10024", "email": SAM}
    reply = call(
        action_server,
        "validate_cancel_order_form",
        slots,
        domain,
        active_loop="cancel_order_form",
        validating=("email",),
    )
    assert [r["response"] for r in reply["responses"]] == ["utter_order_not_matched"]
    for slot in ("order_number", "email"):
        cleared = {"event": "slot", "timestamp": None, "name": slot, "value": None}
        assert cleared in reply["events"]


def test_an_sms_conversation_from_the_orders_phone_needs_no_email(action_server, domain):
    reply = call(
        action_server,
        "action_order_status",
        {"order_number": "10023"},
        domain,
        sender_id="sms:+447700900123",
    )
    assert [r["response"] for r in reply["responses"]] == ["utter_order_status_dispatched"]
    stranger = call(action_server, "action_order_status", {"order_number": "10023"}, domain)
    assert [r["response"] for r in stranger["responses"]] == ["utter_order_not_matched"]
    assert JANE not in str(stranger)
