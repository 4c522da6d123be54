"""The parts every channel shares: de-duplication, splitting, retries, guards, attachments."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import List

import pytest

from channels.attachments import Attachment, Said, channel_intent, kind_from_mime, user_messages
from channels.delivery_log import DeliveryLog
from channels.outbound import Failure, RetryPolicy, call_with_retry, http_failure
from channels.text_splitting import split_text
from channels.webhook_guard import WebhookRejected, parse_form, parse_json_object


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- delivery log
def test_a_delivery_id_is_first_only_once(tmp_path: Path):
    log = DeliveryLog(tmp_path / "d.db")
    assert log.first_time_sync("slack", "Ev1")
    assert not log.first_time_sync("slack", "Ev1")
    assert log.first_time_sync("slack", "Ev2")
    assert log.first_time_sync("telegram", "Ev1"), "ids are per channel"


def test_the_log_survives_a_restart(tmp_path: Path):
    assert DeliveryLog(tmp_path / "d.db").first_time_sync("sms", "SM1")
    assert not DeliveryLog(tmp_path / "d.db").first_time_sync("sms", "SM1")


def test_after_the_window_an_id_is_new_again(tmp_path: Path):
    clock = Clock()
    log = DeliveryLog(tmp_path / "d.db", window_seconds=60, clock=clock)
    assert log.first_time_sync("slack", "Ev1")
    clock.now += 59
    assert not log.first_time_sync("slack", "Ev1")
    clock.now += 62
    assert log.first_time_sync("slack", "Ev1")


def test_concurrent_duplicates_let_exactly_one_through(tmp_path: Path):
    log = DeliveryLog(tmp_path / "d.db")

    async def deliver_many() -> List[bool]:
        return await asyncio.gather(*(log.first_time("slack", "Ev1") for _ in range(20)))

    assert sum(asyncio.run(deliver_many())) == 1


def test_a_bad_window_says_which_key_to_fix(tmp_path: Path):
    with pytest.raises(ValueError, match="dedup_window_seconds"):
        DeliveryLog(tmp_path / "d.db", window_seconds=0)


# ---------------------------------------------------------------- splitting
def test_short_text_is_one_piece_and_empty_is_none():
    assert split_text("hello there", 100) == ["hello there"]
    assert split_text("   ", 10) == []


def test_splits_at_spaces_without_breaking_words():
    text = "the quick brown fox jumps over the lazy dog " * 20
    pieces = split_text(text, 50)
    assert all(len(p) <= 50 for p in pieces)
    assert " ".join(pieces).split() == text.split()
    assert all(not p.startswith(" ") and not p.endswith(" ") for p in pieces)


def test_prefers_paragraph_then_sentence_breaks():
    text = "First paragraph is here.\n\nSecond one. It has two sentences."
    assert split_text(text, 40) == [
        "First paragraph is here.",
        "Second one. It has two sentences.",
    ]
    assert split_text("One sentence here. Another sentence there.", 30) == [
        "One sentence here.",
        "Another sentence there.",
    ]


def test_a_word_longer_than_the_limit_is_cut_but_nothing_is_lost():
    word = "x" * 25
    assert split_text(word, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_measure_counts_escaped_length():
    # Measured as HTML-escaped, "&" costs five characters.
    pieces = split_text("a & b & c & d", 9, measure=lambda s: len(s.replace("&", "&amp;")))
    assert all(len(p.replace("&", "&amp;")) <= 9 for p in pieces)
    assert " ".join(pieces) == "a & b & c & d"


def test_does_not_separate_a_combining_mark_from_its_letter():
    text = "e\u0301" * 6  # é written as e + combining acute accent
    pieces = split_text(text, 3)
    assert all(not p.startswith("\u0301") for p in pieces)
    assert "".join(pieces) == text


# ---------------------------------------------------------------- retries
def _run(coro):
    return asyncio.run(coro)


def test_retries_429_and_5xx_then_succeeds():
    attempts: List[int] = []
    waits: List[float] = []

    async def call() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("503")
        return "sent"

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    result = _run(call_with_retry("slack", "post", call, lambda e: http_failure(503), sleep=sleep))
    assert result == "sent" and len(attempts) == 3 and len(waits) == 2
    assert waits[1] > waits[0] * 0.9, "back-off grows"


def test_honours_retry_after_but_caps_it():
    waits: List[float] = []

    async def call() -> None:
        raise RuntimeError("429")

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    policy = RetryPolicy(attempts=3, max_retry_after=10)
    assert (
        _run(
            call_with_retry(
                "t",
                "post",
                call,
                lambda e: http_failure(429, retry_after="7"),
                policy=policy,
                sleep=sleep,
            )
        )
        is None
    )
    assert waits == [7.0, 7.0]
    waits.clear()
    _run(
        call_with_retry(
            "t",
            "post",
            call,
            lambda e: http_failure(429, retry_after="120"),
            policy=policy,
            sleep=sleep,
        )
    )
    assert waits == [10.0, 10.0]


def test_a_4xx_fails_at_once_and_is_logged_without_text(caplog):
    calls: List[int] = []

    async def call() -> None:
        calls.append(1)
        raise RuntimeError("my card number is 4111 1111 1111 1111")

    with caplog.at_level(logging.ERROR):
        assert _run(call_with_retry("sms", "send", call, lambda e: http_failure(400))) is None
    assert calls == [1]
    assert "sms: send failed after 1 attempt(s): HTTP 400" in caplog.text
    assert "4111" not in caplog.text


def test_a_connection_error_is_retried():
    assert http_failure(None).retryable
    assert Failure(retryable=False, reason="x").retry_after is None


# ---------------------------------------------------------------- guards
def test_json_errors_say_what_is_wrong_not_what_was_sent():
    with pytest.raises(WebhookRejected) as error:
        parse_json_object(b'{"text": "secret stuff"')
    assert error.value.status == 400 and "secret" not in error.value.reason
    with pytest.raises(WebhookRejected, match="expected an object"):
        parse_json_object(b"[1, 2]")
    with pytest.raises(WebhookRejected, match="not UTF-8"):
        parse_json_object('{"a": "é"}'.encode("latin-1"))
    assert parse_json_object(json.dumps({"a": 1}).encode()) == {"a": 1}


@pytest.mark.parametrize(
    "body, reason",
    [
        # Found by tests/production/test_fuzz.py: both were a 500 before.
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"update_id": ' + b"7" * 5000 + b"}", "number too long"),
    ],
    ids=["deep", "long-int"],
)
def test_json_python_refuses_to_parse_is_a_400_not_a_crash(body: bytes, reason: str):
    with pytest.raises(WebhookRejected) as error:
        parse_json_object(body)
    assert error.value.status == 400 and reason in error.value.reason


def test_forms_parse_and_reject_garbage():
    assert parse_form(b"Body=hi+there&From=%2B15550001") == {
        "Body": "hi there",
        "From": "+15550001",
    }
    assert parse_form(b"") == {}
    with pytest.raises(WebhookRejected):
        parse_form(b"\xff\xfe")


# ---------------------------------------------------------------- attachments
def test_kinds_from_mime_types():
    assert kind_from_mime("image/jpeg") == "image"
    assert kind_from_mime("audio/ogg") == "audio"
    assert kind_from_mime("application/pdf") == "document"
    assert kind_from_mime("application/zip") == "other"
    assert kind_from_mime(None) == "other"


def test_an_attachment_with_a_caption_becomes_two_messages():
    photo = Attachment(kind="image", mime_type="image/jpeg", file_id="F1")
    messages = user_messages("it arrived broken", [photo])
    assert [said.text for said in messages] == [
        '/send_attachment{"attachment_kind": "photo", "attachment_supported": true}',
        "it arrived broken",
    ]
    assert messages[0].metadata["attachments"][0]["file_id"] == "F1"
    assert messages[1].metadata == messages[0].metadata
    # The notice is the channel's, parsed by it; the caption is the customer's, for NLU.
    notice = messages[0].parse_data
    assert notice is not None and notice["intent"]["name"] == "send_attachment"
    assert {e["entity"]: e["value"] for e in notice["entities"]} == {
        "attachment_kind": "photo",
        "attachment_supported": True,
    }
    assert messages[1].parse_data is None


def test_unsupported_kinds_are_named_and_flagged():
    (said,) = user_messages(None, [Attachment(kind="sticker")])
    assert (
        said.text == '/send_attachment{"attachment_kind": "sticker", "attachment_supported": false}'
    )
    assert said.parse_data is not None
    assert user_messages("just text", []) == [Said("just text", {})]


def test_a_channel_intent_is_rasas_own_reading_and_text_is_refused():
    parsed = channel_intent('/greet{"name": "Ann"}')
    assert parsed["intent"] == {"name": "greet", "confidence": 1.0}
    assert parsed["entities"][0]["entity"] == "name" and parsed["entities"][0]["value"] == "Ann"
    with pytest.raises(ValueError):
        channel_intent("hello there")
