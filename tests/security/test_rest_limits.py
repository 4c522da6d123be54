"""Finding 4 (REST): one caller could send without limit.

The REST channel answers 429 with Retry-After at its configured rate, per conversation
and, for requests without its token, per client address (the web chat's limits:
test_webchat_limits.py; the platforms': test_platform_rate_limits.py; order look-ups:
test_order_lookups.py; the language model's queue: test_fallback_queue.py).
"""

from __future__ import annotations

import requests
from rasa.core.channels import channel as rasa_channel
from sanic import Sanic

from channels.rest import RestConfig, RestInput
from tests.sanic_serving import MessageRecorder, serving

TOKEN = "security-rest-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def app_with(limits: dict) -> Sanic:
    app = Sanic(f"security_rest_{len(Sanic._app_registry)}")
    config = RestConfig.from_credentials({"token": TOKEN, "rate_limits": limits})
    rasa_channel.register([RestInput(config)], app, route="/webhooks/")
    return app


def test_a_conversation_over_its_rate_gets_429_and_retry_after():
    recorder = MessageRecorder(reply="ok")
    with serving(app_with({"conversation": "5/minute"}), recorder) as url:
        url += "/webhooks/rest/webhook"
        codes = [
            requests.post(
                url, json={"sender": "flood", "message": f"m{i}"}, headers=AUTH
            ).status_code
            for i in range(8)
        ]
        refused = requests.post(url, json={"sender": "flood", "message": "x"}, headers=AUTH)
    assert codes == [200] * 5 + [429] * 3
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) == 12
    assert len(recorder.messages) == 5  # the refused ones never reached the bot


def test_an_address_guessing_the_token_gets_429():
    with serving(app_with({"unauthenticated": "4/minute"})) as url:
        url += "/webhooks/rest/webhook"
        guess = {"Authorization": "Bearer guessed-token-0123456789"}
        codes = [
            requests.post(url, json={"sender": f"s{i}", "message": "hi"}, headers=guess).status_code
            for i in range(6)
        ]
    assert codes == [403] * 4 + [429] * 2
