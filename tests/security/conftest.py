"""The assistant as it ships, for the security tests: the bot's model, its credentials
(REST, web chat, agent desk, monitoring) plus SMS and Telegram against loopback fakes,
its action server, all real (`rasa run`, `rasa run actions`), started once per session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
import requests

from tests.channels import sms_support as sms
from tests.channels import telegram_payloads as tg
from tests.fake_platform import FakePlatform
from tests.rasa_process import BOT, ActionServer, RasaServer, free_port


@dataclass
class Stack:
    rasa: RasaServer
    actions: ActionServer
    twilio: sms.TwilioApi
    telegram: FakePlatform


def shipped_credentials(twilio_url: str, telegram_url: str) -> str:
    """bot/credentials.yml as shipped, with its SMS and Telegram sections switched on."""
    return (BOT / "credentials.yml").read_text() + (
        "\nchannels.sms.TwilioSmsInput:\n"
        f'  account_sid: "{sms.ACCOUNT_SID}"\n'
        f'  auth_token: "{sms.AUTH_TOKEN}"\n'
        f'  twilio_number: "{sms.NUMBER}"\n'
        f'  webhook_url: "{sms.PUBLIC_URL}"\n'
        f'  api_base_url: "{twilio_url}"\n'
        "channels.telegram.TelegramInput:\n"
        f'  access_token: "{tg.TOKEN}"\n'
        f'  verify: "{tg.BOT_USERNAME}"\n'
        f'  secret_token: "{tg.SECRET}"\n'
        f'  base_url: "{telegram_url}/bot"\n'
    )


def post_telegram(stack: Stack, update: Dict[str, Any]) -> requests.Response:
    """A Telegram update, posted with the webhook's secret token as Telegram does."""
    return requests.post(
        f"{stack.rasa.url}/webhooks/telegram/webhook",
        data=tg.body(update),
        headers=tg.headers(),
        timeout=30,
    )


@pytest.fixture(scope="session")
def stack(bot_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("security")
    twilio = sms.TwilioApi()
    telegram, _ = tg.fake_bot_api()
    credentials = workdir / "credentials.yml"
    credentials.write_text(shipped_credentials(twilio.fake.url, telegram.url))
    actions_port = free_port()
    endpoints = workdir / "endpoints.yml"
    endpoints.write_text(
        (BOT / "endpoints.yml")
        .read_text()
        .replace("http://localhost:5055/webhook", f"http://127.0.0.1:{actions_port}/webhook")
    )
    actions = ActionServer(workdir, port=actions_port, env={"RASA_LLM_FALLBACK_WARM_UP": "0"})
    actions.start()
    server = RasaServer(bot_model, workdir, credentials=credentials, endpoints=endpoints)
    try:
        server.start()
        yield Stack(server, actions, twilio, telegram)
    finally:
        server.stop()
        actions.stop()
        twilio.fake.stop()
        telegram.stop()
