"""ActionFailureReply: a customer whose action failed still gets an answer.

Rasa 3.6 runs every predicted action in ``MessageProcessor._run_action``. When one
raises (the action server is down, answers with an error or is too slow; a form's
validation action fails), Rasa logs the exception, drops the action's events and goes
on predicting: the conversation survives, but the customer is told nothing and waits
for an answer that never comes. Rasa has no hook for this, so
:func:`install_action_failure_reply` wraps that one method: each action runs inside an
:class:`ActionFailureReply`, which turns any exception into the domain response
``utter_action_failed`` (or :data:`DEFAULT_TEXT` when the domain has none), and gives
each action a deadline: Rasa waits five minutes for an action server that has stopped
answering, far longer than a customer waits, and holds the conversation's lock all that
time. ``RASA_LLM_ACTION_TIMEOUT_S`` (default 20 seconds, above the generative
fallback's 8 s deadline) sets it. An action cut off at its deadline may still finish its
work on the action server; the customer is told it could not be finished. Everything
else stays as Rasa does it: the failed action's own events are still lost (a form keeps
the slots it had; nothing half-validated is accepted), its ``ActionExecuted`` is still
logged, and the policies still choose what follows. ``ActionExecutionRejection`` is not
a failure (a form or action declining to run, so that another policy can choose) and
passes through untouched.

The reply's event carries ``"rasa_llm_failed_action": <action name>`` in its metadata,
which the metrics event broker counts as ``rasa_llm_action_failures_total{action}``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional

if TYPE_CHECKING:
    from rasa.core.actions.action import Action
    from rasa.core.channels.channel import OutputChannel
    from rasa.core.nlg import NaturalLanguageGenerator
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import Event
    from rasa.shared.core.trackers import DialogueStateTracker

__all__ = [
    "DEFAULT_TEXT",
    "FAILED_ACTION_KEY",
    "RESPONSE",
    "ActionFailureReply",
    "ActionFailureReplyError",
    "TIMEOUT_ENV",
    "install_action_failure_reply",
]

from rasa_llm.errors import RasaLLMError

logger = logging.getLogger(__name__)

RESPONSE = "utter_action_failed"
FAILED_ACTION_KEY = "rasa_llm_failed_action"
DEFAULT_TEXT = (
    "Sorry, something went wrong on our side and I couldn't finish that just now. "
    "Please try again in a few minutes."
)
TIMEOUT_ENV = "RASA_LLM_ACTION_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 20.0
# Marks the wrapped method, so that a second install (a reload) does not wrap twice.
_INSTALLED = "_rasa_llm_action_failure_reply"


class ActionFailureReplyError(RasaLLMError):
    """The action deadline setting is not a positive number of seconds."""


def action_timeout_s() -> float:
    """The action deadline from ``RASA_LLM_ACTION_TIMEOUT_S``, or the default."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ActionFailureReplyError(
            f"{TIMEOUT_ENV}={raw!r} is not a positive number of seconds; set it to e.g. "
            f"{DEFAULT_TIMEOUT_S:g}, or unset it for the default"
        )
    return value


class ActionFailureReply:
    """Runs an action under a deadline; if it fails, returns the failure reply instead.

    Only ``run`` differs; every other attribute is the wrapped action's, so Rasa logs
    and predicts exactly as it would for the action itself.
    """

    def __init__(self, action: Action, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._action = action
        self._timeout_s = timeout_s

    def __getattr__(self, name: str) -> Any:
        return getattr(self._action, name)

    def name(self) -> str:
        """The wrapped action's name."""
        return str(self._action.name())

    def __str__(self) -> str:
        return str(self._action)

    async def run(
        self,
        output_channel: OutputChannel,
        nlg: NaturalLanguageGenerator,
        tracker: DialogueStateTracker,
        domain: Domain,
    ) -> List[Event]:
        """Run the wrapped action; if it fails or times out, send the scripted apology instead."""
        from rasa.core.actions.action import ActionExecutionRejection

        try:
            events: List[Event] = await asyncio.wait_for(
                self._action.run(output_channel, nlg, tracker, domain), self._timeout_s
            )
            return events
        except ActionExecutionRejection:
            raise
        except Exception as error:  # noqa: BLE001 - any failure gets the reply
            # Only the exception's type goes into the message; Rasa's errors for a
            # remote action name the action and the server's address. The traceback
            # (for whoever runs the server) is Rasa's own, as Rasa would have logged it.
            logger.error(
                "action %s failed (%s); the customer gets %s instead and the "
                "conversation goes on",
                self.name(), type(error).__name__, RESPONSE, exc_info=True,
            )  # fmt: skip
            return [await self._reply(output_channel, nlg, tracker, domain)]

    async def _reply(
        self,
        output_channel: OutputChannel,
        nlg: NaturalLanguageGenerator,
        tracker: DialogueStateTracker,
        domain: Domain,
    ) -> Event:
        from rasa.core.actions.action import create_bot_utterance

        message: Optional[Dict[str, Any]] = None
        if RESPONSE in domain.responses:
            try:
                message = await nlg.generate(RESPONSE, tracker, output_channel.name())
            except Exception:  # noqa: BLE001 - an NLG server may be down too
                logger.error("the response %s could not be generated", RESPONSE, exc_info=True)
        message = dict(message or {"text": DEFAULT_TEXT})
        # What create_bot_utterance does not take for the text or data becomes the
        # event's metadata.
        message[FAILED_ACTION_KEY] = self.name()
        return create_bot_utterance(message)


def install_action_failure_reply(*, timeout_s: Optional[float] = None) -> None:
    """Make Rasa's message processor answer the customer when an action fails.

    ``timeout_s`` defaults to ``RASA_LLM_ACTION_TIMEOUT_S`` (20 s); a value that is not a
    positive number stops here with the fix.
    """
    from rasa.core.processor import MessageProcessor

    deadline = action_timeout_s() if timeout_s is None else timeout_s
    original = MessageProcessor._run_action
    if getattr(original, _INSTALLED, False):
        return

    @functools.wraps(original)
    async def _run_action(
        self: MessageProcessor,
        action: Action,
        tracker: DialogueStateTracker,
        output_channel: OutputChannel,
        nlg: NaturalLanguageGenerator,
        prediction: Any,
    ) -> bool:
        wrapped: Any = ActionFailureReply(action, timeout_s=deadline)
        return bool(await original(self, wrapped, tracker, output_channel, nlg, prediction))

    setattr(_run_action, _INSTALLED, True)
    MessageProcessor._run_action = _run_action  # type: ignore[method-assign]
