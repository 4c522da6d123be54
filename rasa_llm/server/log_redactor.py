"""LogRedactor: keeps customers' messages out of the server's logs unless asked to.

A log line is copied to files, consoles and log services that customers never agreed
to, so by default nothing a customer typed is written there. Two routes carry it:

* Rasa's structured log events (``structlog``) put it under known keys (``text``,
  ``parse_data_text``, ``slot_values``, ``rasa_events``...): their values become
  ``[redacted]``. Rasa 3.6 has a hook for this (``get_anonymization_pipeline``), but
  registering one also makes Rasa re-read every tracker after each message, so the
  processor goes into structlog's own chain instead.
* Rasa's warnings (``warnings.warn``) that quote a message it could not read as an
  intent shortcut (a text starting with ``/``): the quoted part becomes ``[redacted]``.
* Exceptions logged through structlog: a plain traceback, without the frames' local
  variables that Rasa's console renderer would print.
* Plain ``logging`` lines (Rasa's debug output, Sanic, ours): every record is built
  through a record factory that replaces the texts of recent messages (the intent
  classifier hands each one over as it classifies it), e-mail addresses and phone
  numbers (sender ids on SMS are phone numbers) with placeholders, and API tokens
  (``?token=...``, ``Bearer ...``) with ``[redacted]``, in the message and in a logged
  exception's traceback.

``RASA_LLM_LOG_CUSTOMER_TEXT=true`` turns both off for debugging, with a warning at
start and nothing else changed. Other values than true/false stop the server with the fix.
"""

from __future__ import annotations

import bisect
import collections
import logging
import os
import re
import sys
import threading
import traceback
import warnings
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from rasa_llm.errors import RasaLLMError
from rasa_llm.fallback.pii_masker import EMAIL_PATTERN, find_phone_spans

__all__ = [
    "FULL_LOGGING_ENV",
    "LogRedactor",
    "LogRedactorError",
    "REDACTED",
    "install_log_redaction",
    "log_redactor",
]

FULL_LOGGING_ENV = "RASA_LLM_LOG_CUSTOMER_TEXT"
REDACTED = "[redacted]"
CUSTOMER_TEXT = "[customer text]"
# Rasa 3.6's own list of structlog keys that may hold what a customer said or gave
# (rasa/utils/log_utils.py, _anonymizer), kept in step with it.
STRUCTLOG_KEYS = frozenset(
    {
        "text", "response_text", "user_text", "slot_values", "parse_data_text",
        "parse_data_entities", "prediction_events", "tracker_latest_message",
        "prefilled_slots", "message", "response", "slot_candidates", "rasa_event",
        "rasa_events", "tracker_states", "current_states", "old_states", "successes",
        "current_entity", "next_entity", "states", "entity", "token_text",
        "user_message", "json_message",
    }
)  # fmt: skip
# Rasa 3.6's warnings that quote a message (yaml_story_reader.unpack_regex_message,
# processor.trigger_external_user_uttered): (fixed text)(customer's)(fixed text).
RASA_WARNINGS_QUOTING_MESSAGES = [
    re.compile(r"(Failed to parse arguments in line ')(.*?)('\. (?:Failed|Expected))", re.S),
    re.compile(r"(Continuing without )(.*?)(\. ?$)", re.S),
    re.compile(r"(but found )(.*?)(\.Continuing with given line)", re.S),
    re.compile(r"(Invalid entity specification: )(.*?)(\. Assuming no entities)", re.S),
]
# Secrets a log line can quote: Rasa's own ?token= in a URL (Sanic's access log, a
# client library's debug line) and a bearer token in a header.
SECRET_PATTERNS = [
    re.compile(r"([?&]token=)[^&\s\"'<>]+", re.I),
    re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.I),
]
# Shorter texts ("hello", "thanks", "INFO") would blank out ordinary words all over the
# log; what is personal in a short message (an e-mail, a phone) the patterns catch.
MIN_REMEMBERED_LENGTH = 8


class LogRedactorError(RasaLLMError):
    """The log privacy setting is not one this code understands."""


class LogRedactor:
    """Redacts recent customer texts, e-mails and phone numbers from log messages."""

    def __init__(self, *, capacity: int = 2048) -> None:
        self._recent: Deque[str] = collections.deque()
        # The same texts, longest first: a text that holds another is replaced whole.
        self._longest_first: List[str] = []
        self._capacity = capacity
        self._lock = threading.Lock()
        self.enabled = True

    def remember(self, text: str) -> None:
        """Redact ``text`` from every later log line (the last ``capacity`` texts)."""
        text = text.strip()
        if not self.enabled or len(text) < MIN_REMEMBERED_LENGTH:
            return
        with self._lock:
            if text in self._recent:
                return
            self._recent.append(text)
            bisect.insort(self._longest_first, text, key=lambda t: -len(t))
            if len(self._recent) > self._capacity:
                self._longest_first.remove(self._recent.popleft())

    def redact(self, line: str) -> str:
        """``line`` with remembered texts, tokens, e-mail addresses and phone numbers replaced."""
        if not self.enabled or not line:
            return line
        with self._lock:
            texts = list(self._longest_first)
        for text in texts:
            if text in line:
                line = line.replace(text, CUSTOMER_TEXT)
        for pattern in SECRET_PATTERNS:
            line = pattern.sub(lambda m: m.group(1) + REDACTED, line)
        line = EMAIL_PATTERN.sub("[EMAIL]", line)
        for start, end in reversed(find_phone_spans(line)):
            line = line[:start] + "[PHONE]" + line[end:]
        return line

    def structlog_processor(self, _: Any, __: str, event: Dict[str, Any]) -> Dict[str, Any]:
        """A structlog processor: blanks the keys that carry customer content.

        An exception logged with the event is rendered here as a plain traceback, run
        through :meth:`redact`: Rasa's console renderer would otherwise print the
        frames' local variables, which hold the message (its REST channel logs
        ``rest.message.received.failure`` so).
        """
        if self.enabled:
            for key in STRUCTLOG_KEYS.intersection(event):
                event[key] = REDACTED
            exc_info = _exception_tuple(event.pop("exc_info", None))
            if exc_info is not None:
                event["exception"] = self.redact("".join(traceback.format_exception(*exc_info)))
        return event

    def redact_warning(self, message: str) -> str:
        """A warning's text without what Rasa quotes of a customer's message.

        Rasa reads a message that starts with ``/`` as an intent shortcut and, when that
        fails, warns with the whole message before any component has seen it.
        """
        if not self.enabled:
            return message
        for pattern in RASA_WARNINGS_QUOTING_MESSAGES:
            message = pattern.sub(lambda m: m.group(1) + REDACTED + m.group(3), message)
        return self.redact(message)


_REDACTOR = LogRedactor()
_installed = False  # the record factory is wrapped once per process
_install_lock = threading.Lock()


def log_redactor() -> LogRedactor:
    """The process's redactor, which components hand customer texts to."""
    return _REDACTOR


def full_logging_requested(*, environ: Optional[Dict[str, str]] = None) -> bool:
    value = (environ if environ is not None else os.environ).get(FULL_LOGGING_ENV, "false")
    normalised = value.strip().lower()
    if normalised in ("1", "true", "yes", "on"):
        return True
    if normalised in ("", "0", "false", "no", "off"):
        return False
    raise LogRedactorError(
        f"{FULL_LOGGING_ENV}={value!r} is neither true nor false. Unset it (customer "
        f"messages are redacted from logs, the default) or set it to true to log them "
        f"in full while debugging."
    )


def _exception_tuple(exc_info: Any) -> Optional[Tuple[Any, Any, Any]]:
    """The ``exc_info`` of a structlog event (True, an exception or a tuple) as a tuple."""
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and exc_info[0] is not None:
        return exc_info
    return None


def _redacting_showwarning(
    previous: Callable[..., None], redactor: LogRedactor
) -> Callable[..., None]:
    def showwarning(  # positional: warnings calls showwarning so
        message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
    ) -> None:
        previous(redactor.redact_warning(str(message)), category, filename, lineno, file, line)

    return showwarning


# Only its formatException is used: the standard layout of a logged traceback.
_TRACEBACKS = logging.Formatter()


def _redacting_record_factory(
    previous: Callable[..., logging.LogRecord], redactor: LogRedactor
) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it for logging to report
            return record
        redacted = redactor.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if redactor.enabled and record.exc_info and record.exc_info[0] is not None:
            # logger.exception's traceback ends with the exception's own message, which
            # may quote the customer's (a KeyError on a slot value, a parser's error).
            # Formatters write exc_text as it is when it is set, so the redacted
            # traceback is the one that reaches every handler.
            record.exc_text = redactor.redact(_TRACEBACKS.formatException(record.exc_info))
        return record

    return factory


def _add_structlog_processor(redactor: LogRedactor) -> None:
    import structlog

    # The list in the config is the one every bound logger holds (also those cached on
    # first use), so inserting into it reaches loggers Rasa already made.
    processors: List[Any] = structlog.get_config()["processors"]
    if redactor.structlog_processor not in processors:
        processors.insert(0, redactor.structlog_processor)


def install_log_redaction() -> LogRedactor:
    """Redact customer text from this process's logs, or warn that it is logged in full.

    Idempotent; called when ``rasa_llm`` is imported, which ``rasa run`` and the action
    server do before the first message. Raises :class:`LogRedactorError` for a setting
    it cannot read.
    """
    global _installed
    full = full_logging_requested()
    with _install_lock:
        _REDACTOR.enabled = not full
        if not _installed:
            previous = logging.getLogRecordFactory()
            logging.setLogRecordFactory(_redacting_record_factory(previous, _REDACTOR))
            # Warnings are written by warnings.showwarning, not through logging.
            warnings.showwarning = _redacting_showwarning(warnings.showwarning, _REDACTOR)
            _installed = True
    # Every call: Rasa may have configured structlog anew since the last one.
    _add_structlog_processor(_REDACTOR)
    if full:
        logging.getLogger(__name__).warning(
            "%s is on: customer messages, e-mail addresses and phone numbers are written "
            "to the logs in full. Use it for debugging only and turn it off after.",
            FULL_LOGGING_ENV,
        )
    return _REDACTOR
