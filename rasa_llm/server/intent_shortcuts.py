"""IntentShortcuts: customers' words are read as words, whatever they start with.

Rasa reads a message that starts with ``/`` as an intent shortcut: ``/request_human``
skips the intent classifier, ``/inform{"order_number": "10023"}`` fills slots at will
(``RegexMessageHandler``, the last node of every NLU graph). That is how buttons work
(the button's payload comes back as the message), and how a developer talks to a bot
in ``rasa shell``; from a customer's keyboard it is a way around everything the
assistant checks.

:func:`install_intent_shortcut_guard` wraps ``MessageProcessor.parse_message``: a
message from a channel (any ``input_channel`` but none, which the authenticated HTTP
API and programmatic parses have, and ``cmdline`` in ``rasa shell`` only: Rasa's stock
REST channel lets its caller name any input channel) that starts with ``/`` is
read as a shortcut only when it is exactly the payload of a button (or quick reply)
the bot sent in that conversation's current session, as a click on it would send
(:func:`offered_payloads`). Any other such message goes through NLU as text, as if it
did not start with ``/``: the classifier, the entity extractors and the sentiment
analyzer read it, and the log notes ``intent shortcut read as text`` with the channel
(never the text). Channels that make a message themselves (an attachment notice) hand
Rasa its parse instead (``UserMessage.parse_data``), which Rasa takes without parsing.

The rule runs where Rasa has the conversation locked and its tracker loaded, so a click
is checked against the buttons of the turn that was saved just before it.
"""

from __future__ import annotations

import copy
import functools
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, FrozenSet, Iterable, List, Optional, Set

if TYPE_CHECKING:
    from rasa.core.channels.channel import UserMessage
    from rasa.shared.core.trackers import DialogueStateTracker

__all__ = [
    "TRUSTED_INPUT_CHANNELS",
    "install_intent_shortcut_guard",
    "offered_payloads",
    "shortcut_allowed",
]

logger = logging.getLogger(__name__)

PREFIX = "/"
# Where a message does not come from a customer: Rasa's HTTP API (token-protected)
# and programmatic parses have no input channel.
TRUSTED_INPUT_CHANNELS: FrozenSet[Optional[str]] = frozenset({None})
# `rasa shell` talks as `cmdline`; elsewhere that name proves nothing (Rasa's stock REST
# channel takes the input channel from the caller's body).
SHELL_INPUT_CHANNEL = "cmdline"
# Set on the copy of a message that NLU reads, never on the message that is stored.
TEXT_ONLY_KEY = "rasa_llm_text_only"
_INSTALLED = "_rasa_llm_intent_shortcuts"


def offered_payloads(events: Iterable[Any]) -> Set[str]:
    """The payloads of the buttons and quick replies the bot sent in the current session.

    ``events`` are a tracker's events, oldest first; the session starts at the last
    ``session_started`` (or at the start of the conversation).
    """
    from rasa.shared.core.events import BotUttered, SessionStarted

    payloads: Set[str] = set()
    for event in reversed(list(events)):
        if isinstance(event, SessionStarted):
            break
        if isinstance(event, BotUttered):
            data = event.data or {}
            for key in ("buttons", "quick_replies"):
                for button in data.get(key) or ():
                    payload = button.get("payload") if isinstance(button, dict) else None
                    if isinstance(payload, str) and payload.strip():
                        payloads.add(payload.strip())
    return payloads


def shortcut_allowed(message: UserMessage, tracker: Optional[DialogueStateTracker]) -> bool:
    """Whether ``message`` may be read as an intent shortcut (see the module docstring)."""
    text = (message.text or "").strip()
    if not text.startswith(PREFIX):
        return True  # nothing to decide: it is not a shortcut
    if message.input_channel in TRUSTED_INPUT_CHANNELS:
        return True
    if message.input_channel == SHELL_INPUT_CHANNEL and in_rasa_shell():
        return True
    if tracker is None:
        return False
    return text in offered_payloads(tracker.events)


def in_rasa_shell(*, argv: Optional[List[str]] = None) -> bool:
    """Whether this process is ``rasa shell`` (or ``python -m rasa shell``)."""
    args = sys.argv if argv is None else argv
    if args[1:2] != ["shell"]:
        return False
    program = Path(args[0])
    # `rasa shell`, or `python -m rasa shell`, whose program is .../rasa/__main__.py.
    return program.name == "rasa" or program.parent.name == "rasa"


def _text_only(message: UserMessage) -> UserMessage:
    """A copy of ``message`` that NLU reads and RegexMessageHandler leaves alone."""
    marked = copy.copy(message)
    marked.metadata = {**(message.metadata or {}), TEXT_ONLY_KEY: True}
    return marked


def _wrap_parse_message(original: Any) -> Any:
    @functools.wraps(original)
    async def parse_message(  # positional: replaces Rasa's method of the same signature
        self: Any,
        message: UserMessage,
        tracker: Optional[DialogueStateTracker] = None,
        only_output_properties: bool = True,
    ) -> Dict[str, Any]:
        if not shortcut_allowed(message, tracker):
            logger.info(
                "intent shortcut read as text (channel=%s): it is not a button the bot "
                "offered in this conversation",
                message.input_channel,
            )
            parse_data = await original(self, _text_only(message), tracker, only_output_properties)
            # The stored message is the customer's, without the mark.
            metadata = parse_data.get("metadata")
            if isinstance(metadata, dict):
                metadata.pop(TEXT_ONLY_KEY, None)
            return dict(parse_data)
        return dict(await original(self, message, tracker, only_output_properties))

    setattr(parse_message, _INSTALLED, True)
    return parse_message


def _wrap_regex_process(original: Any) -> Any:
    @functools.wraps(original)
    def process(
        self: Any, messages: List[Any], domain: Any = None
    ) -> List[Any]:  # positional: replaces Rasa's method of the same signature
        marked = [bool((m.get("metadata") or {}).get(TEXT_ONLY_KEY)) for m in messages]
        if not any(marked):
            return list(original(self, messages, domain))
        pairs = list(zip(messages, marked, strict=True))
        unpacked = iter(original(self, [m for m, text_only in pairs if not text_only], domain))
        return [m if text_only else next(unpacked) for m, text_only in pairs]

    setattr(process, _INSTALLED, True)
    return process


def install_intent_shortcut_guard() -> None:
    """Read customers' ``/...`` messages as text unless offered as a button. Idempotent."""
    from rasa.core.processor import MessageProcessor
    from rasa.nlu.classifiers.regex_message_handler import RegexMessageHandler

    if not getattr(MessageProcessor.parse_message, _INSTALLED, False):
        MessageProcessor.parse_message = _wrap_parse_message(  # type: ignore[method-assign]
            MessageProcessor.parse_message
        )
    if not getattr(RegexMessageHandler.process, _INSTALLED, False):
        RegexMessageHandler.process = _wrap_regex_process(  # type: ignore[method-assign]
            RegexMessageHandler.process
        )
