"""MessageLanguageDetector: each message's language, in the parse result's ``language``.

Put it first in the pipeline::

    pipeline:
      - name: rasa_llm.MessageLanguageDetector
        languages: [en, zh]

Every message gets ``language``: one of ``languages`` (:func:`message_language`), or
``null`` when the message does not tell ("48213", "ok"). Training examples get it too,
so a later component can tell which language an example is in. The bot keeps the
conversation's language in its ``language`` slot (:mod:`rasa_llm.language.language_slot`),
which this component's loading switches on, and its responses have a variation per
language conditioned on that slot.
"""

from __future__ import annotations

from typing import Any, Dict, List

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from rasa_llm.config_validation import require, validate_config
from rasa_llm.language.detection import message_language
from rasa_llm.language.language_slot import LANGUAGE_KEY, install_language_slot

__all__ = ["MessageLanguageDetector"]

SUPPORTED = ("en", "zh")


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class MessageLanguageDetector(GraphComponent):
    """Sets ``language`` on every message: one of the bot's languages, or ``None``."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """Every key this component accepts, with its default."""
        return {
            # The bot's languages, its main one first: a message in another language
            # the detector recognises (Spanish, Japanese) is given the first.
            "languages": ["en", "zh"],
        }

    @classmethod
    def validate(cls, config: Dict[str, Any]) -> None:
        """Reject unknown keys and languages the detector cannot tell apart."""
        name = cls.__name__
        validate_config(name, config, cls.get_default_config(), {"languages": list})
        languages = config["languages"]
        require(name, "languages", bool(languages), "must name at least one language", ["en"])
        unknown = [x for x in languages if x not in SUPPORTED]
        require(
            name,
            "languages",
            not unknown,
            f"holds {unknown}; the languages it tells apart are {list(SUPPORTED)}",
            ["en", "zh"],
        )
        require(
            name,
            "languages",
            len(set(languages)) == len(languages),
            "names a language twice",
            ["en", "zh"],
        )

    def __init__(self, config: Dict[str, Any]) -> None:
        self.validate(config)
        self.languages = tuple(config["languages"])
        install_language_slot()

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> MessageLanguageDetector:
        """A detector with the given config; it has nothing to train or store."""
        return cls({**cls.get_default_config(), **config})

    def process(self, messages: List[Message]) -> List[Message]:
        """Set ``language`` on every message (``None`` without text)."""
        for message in messages:
            text = message.get(TEXT) or ""
            language = message_language(text, self.languages) if text else None
            message.set(LANGUAGE_KEY, language, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Set ``language`` on the training examples too."""
        self.process(training_data.training_examples)
        return training_data
