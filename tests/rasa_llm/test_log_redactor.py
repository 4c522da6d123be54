"""The log redactor: customer texts, e-mails and phones out of log lines by default."""

from __future__ import annotations

import logging
import warnings
from typing import Iterator

import pytest
import structlog

from rasa_llm.server import log_redactor as module
from rasa_llm.server.log_redactor import (
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
    showwarning = warnings.showwarning
    config = structlog.get_config()
    processors = list(config["processors"])
    monkeypatch.setattr(module, "_installed", False)
    monkeypatch.setattr(module, "_REDACTOR", LogRedactor())
    yield
    logging.setLogRecordFactory(factory)
    warnings.showwarning = showwarning
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


def test_api_tokens_in_urls_and_headers_are_replaced():
    redactor = LogRedactor()
    line = (
        "GET /conversations/x/tracker?token=s3cr3t-T0ken_value&include_events=ALL 401; "
        "sent Authorization: Bearer abc.DEF-123_xyz= to http://h/?a=1&TOKEN=zz"
    )
    assert redactor.redact(line) == (
        "GET /conversations/x/tracker?token=[redacted]&include_events=ALL 401; "
        "sent Authorization: Bearer [redacted] to http://h/?a=1&TOKEN=[redacted]"
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
    assert full_logging_requested(environ={FULL_LOGGING_ENV: value}) is full
    assert full_logging_requested(environ={}) is False


def test_an_unreadable_setting_names_the_variable_and_the_fix():
    with pytest.raises(LogRedactorError, match=f"{FULL_LOGGING_ENV}='maybe'.*set it to true"):
        full_logging_requested(environ={FULL_LOGGING_ENV: "maybe"})


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


def test_a_traceback_logged_through_plain_logging_is_redacted(
    process_logging: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """logger.exception (the Slack and Telegram channels' failed turns, Sanic's errors)
    prints the exception's message, which can quote the customer's."""
    monkeypatch.delenv(FULL_LOGGING_ENV, raising=False)
    redactor = install_log_redaction()
    redactor.remember("my parcel never came")
    with caplog.at_level(logging.ERROR):
        try:
            raise KeyError("my parcel never came, call +44 7700 900123")
        except KeyError:
            logging.getLogger("channels.slack").exception("slack: handling delivery Ev1 failed")
    text = caplog.text
    assert "slack: handling delivery Ev1 failed" in text
    assert "Traceback (most recent call last)" in text
    assert f"KeyError: '{CUSTOMER_TEXT}, call [PHONE]'" in text
    assert "never came" not in text and "7700" not in text


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


def test_rasa_s_warnings_quoting_a_message_read_as_an_intent_are_redacted(
    process_logging: None, monkeypatch: pytest.MonkeyPatch
):
    """Rasa's own code warns, before any component saw the text."""
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.training_data.story_reader.yaml_story_reader import YAMLStoryReader
    from rasa.shared.nlu.training_data.message import Message

    monkeypatch.delenv(FULL_LOGGING_ENV, raising=False)
    domain = Domain.from_yaml('version: "3.1"\nintents: [greet]')
    secret = "my card is blocked since tuesday"
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        install_log_redaction()  # wraps what shows warnings, here the recorder
        for text in (f"/track {secret}", f"/greet{{{secret}"):
            YAMLStoryReader.unpack_regex_message(Message(data={"text": text}), domain=domain)
    messages = [str(warning.message) for warning in shown]
    assert len(messages) == 2, messages
    for message in messages:
        assert message.startswith("Failed to parse arguments in line '[redacted]'"), message
        assert "tuesday" not in message and "blocked" not in message


def test_an_exception_logged_through_structlog_is_a_plain_redacted_traceback():
    redactor = LogRedactor()
    redactor.remember("where is my parcel to Leeds")

    def handle(text: str) -> None:
        quoted = f"<{text}>"  # a local that a renderer showing locals would print
        raise TypeError(f"cannot read {quoted}")

    try:
        handle("where is my parcel to Leeds")
    except TypeError:
        event = redactor.structlog_processor(None, "error", {"event": "x", "exc_info": True})
    assert "exc_info" not in event
    assert "TypeError: cannot read <[customer text]>" in event["exception"]
    assert "Traceback" in event["exception"] and "Leeds" not in event["exception"]
