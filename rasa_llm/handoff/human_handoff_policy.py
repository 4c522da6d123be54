"""A dialogue policy that hands the conversation to a person when the bot should stop.

Rules in ``data/rules.yml`` cover "the customer asks for a person". Two triggers are
not expressible as rules, because they span turns of any intent: a customer who is
negative for two messages in a row, and one whose messages hit the fallback twice in a
row. This policy predicts the hand-off action for those, above every other policy, and
predicts nothing otherwise. It has nothing to train.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from rasa.core.constants import POLICY_PRIORITY, RULE_POLICY_PRIORITY
from rasa.core.policies.policy import Policy, PolicyPrediction, SupportedData
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    UserUttered,
)
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

from rasa_llm.config_validation import require, validate_config
from rasa_llm.errors import InvalidComponentConfigError
from rasa_llm.handoff.handoff_rules import HandoffRule, UserTurn

logger = logging.getLogger(__name__)

_TYPES: Dict[str, Any] = {
    POLICY_PRIORITY: int,
    "handoff_action": str,
    "negative_turns": int,
    "fallback_turns": int,
    "fallback_intents": list,
    "fallback_actions": list,
    "question_intents": list,
    "sentiment_entity": str,
    "negative_value": str,
}


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True
)
class HumanHandoffPolicy(Policy):
    """Predicts ``action_handoff`` after 2 negative turns or 2 fallbacks in a row."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """The policy's settings with their defaults (docs/configuration.md lists them)."""
        return {
            # Above RulePolicy: a customer who is upset twice goes to a person even
            # when a rule would answer the message.
            POLICY_PRIORITY: RULE_POLICY_PRIORITY + 1,
            # The action that tells the customer and pauses the conversation.
            "handoff_action": "action_handoff",
            # Consecutive user turns with the negative sentiment entity; 0 disables.
            "negative_turns": 2,
            # Consecutive fallback turns (this one included); 0 disables.
            "fallback_turns": 2,
            # Intents that mean "the bot could not understand or answer".
            "fallback_intents": ["nlu_fallback", "out_of_scope"],
            # Actions that answer such a turn.
            "fallback_actions": ["action_generative_fallback", "action_default_fallback"],
            # Intents those actions answer by design (a question for the knowledge
            # base): such a turn is not a failed one.
            "question_intents": ["ask_policy"],
            # The entity rasa_llm.TransformerSentimentAnalyzer adds, and its value.
            "sentiment_entity": "sentiment",
            "negative_value": "negative",
        }

    @staticmethod
    def supported_data() -> SupportedData:
        """The policy reads both stories and rules (it learns nothing from either)."""
        return SupportedData.ML_AND_RULE_DATA

    def __init__(  # positional: Rasa's Policy.__init__ signature
        self,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        featurizer: Optional[Any] = None,
    ) -> None:
        name = type(self).__name__
        defaults = self.get_default_config()
        known = {k: v for k, v in config.items() if k in defaults or k not in _RASA_KEYS}
        validate_config(name, known, defaults, _TYPES)
        for key in ("negative_turns", "fallback_turns"):
            require(name, key, config[key] >= 0, "must be 0 or more", defaults[key])
        super().__init__(config, model_storage, resource, execution_context, featurizer)
        self.rule = HandoffRule(
            negative_turns=config["negative_turns"],
            fallback_turns=config["fallback_turns"],
            person_intents=(),  # asking for a person is a rule in data/rules.yml
            fallback_intents=tuple(config["fallback_intents"]),
            fallback_actions=tuple(config["fallback_actions"]),
            # A model trained before the key existed has no value for it in its schema.
            question_intents=tuple(config.get("question_intents", defaults["question_intents"])),
            handoff_action=config["handoff_action"],
            sentiment_entity=config["sentiment_entity"],
            negative_value=config["negative_value"],
        )

    def train(
        self,
        training_trackers: List[TrackerWithCachedStates],
        domain: Domain,
        **kwargs: Any,
    ) -> Resource:
        """Nothing to learn: check the hand-off action is in the domain and keep the settings."""
        if self.rule.handoff_action not in domain.action_names_or_texts:
            raise InvalidComponentConfigError(
                type(self).__name__,
                "handoff_action",
                f"names '{self.rule.handoff_action}', which is not in the domain",
                "add it under `actions:` in domain.yml, or set handoff_action to an "
                "action the domain lists",
            )
        return self._resource

    def predict_action_probabilities(  # positional: overrides Rasa's Policy method
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        """Predict the hand-off action when the rules say so; listen after it; else abstain."""
        probabilities = self._default_predictions(domain)
        # After the hand-off action the bot waits: a person has the conversation, or the
        # desk was unreachable and the customer was told so. Rules only know this for
        # "asked for a person", not for the hand-offs this policy starts.
        if tracker.latest_action_name == self.rule.handoff_action:
            probabilities[domain.index_for_action(ACTION_LISTEN_NAME)] = 1.0
            return self._prediction(probabilities, diagnostic_data={"reason": "after hand-off"})
        # Only right after a customer message; never in the middle of the bot's turn.
        if tracker.latest_action_name != ACTION_LISTEN_NAME or not isinstance(
            _last_relevant(tracker), UserUttered
        ):
            return self._prediction(probabilities)
        reason = self.rule.reason(self.turns(tracker))
        if reason and self.rule.handoff_action in domain.action_names_or_texts:
            probabilities[domain.index_for_action(self.rule.handoff_action)] = 1.0
            logger.debug("HumanHandoffPolicy: hand-off (%s)", reason)
            return self._prediction(probabilities, diagnostic_data={"reason": reason})
        return self._prediction(probabilities)

    def turns(self, tracker: DialogueStateTracker) -> List[UserTurn]:
        """User turns since the last hand-off, by the rule the hand-off action uses too."""
        return self.rule.turns_from_events(e.as_dict() for e in tracker.applied_events())


# Keys Rasa's recipe or Policy base class may put into any policy's config.
_RASA_KEYS = frozenset({"max_history", "featurizer", "finetuning_epoch_fraction"})


def _last_relevant(tracker: DialogueStateTracker) -> Any:
    # The newest event that is a user message or an action (slots etc. come between).
    for event in reversed(tracker.events):
        if isinstance(event, (UserUttered, ActionExecuted)):
            return event
    return None
