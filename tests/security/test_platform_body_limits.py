"""Finding 5 (Slack, Telegram, Twilio webhooks): each route declares its largest body.

Every POST route of the three channels declares ``ctx_max_body_bytes`` (Sanic's route
context), which the server's request guard (:mod:`rasa_llm.server.request_limits`) applies
before Sanic reads the body; the declared limit is the one the channel's own check
(``read_body``) applies, so both say the same, and a larger body is refused (413) by
the channel too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict

import pytest
from sanic import Sanic

from channels import slack, sms, telegram
from channels.slack import SlackInput
from channels.slack_config import SlackConfig
from channels.sms import TwilioSmsInput
from channels.sms_config import SmsConfig
from channels.telegram import TelegramInput
from channels.telegram_config import TelegramConfig
from tests.channels import sms_support
from tests.channels import telegram_payloads as tg
from tests.channels.slack_payloads import SECRET, TOKEN, signed_headers
from tests.channels.webhook_calls import Bot, webhook_request


def make_slack(db: str) -> Any:
    credentials = {"slack_token": TOKEN, "slack_signing_secret": SECRET}
    return SlackInput(SlackConfig.from_credentials({**credentials, "dedup_db": db}))


def make_telegram(db: str) -> Any:
    credentials = {"access_token": tg.TOKEN, "secret_token": tg.SECRET}
    return TelegramInput(TelegramConfig.from_credentials({**credentials, "dedup_db": db}))


def make_sms(db: str) -> Any:
    credentials = {
        "account_sid": sms_support.ACCOUNT_SID,
        "auth_token": sms_support.AUTH_TOKEN,
        "twilio_number": sms_support.NUMBER,
        "webhook_url": sms_support.PUBLIC_URL,
    }
    return TwilioSmsInput(SmsConfig.from_credentials({**credentials, "dedup_db": db}))


CHANNELS: Dict[str, Any] = {
    "slack": (make_slack, slack.MAX_BODY_BYTES, ["webhook", "interactive"]),
    "telegram": (make_telegram, telegram.MAX_BODY_BYTES, ["webhook"]),
    "twilio": (make_sms, sms.MAX_BODY_BYTES, ["webhook"]),
}


@pytest.mark.parametrize("name", list(CHANNELS))
def test_every_webhook_route_declares_its_body_limit(name: str, tmp_path: Path):
    make, limit, posts = CHANNELS[name]
    channel = make(str(tmp_path / "d.db"))
    app = Sanic(f"limits_{name}")
    app.blueprint(channel.blueprint(Bot()), url_prefix=f"/webhooks/{name}")
    declared = {
        route.path: getattr(route.ctx, "max_body_bytes", None)
        for route in app.router.routes
        if "POST" in route.methods
    }
    assert declared == {f"webhooks/{name}/{path}": limit for path in posts}


def oversize(name: str, limit: int) -> Any:
    body = b"x" * (limit + 1)
    if name == "slack":
        return webhook_request(body, signed_headers(body, "application/json"))
    if name == "telegram":
        return webhook_request(body, tg.headers())
    return webhook_request(body, {"Content-Type": "application/x-www-form-urlencoded"})


@pytest.mark.parametrize("name", list(CHANNELS))
def test_the_channel_refuses_a_body_over_the_declared_limit(name: str, tmp_path: Path):
    make, limit, _ = CHANNELS[name]
    channel = make(str(tmp_path / "d.db"))
    bot = Bot()

    async def scenario() -> int:
        try:
            return int((await channel.handle(oversize(name, limit), bot)).status)
        finally:
            await (channel.messages.close() if name == "twilio" else channel.close())

    assert asyncio.run(scenario()) == 413
    assert bot.reached == []
