"""The Slack, Telegram and SMS input channels the platform security tests drive.

Each is built as its credentials.yml section would build it, with the test
credentials of tests/channels, its de-duplication store at ``dedup_db`` and any other
``settings`` (``rate_limits``, ...). By default Slack and Telegram post to a closed
port: a test that does not look at the replies needs no fake platform for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from channels.slack import SlackInput
from channels.slack_config import SlackConfig
from channels.sms import TwilioSmsInput
from channels.sms_config import SmsConfig
from channels.telegram import TelegramInput
from channels.telegram_config import TelegramConfig
from tests.channels import sms_support as sms
from tests.channels import telegram_payloads as tg
from tests.channels.slack_payloads import SECRET, TOKEN

# Nothing listens on port 9 (discard): a post there fails at once, unseen.
NOWHERE = "http://127.0.0.1:9"


def slack_input(dedup_db: Path, *, api_url: str = f"{NOWHERE}/api/", **settings: Any) -> SlackInput:
    """The Slack channel with the test token and signing secret."""
    credentials = {
        "slack_token": TOKEN,
        "slack_signing_secret": SECRET,
        "api_url": api_url,
        "dedup_db": str(dedup_db),
    }
    return SlackInput(SlackConfig.from_credentials({**credentials, **settings}))


def telegram_input(
    dedup_db: Path, *, base_url: str = f"{NOWHERE}/bot", **settings: Any
) -> TelegramInput:
    """The Telegram channel with the test bot token and webhook secret."""
    credentials = {
        "access_token": tg.TOKEN,
        "secret_token": tg.SECRET,
        "base_url": base_url,
        "dedup_db": str(dedup_db),
    }
    return TelegramInput(TelegramConfig.from_credentials({**credentials, **settings}))


def sms_input(dedup_db: Path, *, api_base_url: str, **settings: Any) -> TwilioSmsInput:
    """The SMS channel with the test Twilio account, number and public webhook URL."""
    credentials = {
        "account_sid": sms.ACCOUNT_SID,
        "auth_token": sms.AUTH_TOKEN,
        "twilio_number": sms.NUMBER,
        "webhook_url": sms.PUBLIC_URL,
        "api_base_url": api_base_url,
        "dedup_db": str(dedup_db),
    }
    return TwilioSmsInput(SmsConfig.from_credentials({**credentials, **settings}))
