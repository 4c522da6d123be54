"""Twilio's side of the SMS tests: webhooks signed with twilio's own RequestValidator as
Twilio signs them, and a fake Twilio REST API (tests/fake_platform.py) that records every
message sent and fails any call it does not expect. Shared by the SMS channel's tests
and the production set-up's (several servers, one database).
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlencode

import requests
from twilio.request_validator import RequestValidator

from bench.support.fake_platform import wait_for_count
from tests.fake_platform import Call, FakePlatform, Reply, TwilioMessageLog
from tests.rasa_process import RasaServer

ACCOUNT_SID = "AC" + "5e1f" * 8
AUTH_TOKEN = "server-test-auth-token-3f9a"
NUMBER = "+15005550006"
# The URL Twilio is configured with: the server sits behind a proxy that Twilio reaches.
PUBLIC_URL = "https://sms.example.com/webhooks/twilio/webhook"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
# How long "nothing more arrives" is watched for.
QUIET_SECONDS = 3.0

_numbers = itertools.count(1)
_sids = itertools.count(1)


class TwilioApi:
    """The fake's Messages resource: 201 for each message, after any failures queued;
    and the list of the messages created, which the channel reads after a send that
    may or may not have gone through."""

    def __init__(self) -> None:
        self.fake = FakePlatform("twilio").start()
        self.failures: List[Tuple[int, Dict[str, Any], Dict[str, str]]] = []
        self.messages = TwilioMessageLog(ACCOUNT_SID)
        self.fake.expect("POST", MESSAGES_PATH, self._answer)
        self.fake.expect("GET", MESSAGES_PATH, self.messages.list)

    def _answer(self, call: Call) -> Reply:
        if self.failures:
            return self.failures.pop(0)
        return self.messages.create(call)

    def sent_to(self, number: str) -> List[Call]:
        """The messages the channel asked Twilio to send to ``number`` (POSTs, not look-ups)."""
        return [
            call
            for call in self.fake.calls_to(MESSAGES_PATH)
            if call.method == "POST" and call.form.get("To") == number
        ]

    def wait_for(self, number: str, count: int, timeout: float = 90) -> List[Call]:
        return wait_for_count(
            lambda: self.sent_to(number),
            count,
            timeout,
            failure=lambda: (
                f"expected {count} message(s) to {number}, got "
                f"{[c.form.get('Body') for c in self.sent_to(number)]}"
            ),
        )

    def bodies(self, number: str, count: int, timeout: float = 90) -> List[str]:
        return [call.form.get("Body", "") for call in self.wait_for(number, count, timeout)]

    def assert_quiet(self, number: str, count: int, seconds: float = QUIET_SECONDS) -> None:
        """No more than ``count`` messages reach ``number`` in the next ``seconds``."""
        time.sleep(seconds)
        assert len(self.sent_to(number)) == count, [c.form for c in self.sent_to(number)]


def new_number() -> str:
    return f"+1555{next(_numbers):07d}"


def new_sid() -> str:
    return f"SM{next(_sids):032x}"


def form(sender: str, body: str, sid: Optional[str] = None, **extra: str) -> Dict[str, str]:
    """The fields Twilio posts for an incoming SMS."""
    return {
        "ToCountry": "US",
        "SmsMessageSid": sid or "",
        "NumMedia": "0",
        "SmsSid": sid or "",
        "SmsStatus": "received",
        "Body": body,
        "To": NUMBER,
        "NumSegments": "1",
        "MessageSid": sid or new_sid(),
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "ApiVersion": "2010-04-01",
        **extra,
    }


def signed_request(
    fields: Dict[str, str], *, signed_url: str = PUBLIC_URL, token: str = AUTH_TOKEN
) -> Tuple[bytes, Dict[str, str]]:
    """A webhook's body and headers as Twilio posts it to ``signed_url``."""
    body = urlencode(fields).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "X-Twilio-Signature": RequestValidator(token).compute_signature(signed_url, fields),
    }
    return body, headers


def post(
    server: RasaServer,
    fields: Dict[str, str],
    *,
    signed_url: str = PUBLIC_URL,
    signature: Optional[str] = "sign",
    token: str = AUTH_TOKEN,
    headers: Optional[Dict[str, str]] = None,
) -> requests.Response:
    """POST a webhook as Twilio does; ``signature="sign"`` signs it for ``signed_url``."""
    sent_headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    if signature == "sign":
        signature = RequestValidator(token).compute_signature(signed_url, fields)
    if signature is not None:
        sent_headers["X-Twilio-Signature"] = signature
    sent_headers.update(headers or {})
    return requests.post(
        f"{server.url}/webhooks/twilio/webhook", data=fields, headers=sent_headers, timeout=30
    )
