"""When a conversation goes to a person: the rule, on plain turn records.

Kept apart from Rasa's tracker types so that the dialogue policy
(:class:`~rasa_llm.handoff.human_handoff_policy.HumanHandoffPolicy`) and the hand-off action on
the action server (which sees the tracker as JSON) decide the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

REASON_ASKED = "asked_for_person"
REASON_NEGATIVE = "negative_turns"
REASON_FALLBACK = "fallback_turns"


@dataclass(frozen=True)
class UserTurn:
    """One customer message and how the bot first answered it."""

    intent: Optional[str]
    negative: bool
    # The first action after the message was a fallback (generative or default).
    answered_by_fallback: bool = False


@dataclass(frozen=True)
class HandoffRule:
    """The thresholds; ``0`` turns a trigger off."""

    negative_turns: int = 2
    fallback_turns: int = 2
    person_intents: Sequence[str] = ("request_human",)
    fallback_intents: Sequence[str] = ("nlu_fallback", "out_of_scope")
    fallback_actions: Sequence[str] = ("action_generative_fallback", "action_default_fallback")
    # Questions the fallback action answers by design (from the knowledge base): a turn
    # with one of these intents is not a failed turn, whichever action answered it.
    question_intents: Sequence[str] = ("ask_policy",)
    handoff_action: str = "action_handoff"
    sentiment_entity: str = "sentiment"
    negative_value: str = "negative"

    def reason(self, turns: Sequence[UserTurn]) -> Optional[str]:
        """Why the latest turn (last of ``turns``) goes to a person, or None.

        ``turns`` are the user turns since the last hand-off, oldest first; the latest
        one has not been answered yet.
        """
        if not turns:
            return None
        latest = turns[-1]
        if latest.intent in self.person_intents:
            return REASON_ASKED
        n = self.negative_turns
        if n and len(turns) >= n and all(t.negative for t in turns[-n:]):
            return REASON_NEGATIVE
        n = self.fallback_turns
        if (
            n
            and len(turns) >= n
            and latest.intent in self.fallback_intents
            and all(
                t.answered_by_fallback and t.intent not in self.question_intents
                for t in turns[-n:-1]
            )
        ):
            return REASON_FALLBACK
        return None

    def is_negative(self, entities: Iterable[Mapping[str, Any]]) -> bool:
        """Whether the sentiment analyzer marked the message negative."""
        return any(
            e.get("entity") == self.sentiment_entity and e.get("value") == self.negative_value
            for e in entities
        )

    def turns_from_events(self, events: Iterable[Mapping[str, Any]]) -> List[UserTurn]:
        """User turns since the last hand-off, from tracker events as JSON dicts.

        Used by the action server, whose tracker is JSON; the policy builds the same
        records from Rasa's event objects.
        """
        turns: List[Dict[str, Any]] = []
        for event in events:
            kind = event.get("event")
            if kind in ("restart", "session_started", "resume"):
                turns = []
            elif kind == "user":
                parse = event.get("parse_data") or {}
                intent = (parse.get("intent") or {}).get("name")
                entities = parse.get("entities") or []
                turns.append(
                    {"intent": intent, "negative": self.is_negative(entities), "answered": None}
                )
            elif kind == "action":
                name = event.get("name")
                if name == self.handoff_action:
                    turns = []
                elif turns and turns[-1]["answered"] is None and name != "action_listen":
                    turns[-1]["answered"] = name in self.fallback_actions
        return [UserTurn(t["intent"], t["negative"], bool(t["answered"])) for t in turns]
