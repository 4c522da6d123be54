"""The SMS channel answering in TwiML, behind a proxy that sets X-Forwarded-* headers.

A second server (``reply_mode: twiml``, ``trust_proxy_headers: true``, no
``webhook_url``): the replies come back in the webhook's own answer as ``<Message>``
elements, nothing goes through the REST API, and the signed URL is rebuilt from the
proxy's headers. The deadline fallback to REST is tested without a server in
test_sms.py (a slow bot cannot be made slow on purpose here).
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest
import requests
from twilio.request_validator import RequestValidator

from tests.channels.bot_replies import DECLINED, GREETING, rasa_with
from tests.fake_platform import FakePlatform
from tests.rasa_process import RasaServer

pytestmark = pytest.mark.integration

ACCOUNT_SID = "AC" + "7a3c" * 8
AUTH_TOKEN = "twiml-test-auth-token-81b2"
NUMBER = "+15005550006"
PROXY_HEADERS = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "sms.example.com"}
PUBLIC_URL = "https://sms.example.com/webhooks/twilio/webhook"
OPTIONS_TAIL = "1. Yes, connect me\n2. No thanks\nReply with the number."

_numbers = itertools.count(1)
_sids = itertools.count(1)


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakePlatform]:
    # No route is expected: in TwiML mode a prompt bot sends nothing through REST.
    fake = FakePlatform("twilio").start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _no_unexpected_calls(twilio: FakePlatform) -> Iterator[None]:
    yield
    twilio.assert_no_unexpected_calls()


@pytest.fixture(scope="module")
def server(
    bot_model: Path, tmp_path_factory: pytest.TempPathFactory, twilio: FakePlatform
) -> Iterator[RasaServer]:
    workdir = tmp_path_factory.mktemp("sms_twiml")
    yield from rasa_with(
        bot_model,
        workdir,
        "channels.sms.TwilioSmsInput:\n"
        f'  account_sid: "{ACCOUNT_SID}"\n'
        f'  auth_token: "{AUTH_TOKEN}"\n'
        f'  twilio_number: "{NUMBER}"\n'
        f'  api_base_url: "{twilio.url}"\n'
        "  reply_mode: twiml\n"
        # Generous: the first message after start-up warms the model up.
        "  twiml_deadline_seconds: 14\n"
        "  trust_proxy_headers: true\n",
    )


def sms(sender: str, body: str) -> Dict[str, str]:
    return {
        "MessageSid": f"SM{next(_sids):032x}",
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "To": NUMBER,
        "Body": body,
        "NumMedia": "0",
        "SmsStatus": "received",
    }


def post(
    server: RasaServer,
    fields: Dict[str, str],
    *,
    signed_url: str = PUBLIC_URL,
    headers: Optional[Dict[str, str]] = None,
) -> requests.Response:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(signed_url, fields)
    return requests.post(
        f"{server.url}/webhooks/twilio/webhook",
        data=fields,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
            **(PROXY_HEADERS if headers is None else headers),
        },
        timeout=30,
    )


def messages(answer: requests.Response) -> List[str]:
    """The bodies of the TwiML answer's <Message> elements."""
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/xml")
    root = ElementTree.fromstring(answer.content)
    assert root.tag == "Response"
    return [(element.findtext("Body") or element.text or "") for element in root.findall("Message")]


def test_replies_come_back_as_twiml_messages(server: RasaServer, twilio: FakePlatform):
    sender = f"+1666{next(_numbers):07d}"
    [greeting] = messages(post(server, sms(sender, "hello")))
    assert greeting.startswith(GREETING)
    apology, options = messages(
        post(server, sms(sender, "this is the worst service I have ever had"))
    )
    assert apology.startswith("I'm really sorry")
    assert options.endswith(OPTIONS_TAIL)
    [declined] = messages(post(server, sms(sender, "2")))
    assert declined.startswith(DECLINED)
    assert twilio.calls == [], "nothing went through the REST API"


def test_help_is_answered_in_twiml_and_stop_with_silence(server: RasaServer):
    sender = f"+1666{next(_numbers):07d}"
    [help_text] = messages(post(server, sms(sender, "HELP")))
    assert "Reply STOP" in help_text
    assert messages(post(server, sms(sender, "stop"))) == []
    assert messages(post(server, sms(sender, "hello"))) == []


def test_the_url_comes_from_trusted_proxy_headers(server: RasaServer):
    sender = f"+1666{next(_numbers):07d}"
    # Signed for the server's own URL but arriving through the proxy: not what Twilio signed.
    loopback = f"{server.url}/webhooks/twilio/webhook"
    assert post(server, sms(sender, "hello"), signed_url=loopback).status_code == 403
    # Without proxy headers the request's own URL is the one checked.
    direct = post(server, sms(sender, "hello"), signed_url=loopback, headers={})
    assert messages(direct)[0].startswith(GREETING)
    # A client that claims another host must have a signature for that host.
    moved = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "attacker.example"}
    assert post(server, sms(sender, "hello"), headers=moved).status_code == 403
