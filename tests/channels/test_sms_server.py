"""The SMS channel against the real bot: `rasa run` with only
``channels.sms.TwilioSmsInput`` in credentials.yml, webhooks signed with twilio's own
RequestValidator exactly as Twilio signs them, and a fake Twilio REST API that
records every message sent.

One server serves the module (each start costs half a minute or more); the test that
restarts it runs last. Each test texts from its own phone number, so its replies and
its tracker (``sms:<number>``, read through Rasa's HTTP API with its token) are its own.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import requests
from twilio.request_validator import RequestValidator

from channels.sms_segments import segment_count
from tests.channels.bot_replies import APOLOGY, DECLINED, GREETING, rasa_with, trigger_greet
from tests.channels.sms_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    MESSAGES_PATH,
    NUMBER,
    PUBLIC_URL,
    TwilioApi,
    form,
    new_number,
    new_sid,
    post,
)
from tests.rasa_process import RasaServer

pytestmark = pytest.mark.integration

OPTIONS = (
    "Would you like me to connect you with a member of our team?\n"
    "1. Yes, connect me\n2. No thanks\nReply with the number."
)
HELP_TEXT = "Northwind SMS help: ask about orders. Reply STOP to opt out."
COMPLAINT = "this is the worst service I have ever had"


@pytest.fixture(scope="module")
def twilio() -> Iterator[TwilioApi]:
    api = TwilioApi()
    yield api
    api.fake.stop()


@pytest.fixture(autouse=True)
def _no_unexpected_calls(twilio: TwilioApi) -> Iterator[None]:
    yield
    twilio.failures.clear()
    twilio.fake.assert_no_unexpected_calls()


@pytest.fixture(scope="module")
def server(
    bot_model: Path, tmp_path_factory: pytest.TempPathFactory, twilio: TwilioApi
) -> Iterator[RasaServer]:
    workdir = tmp_path_factory.mktemp("sms")
    yield from rasa_with(
        bot_model,
        workdir,
        "channels.sms.TwilioSmsInput:\n"
        f'  account_sid: "{ACCOUNT_SID}"\n'
        f'  auth_token: "{AUTH_TOKEN}"\n'
        f'  twilio_number: "{NUMBER}"\n'
        f'  webhook_url: "{PUBLIC_URL}"\n'
        f'  api_base_url: "{twilio.fake.url}"\n'
        # One segment per message, so the bot's longer replies are split.
        "  max_segments: 1\n"
        f'  help_text: "{HELP_TEXT}"\n',
    )


def events(server: RasaServer, sender: str, count: int = 0) -> List[Dict[str, Any]]:
    """The sender's user events (their conversation is ``sms:<number>``)."""
    return server.user_events(f"sms:{sender}", count=count)


def text(server: RasaServer, sender: str, body: str, **extra: str) -> requests.Response:
    fields = form(sender, body, **extra)
    answer = post(server, fields)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/xml")
    assert "<Message" not in answer.text, "rest mode acknowledges with an empty TwiML"
    return answer


# ---------------------------------------------------------------- end to end
def test_hello_is_answered_through_the_rest_api_split_into_segments(
    server: RasaServer, twilio: TwilioApi
):
    sender = new_number()
    answer = text(server, sender, "hello")
    assert answer.text.strip().endswith("<Response />")
    calls = twilio.wait_for(sender, 2)
    assert all(call.form["From"] == NUMBER for call in calls)
    assert calls[0].form["Body"].startswith(GREETING)
    bodies = [call.form["Body"] for call in calls]
    # The greeting is longer than one SMS segment; each message holds one.
    assert all(segment_count(body) == 1 for body in bodies)
    assert "What can I do for you?" in bodies[-1]
    expected_auth = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert calls[0].headers["authorization"] == f"Basic {expected_auth}"
    [event] = events(server, sender, 1)
    assert event["text"] == "hello" and event["input_channel"] == "twilio"
    assert event["parse_data"]["intent"]["name"] == "greet"


def test_buttons_are_numbered_and_a_number_is_the_button(server: RasaServer, twilio: TwilioApi):
    sender = new_number()
    text(server, sender, COMPLAINT)
    apology, options = twilio.bodies(sender, 2)
    assert apology.startswith(APOLOGY)
    assert options == OPTIONS
    text(server, sender, "2")
    assert twilio.bodies(sender, 3)[2].startswith(DECLINED)
    assert events(server, sender, 2)[-1]["parse_data"]["intent"]["name"] == "deny"


def test_the_button_title_works_too_and_options_answer_one_message(
    server: RasaServer, twilio: TwilioApi
):
    sender = new_number()
    text(server, sender, COMPLAINT)
    twilio.wait_for(sender, 2)
    text(server, sender, "No thanks")
    twilio.wait_for(sender, 3)
    time.sleep(1)  # the rest of the answer to "No thanks", if it has more messages
    turns = events(server, sender, 2)
    assert turns[-1]["parse_data"]["intent"]["name"] == "deny"
    # The options were used up: a later "1" is just a number for NLU, not the
    # "Yes, connect me" button. What NLU then makes of a bare "1" is the model's
    # business (nlu_fallback runs on the action server, which this module does not
    # start), so the tracker is read instead of waiting for a reply.
    text(server, sender, "1")
    last = events(server, sender, 3)[-1]
    assert last["text"] == "1"
    assert last["parse_data"]["intent"]["name"] != "request_human"


def test_a_customer_cannot_type_an_intent(server: RasaServer, twilio: TwilioApi):
    """A typed ``/intent`` is the customer's text, read by NLU: not an intent shortcut."""
    sender = new_number()
    typed = '/inform{"order_number": "10023"}'
    text(server, sender, typed)
    [event] = events(server, sender, 1)
    assert event["text"] == typed
    parse = event["parse_data"]
    assert len(parse["intent_ranking"]) > 1, "ranked by the classifier, not a shortcut's 1.0"
    assert not any(e.get("extractor") == "RegexMessageHandler" for e in parse["entities"])


def test_mms_media_reach_the_tracker_and_the_bot_says_what_it_got(
    server: RasaServer, twilio: TwilioApi
):
    sender = new_number()
    media = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME1"
    text(
        server,
        sender,
        "",
        NumMedia="1",
        MediaUrl0=media,
        MediaContentType0="image/jpeg",
    )
    replies = " ".join(twilio.bodies(sender, 1))
    assert "received your photo" in replies
    [event] = events(server, sender, 1)
    assert event["parse_data"]["intent"]["name"] == "send_attachment"
    assert event["metadata"]["attachments"] == [
        {
            "kind": "image",
            "mime_type": "image/jpeg",
            "url": media,
            "file_id": None,
            "name": None,
            "size": None,
        }
    ]


# ---------------------------------------------------------------- keywords
def test_stop_silences_the_bot_help_still_answers_start_resumes(
    server: RasaServer, twilio: TwilioApi
):
    sender = new_number()
    text(server, sender, "STOP")
    text(server, sender, "hello")
    twilio.assert_quiet(sender, 0)
    assert events(server, sender) == [], "neither STOP nor later texts reach the bot"
    # Replies the bot would send on its own (Rasa's HTTP API) respect the opt-out too.
    trigger_greet(server, f"sms:{sender}", output_channel="twilio")
    text(server, sender, "help")
    assert twilio.bodies(sender, 1) == [HELP_TEXT]
    text(server, sender, "start")
    text(server, sender, "hello")
    bodies = twilio.bodies(sender, 3)
    assert bodies[1].startswith(GREETING)
    # Two turns reach the bot: the triggered intent ("EXTERNAL: greet") and "hello".
    texts = [e["text"] for e in events(server, sender, 2)]
    assert [t for t in texts if not t.startswith("EXTERNAL:")] == ["hello"]


def test_out_of_band_replies_use_the_channel(server: RasaServer, twilio: TwilioApi):
    sender = new_number()
    trigger_greet(server, f"sms:{sender}", output_channel="twilio")
    assert twilio.bodies(sender, 1)[0].startswith(GREETING)


def test_no_sms_reaches_a_number_through_another_channels_conversation(
    server: RasaServer, twilio: TwilioApi
):
    sender = new_number()
    for conversation in (f"rest:{sender}", sender):  # a REST caller's, a bare id
        trigger_greet(server, conversation, output_channel="twilio")
    twilio.assert_quiet(sender, 0)
    assert "twilio: reply not sent: a conversation of channel 'rest'" in server.log()


# ---------------------------------------------------------------- verification
@pytest.mark.parametrize(
    "how",
    ["forged", "unsigned", "another_url", "another_token", "loopback_url", "proxy_headers"],
)
def test_requests_not_signed_by_twilio_are_403_and_do_nothing(
    server: RasaServer, twilio: TwilioApi, how: str
):
    sender = new_number()
    fields = form(sender, "hello")
    kwargs: Dict[str, Any] = {
        "forged": {"signature": base64.b64encode(b"x" * 20).decode()},
        "unsigned": {"signature": None},
        "another_url": {"signed_url": "https://attacker.example/webhooks/twilio/webhook"},
        "another_token": {"token": "not-the-auth-token"},
        # The URL the server itself sees is not the one Twilio signs behind the proxy.
        "loopback_url": {"signed_url": f"{server.url}/webhooks/twilio/webhook"},
        # With webhook_url set, forwarded headers cannot move the URL that is checked.
        "proxy_headers": {
            "signed_url": "https://attacker.example/webhooks/twilio/webhook",
            "headers": {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "attacker.example"},
        },
    }[how]
    answer = post(server, fields, **kwargs)
    assert answer.status_code == 403
    assert "X-Twilio-Signature" in answer.json()["error"]
    twilio.assert_quiet(sender, 0, seconds=1)
    assert events(server, sender) == []
    # The same message, properly signed, is still new: a rejected one is not recorded.
    text(server, sender, "hello", sid=fields["MessageSid"])
    twilio.wait_for(sender, 1)


def test_a_tampered_body_fails_the_signature(server: RasaServer, twilio: TwilioApi):
    sender = new_number()
    fields = form(sender, "hello")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL, fields)
    answer = post(server, {**fields, "Body": "/request_human"}, signature=signature)
    assert answer.status_code == 403
    assert events(server, sender) == []


# ---------------------------------------------------------------- malformed requests
@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (b'{"Body": "hi"}', "application/json", 415, "content type"),
        (b"", None, 415, "missing"),
        (b"Body=caf\xe9&From=%2B1", "application/x-www-form-urlencoded", 400, "UTF-8"),
        (b"Body=hi&&From", "application/x-www-form-urlencoded", 400, "form"),
    ],
)
def test_malformed_requests_are_4xx_with_a_reason(
    server: RasaServer, body: bytes, content_type: Optional[str], status: int, reason: str
):
    headers = {"X-Twilio-Signature": "irrelevant"}
    if content_type:
        headers["Content-Type"] = content_type
    answer = requests.post(
        f"{server.url}/webhooks/twilio/webhook", data=body, headers=headers, timeout=30
    )
    assert answer.status_code == status
    assert reason in answer.json()["error"]
    assert requests.get(f"{server.url}/webhooks/twilio/", timeout=10).status_code == 200


def test_a_body_over_the_routes_limit_is_refused(server: RasaServer):
    answer = requests.post(
        f"{server.url}/webhooks/twilio/webhook",
        data=b"Body=" + b"a" * (70 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert answer.status_code == 413 and "aaaa" not in answer.text
    assert requests.get(f"{server.url}/webhooks/twilio/", timeout=10).status_code == 200


def test_signed_forms_without_twilios_fields_are_400(server: RasaServer, twilio: TwilioApi):
    sender = new_number()
    without_from = {k: v for k, v in form(sender, "hello").items() if k != "From"}
    answer = post(server, without_from)
    assert answer.status_code == 400 and "From" in answer.json()["error"]
    answer = post(server, {**form(sender, "hello"), "NumMedia": "2"})
    assert answer.status_code == 400 and "MediaUrl0" in answer.json()["error"]
    twilio.assert_quiet(sender, 0, seconds=1)


def test_delivery_reports_are_acknowledged_and_ignored(server: RasaServer, twilio: TwilioApi):
    sender = new_number()
    report = {
        "MessageSid": new_sid(),
        "MessageStatus": "delivered",
        "SmsStatus": "delivered",
        "From": NUMBER,
        "To": sender,
        "AccountSid": ACCOUNT_SID,
    }
    assert post(server, report).status_code == 200
    assert events(server, NUMBER) == []


# ---------------------------------------------------------------- outgoing failures
def test_429_and_5xx_from_twilio_are_retried(server: RasaServer, twilio: TwilioApi):
    """429 and 503 are sent again at once; after a 500 the channel first asks Twilio
    whether it has the message (it has not), then sends it again."""
    sender = new_number()
    twilio.failures[:] = [
        (429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "1"}),
        (503, {"message": "Service Unavailable"}, {}),
        (500, {"message": "Internal Server Error"}, {}),
    ]
    text(server, sender, "thanks")
    calls = twilio.wait_for(sender, 4)
    assert calls[0].form == calls[1].form == calls[2].form == calls[3].form, "the same message"
    lookups = [
        call
        for call in twilio.fake.calls_to(MESSAGES_PATH)
        if call.method == "GET" and call.query.get("To") == [sender]
    ]
    assert len(lookups) == 1
    twilio.assert_quiet(sender, 4)


def test_a_refused_message_is_logged_and_the_conversation_goes_on(
    server: RasaServer, twilio: TwilioApi
):
    sender = new_number()
    twilio.failures[:] = [(400, {"code": 21211, "message": "Invalid 'To' Phone Number"}, {})]
    text(server, sender, "thanks")
    twilio.wait_for(sender, 1)
    text(server, sender, "hello")
    assert twilio.bodies(sender, 3)[1].startswith(GREETING)
    assert "Twilio error 21211" in server.log()


# ---------------------------------------------------------------- duplicates (last: restarts)
def test_a_retried_webhook_is_answered_once_also_after_a_restart(
    server: RasaServer, twilio: TwilioApi
):
    sender = new_number()
    greeting = form(sender, "hello")
    text(server, sender, "hello", sid=greeting["MessageSid"])
    assert post(server, greeting).status_code == 200  # Twilio's retry
    twilio.wait_for(sender, 2)
    complaint = form(sender, COMPLAINT)
    assert post(server, complaint).status_code == 200
    twilio.wait_for(sender, 4)
    twilio.assert_quiet(sender, 4)

    server.restart()

    assert post(server, greeting).status_code == 200
    assert post(server, complaint).status_code == 200
    twilio.assert_quiet(sender, 4)
    assert [e["text"] for e in events(server, sender, 2)] == ["hello", COMPLAINT]
    # The numbered options survived the restart too.
    text(server, sender, "2")
    assert twilio.bodies(sender, 5)[4].startswith(DECLINED)
