"""``action_generative_fallback``: the rasa_sdk action that answers what the bot cannot.

It is wired in ``bot/data/rules.yml`` to Rasa's ``nlu_fallback`` and to
``out_of_scope``. One :class:`GenerativeFallback` is built per action-server process,
in a background thread as soon as the action server starts, so the first customer
does not wait for the model to load. Its settings come from ``fallback.yml`` in the
directory the action server starts in (``RASA_LLM_FALLBACK_CONFIG`` names another).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from rasa_llm.errors import RasaLLMError
from rasa_llm.fallback.generative_fallback import (
    FallbackReply,
    FallbackRequest,
    GenerativeFallback,
)
from rasa_llm.fallback.task_offers import offers_path, task_offers

logger = logging.getLogger(__name__)

CONFIG_ENV = "RASA_LLM_FALLBACK_CONFIG"
WARM_UP_ENV = "RASA_LLM_FALLBACK_WARM_UP"
DEFAULT_CONFIG_FILE = "fallback.yml"
# The domain response sent when no checked reply or relevant passage is available.
SCRIPTED_RESPONSE = "utter_cannot_answer"


def config_path() -> Path:
    """Where the fallback's settings are read from."""
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE)


def load_config(path: Path) -> Dict[str, Any]:
    """The YAML mapping in ``path``; an absent file means all defaults."""
    if not path.is_file():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise RasaLLMError(
            f"Cannot read the generative fallback settings '{path}': "
            f"{' '.join(str(e).split())}. Fix: correct "
            f"the YAML (see README.md, 'Generative fallback')."
        ) from e
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise RasaLLMError(
            f"The generative fallback settings '{path}' must be a mapping of keys to "
            f"values. Fix: write 'key: value' lines (see README.md)."
        )
    return loaded


class FallbackService:
    """Builds the process's one :class:`GenerativeFallback` once, on first need."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fallback: Optional[GenerativeFallback] = None
        self._error: Optional[BaseException] = None

    def get(self) -> GenerativeFallback:
        """The shared fallback; raises the load error (again) if it could not be built."""
        with self._lock:
            if self._fallback is None:
                path = config_path()
                self._fallback = GenerativeFallback.from_config(
                    load_config(path), bot_dir=path.parent
                )
                warm_up = getattr(self._fallback.backend, "warm_up", None)
                if callable(warm_up):
                    warm_up()
            return self._fallback

    def warm_up_in_background(self) -> None:
        """Load everything now, off the request path; a failure is logged with the fix."""

        def load() -> None:
            try:
                self.get()
                logger.info("generative fallback ready")
            except Exception as e:  # logged loudly; each request then retries the load
                logger.error("generative fallback could not load: %s", e)

        threading.Thread(target=load, name="rasa-llm-fallback-warm-up", daemon=True).start()


SERVICE = FallbackService()


class ActionGenerativeFallback(Action):
    """Answers from the knowledge base through a guarded language model."""

    _warming = False

    def __init__(self) -> None:
        super().__init__()
        if not ActionGenerativeFallback._warming and os.environ.get(WARM_UP_ENV, "1") != "0":
            ActionGenerativeFallback._warming = True
            SERVICE.warm_up_in_background()
        task_offers(offers_path(config_path()))  # a broken task_offers.yml fails the start

    def name(self) -> str:
        """The action's name in the domain: ``action_generative_fallback``."""
        return "action_generative_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[Dict[str, Any]]:
        """Answer the customer's last message from the knowledge base, or with a scripted reply."""
        text, history = conversation(tracker)
        try:
            fallback = await asyncio.to_thread(SERVICE.get)
            reply: Optional[FallbackReply] = await fallback.answer(
                FallbackRequest(
                    text,
                    history,
                    tracker.get_latest_input_channel(),
                    language=_conversation_language(tracker),
                )
            )
        except Exception as e:  # the customer gets the scripted answer whatever broke
            # Our errors say what to fix and hold no customer text; anything else might
            # (an exception can quote its input), so only its type is logged.
            cause = str(e) if isinstance(e, RasaLLMError) else type(e).__name__
            logger.error("generative fallback failed (%s); sent the scripted reply", cause)
            reply = None
        why = {METADATA_KEY: reply_metadata(reply)}
        if reply is None or reply.kind == "scripted":
            if SCRIPTED_RESPONSE in (domain.get("responses") or {}):
                dispatcher.utter_message(response=SCRIPTED_RESPONSE, **why)
            else:
                dispatcher.utter_message(text=reply.text if reply else _LAST_RESORT, **why)
        else:
            dispatcher.utter_message(text=reply.text, **why)
            offer_task(dispatcher, tracker, reply)
        return []


def _conversation_language(tracker: Tracker) -> Optional[str]:
    """The ``language`` slot (rasa_llm.language) when the domain has one, else None."""
    value = tracker.slots.get("language")
    return value if isinstance(value, str) else None


_LAST_RESORT = "Sorry, I can't answer that right now. Please ask to talk to a person."
# Key of the bot message's metadata (the BotUttered event's, in any tracker store) that
# says how the fallback chose the reply and, for a generated one, where each sentence's
# claim came from.
METADATA_KEY = "rasa_llm_fallback"


def reply_metadata(reply: Optional[FallbackReply]) -> Dict[str, Any]:
    """What an operator needs to see why this reply was sent (no customer text)."""
    if reply is None:
        return {"kind": "scripted", "reason": "error"}
    return {
        "kind": reply.kind,
        "reason": reply.reason,
        "seconds": round(reply.seconds, 3),
        "passages": [{"id": p.passage.id, "score": round(p.score, 3)} for p in reply.passages],
        "grounding": reply.grounding.as_metadata() if reply.grounding else None,
    }


def offer_task(dispatcher: CollectingDispatcher, tracker: Tracker, reply: FallbackReply) -> None:
    """After an answer from a passage, offer the task its section is about, with a button.

    The offers are the bot's (``task_offers.yml``, see rasa_llm/fallback/task_offers.py);
    none while a form is open: the customer is already in the middle of a task, nor in
    a language the offer has no wording for.
    """
    if not reply.passages or (tracker.active_loop or {}).get("name"):
        return
    offer = task_offers(offers_path(config_path())).for_passage(reply.passages[0].passage.id)
    if offer is not None:
        offer = offer.in_language(reply.other_language)
    if offer is not None:
        dispatcher.utter_message(text=offer.text, buttons=offer.buttons())


def conversation(tracker: Tracker, *, turns: int = 8) -> Tuple[str, List[Tuple[str, str]]]:
    """The latest customer text and the ``turns`` texts before it, oldest first."""
    said: List[Tuple[str, str]] = []
    for event in tracker.events:
        kind = event.get("event")
        if kind in ("restart", "session_started"):
            said = []
        elif kind == "user" and event.get("text"):
            said.append(("customer", str(event["text"])))
        elif kind == "bot" and event.get("text"):
            said.append(("bot", str(event["text"])))
    latest = str(tracker.latest_message.get("text") or "")
    if said and said[-1] == ("customer", latest):
        said.pop()
    return latest, said[-turns:]
