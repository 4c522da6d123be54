"""The log redactor: customer texts, e-mails and phones out of log lines by default."""

from __future__ import annotations

import logging
from typing import Iterator

import pytest
import structlog

from rasa_llm import log_redactor as module
from rasa_llm.log_redactor import (
    CUSTOMER_TEXT,
    FULL_LOGGING_ENV,
    REDACTED,
    LogRedactor,
    LogRedactorError,
    full_logging_requested,
    install_log_redaction,
)


@pytest.fixture
def process_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what installing does to this process's logging, for the tests after."""
    factory = logging.getLogRecordFactory()
    config = structlog.get_config()
    processors = list(config["processors"])
    monkeypatch.setattr(module, "_installed", False)
    monkeypatch.setattr(module, "_REDACTOR", LogRedactor())
    yield
    logging.setLogRecordFactory(factory)
    structlog.configure(**{**config, "processors": processors})


def test_remembered_texts_emails_and_phones_are_replaced():
    redactor = LogRedactor()
    redactor.remember("where is my parcel")
    redactor.remember("where is my parcel to Leeds")  # holds the first: replaced whole
    line = "Received 'where is my parcel to Leeds' from jane.doe@example.com, +44 20 7946 0958"
    assert redactor.redact(line) == f"Received '{CUSTOMER_TEXT}' from [EMAIL], [PHONE]"
    # Order numbers, times and counts are not personal and stay readable.
    assert (
        redactor.redact("order 10023 at 18:09:33, 12 events")
        == "order 10023 at 18:09:33, 12 events"
    )


def test_short_texts_are_not_remembered_and_old_ones_are_forgotten():
    redactor = LogRedactor(capacity=2)
    for text in ("hi", "first message", "second message", "third message"):
        redactor.remember(text)
    assert redactor.redact("hi there") == "hi there"
    assert redactor.redact("first message") == "first message"
    assert redactor.redact("third message") == CUSTOMER_TEXT


def test_a_disabled_redactor_changes_nothing():
    redactor = LogRedactor()
    redactor.remember("where is my parcel")
    redactor.enabled = False
    line = "where is my parcel, jane.doe@example.com"
    assert redactor.redact(line) == line


def test_structlog_keys_with_customer_content_are_blanked():
    redactor = LogRedactor()
    event = {"event": "processor.message.parse", "parse_data_text": "my card", "intent": "x"}
    assert redactor.structlog_processor(None, "debug", event) == {
        "event": "processor.message.parse",
        "parse_data_text": REDACTED,
        "intent": "x",
    }


@pytest.mark.parametrize(
    ("value", "full"), [("true", True), ("1", True), ("false", False), ("", False)]
)
def test_full_logging_setting(value: str, full: bool):
    assert full_logging_requested({FULL_LOGGING_ENV: value}) is full
    assert full_logging_requested({}) is False


def test_an_unreadable_setting_names_the_variable_and_the_fix():
    with pytest.raises(LogRedactorError, match=f"{FULL_LOGGING_ENV}='maybe'.*set it to true"):
        full_logging_requested({FULL_LOGGING_ENV: "maybe"})


def test_installed_redaction_reaches_plain_and_structured_log_lines(
    process_logging: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    from rasa.utils.log_utils import configure_structlog

    monkeypatch.delenv(FULL_LOGGING_ENV, raising=False)
    configure_structlog(logging.DEBUG)  # as `rasa run` does before loading a model
    redactor = install_log_redaction()
    redactor.remember("my parcel never came")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("rasa.core.processor").debug(
            "Received user message '%s' from %s", "my parcel never came", "+44 7700 900123"
        )
        structlog.get_logger().debug("processor.message.parse", parse_data_text="my card 4242")
    text = caplog.text
    assert f"Received user message '{CUSTOMER_TEXT}' from [PHONE]" in text
    assert "processor.message.parse" in text and REDACTED in text
    assert "never came" not in text and "7700" not in text and "4242" not in text


def test_full_logging_logs_everything_with_a_warning(
    process_logging: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setenv(FULL_LOGGING_ENV, "true")
    with caplog.at_level(logging.DEBUG):
        redactor = install_log_redaction()
        redactor.remember("my parcel never came")
        logging.getLogger("rasa.core.processor").debug("Received 'my parcel never came'")
    assert "Received 'my parcel never came'" in caplog.text
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning and FULL_LOGGING_ENV in warning[0].getMessage()
    assert "debugging only" in warning[0].getMessage()
