"""The channels' own state shared by servers on several machines, through PostgreSQL.

The two servers of the production set-up run in folders of their own, as on two
machines, so a SQLite file would not be shared between them; their credentials give the
SMS channel's ``dedup_db`` the tracker store's PostgreSQL URL instead. A webhook that
Twilio retries through the other server must be answered once, and a STOP taken by one
server must silence the bot on the other. A sender's conversation is ``sms:<number>``.
"""

from __future__ import annotations

import time

import psycopg2
import pytest

from tests.channels.sms_support import form, new_number, post
from tests.production.conftest import Production

pytestmark = pytest.mark.integration


def texted(production: Production, server: int, sender: str, body: str) -> dict:
    fields = form(sender, body)
    answer = post(production.servers[server], fields)
    assert answer.status_code == 200, answer.text
    return fields


def settled(production: Production, sender: str) -> int:
    """How many messages the bot sent ``sender`` once its answer is complete."""
    # the turn is saved after its replies
    production.servers[0].user_events(f"sms:{sender}", count=1)
    count = len(production.twilio.wait_for(sender, 1))
    while True:
        time.sleep(1.0)  # a reply split into several messages may still be on its way
        now = len(production.twilio.sent_to(sender))
        if now == count:
            return count
        count = now


def test_a_webhook_retried_through_the_other_server_is_answered_once(production: Production):
    twilio, sender = production.twilio, new_number()
    hello = texted(production, 0, sender, "hello")
    replies = settled(production, sender)
    # Twilio's retry of the same MessageSid reaches the other server (load balancer).
    assert post(production.servers[1], hello).status_code == 200
    twilio.assert_quiet(sender, replies)
    assert [e["text"] for e in production.servers[1].user_events(f"sms:{sender}", count=1)] == [
        "hello"
    ]
    with psycopg2.connect(production.database_url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM deliveries WHERE channel = 'twilio' AND delivery_id = %s",
            (hello["MessageSid"],),
        )
        assert cursor.fetchone() == (1,)
    twilio.fake.assert_no_unexpected_calls()


def test_an_opt_out_taken_by_one_server_holds_on_the_other(production: Production):
    twilio, sender = production.twilio, new_number()
    texted(production, 1, sender, "STOP")
    texted(production, 0, sender, "hello")  # the server with two workers
    texted(production, 0, sender, "where is my order?")
    twilio.assert_quiet(sender, 0)
    assert production.servers[0].user_events(f"sms:{sender}") == [], "nothing reached the bot"
    texted(production, 0, sender, "START")
    texted(production, 1, sender, "hello")
    assert settled(production, sender) >= 1
    assert [e["text"] for e in production.servers[0].user_events(f"sms:{sender}", count=1)] == [
        "hello"
    ]
    twilio.fake.assert_no_unexpected_calls()
