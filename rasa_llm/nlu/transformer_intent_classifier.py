"""TransformerIntentClassifier: a fine-tuned transformer encoder with calibrated
confidences, filling ``intent`` and ``intent_ranking`` exactly as Rasa's classifiers do.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from transformers import PreTrainedTokenizerBase

from rasa_llm.constants import SENTENCE_VECTOR, SENTIMENT_LABELS
from rasa_llm.errors import ModelLoadError, TrainingDataError
from rasa_llm.models import calibration, model_files
from rasa_llm.models.device import resolve_device
from rasa_llm.models.encoder_classifier import EncoderClassifier
from rasa_llm.models.inference import predict
from rasa_llm.models.model_files import load_classifier, save_classifier
from rasa_llm.models.neighbour_score import (
    NeighbourScore,
    load_neighbours,
    neighbour_score,
    save_neighbours,
)
from rasa_llm.models.serving import (
    Served,
    served_oos_score,
    served_temperature,
    served_threshold,
    serving_model,
    store_graph,
    stored_graph,
)
from rasa_llm.nlu import intent_config
from rasa_llm.nlu.intent_training import fine_tune_intents
from rasa_llm.nlu.ranking import build_ranking, empty_intent, reject_below
from rasa_llm.nlu.resources import read_resource
from rasa_llm.nlu.sentiment_data import sentiment_label
from rasa_llm.server.log_redactor import log_redactor

logger = logging.getLogger(__name__)

KIND = model_files.INTENT_KIND

@DefaultV1Recipe.register(
    [
        DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER,
        # Also a featurizer, so Rasa runs ``process_training_data`` and the sentiment
        # analyzer after it trains on this encoder's sentence vectors.
        DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER,
    ],
    is_trainable=True,
)
class TransformerIntentClassifier(GraphComponent, IntentClassifier):
    """Intent classifier that fine-tunes a transformer encoder on the bot's NLU data."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """Every key this component accepts, with its default (``intent_config``)."""
        return intent_config.defaults()

    @classmethod
    def validate(cls, config: Dict[str, Any]) -> None:
        """Reject unknown keys, wrong types and values out of range."""
        intent_config.validate(cls.__name__, config)

    def __init__(
        self,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        *,
        model: EncoderClassifier | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        labels: Sequence[str] = (),
        meta: Dict[str, Any] | None = None,
        graph: bytes | None = None,
        neighbours: np.ndarray | None = None,
    ) -> None:
        self.validate(config)
        self._config = dict(config)
        self._model_storage = model_storage
        self._resource = resource
        self.device = resolve_device(type(self).__name__, config["device"])
        self.model = model.to(self.device).eval() if model is not None else None
        self._serving: Served | None = None  # built from self.model when first used
        self._graph = graph  # the stored int8 ONNX graph of self.model, if any
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.meta: Dict[str, Any] = dict(meta or {})
        # The training examples' unit vectors, when the stored threshold applies to the
        # neighbour score (rasa_llm.models.neighbour_score); the scorer is built once.
        self._neighbours = neighbours
        self._scorer: NeighbourScore | None = None

    @property
    def temperature(self) -> float:
        """The temperature of the model that answers (int8 graph or float32)."""
        assert self.model is not None
        return served_temperature(self.meta, self._served(self.model))

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> TransformerIntentClassifier:
        """An untrained component, as Rasa creates it before ``train``."""
        return cls(config, model_storage, resource)

    # ------------------------------------------------------------------ training
    def train(self, training_data: TrainingData) -> Resource:
        """Fine-tune (or adopt a ready classifier) on the intent examples."""
        texts, intents, sentiments = self._intent_examples(training_data)
        if self._config["classifier_path"]:
            self._adopt(Path(self._config["classifier_path"]), set(intents))
        else:
            self._fine_tune(texts, intents, sentiments)
        self.persist()
        return self._resource

    def _intent_examples(
        self, training_data: TrainingData
    ) -> Tuple[List[str], List[str], List[int]]:
        """Texts, intents and sentiment label ids (-1 where unlabelled)."""
        texts, intents, sentiments = [], [], []
        for example in training_data.intent_examples:
            if example.get(TEXT) and example.get(INTENT):
                texts.append(example.get(TEXT))
                intents.append(example.get(INTENT))
                label = sentiment_label(example, type(self).__name__)
                sentiments.append(SENTIMENT_LABELS.index(label) if label else -1)
        if len(set(intents)) < 2:
            raise TrainingDataError(
                type(self).__name__,
                f"the NLU data has {len(set(intents))} intent(s) with examples; a "
                "classifier needs at least two",
                "add intents with examples to data/nlu.yml, or remove this "
                "component from the pipeline",
            )
        return texts, intents, sentiments

    def _fine_tune(self, texts: List[str], intents: List[str], sentiments: List[int]) -> None:
        name = type(self).__name__
        trained = fine_tune_intents(
            self._config, texts, intents, sentiments, device=self.device, component=name
        )
        self.model, self.tokenizer = trained.model, trained.tokenizer
        self.labels, self.meta = trained.labels, trained.meta
        self._serving, self._graph = trained.served, trained.graph

    def _adopt(self, path: Path, intents: set) -> None:
        """Use a classifier fine-tuned outside Rasa, after checking its labels."""
        model, tokenizer, meta = load_classifier(path, self._config["dropout"])
        missing = sorted(intents - set(meta["labels"]))
        if missing:
            raise TrainingDataError(
                type(self).__name__,
                f"the classifier at '{path}' does not know the intent(s) "
                f"{', '.join(missing)} of the NLU data",
                "fine-tune it again on data that includes them, or remove "
                "classifier_path to fine-tune inside `rasa train`",
            )
        self.model, self.tokenizer = model.to(self.device).eval(), tokenizer
        # The graph `python -m training` stored beside it is the one its int8
        # temperature was fitted on; without one, it is exported at persist.
        self._serving, self._graph = None, stored_graph(path)
        self.labels, self.meta = list(meta["labels"]), meta
        self._neighbours = load_neighbours(path, meta, model.hidden_size)
        self._scorer = None

    # ---------------------------------------------------------------- inference
    def process(self, messages: List[Message]) -> List[Message]:
        """Classify all messages with text in one forward pass (per inference batch)."""
        with_text = [m for m in messages if m.get(TEXT)]
        for message in messages:
            if not message.get(TEXT):
                message.set(INTENT, empty_intent(), add_to_output=True)
                message.set(INTENT_RANKING_KEY, [], add_to_output=True)
        if not with_text:
            return messages
        texts = [m.get(TEXT) for m in with_text]
        for text in texts:  # from here on, log lines that quote it are redacted
            log_redactor().remember(text)
        pooled, probs = self.predict(texts)
        threshold = (
            served_threshold(self.meta, self._served(self.model))
            if self._config["use_stored_threshold"] and self.model is not None
            else None
        )
        # The neighbour score, where the threshold applies to it; None: the confidence.
        scores: List[float | None] = [None] * len(texts)
        scorer = self._oos_scorer() if threshold is not None else None
        if scorer is not None:
            scores = scorer(pooled, probs.max(axis=1)).tolist()
        for message, vector, row, score in zip(with_text, pooled, probs, scores, strict=True):
            intent, ranking = build_ranking(row, self.labels, self._config["ranking_length"])
            intent, ranking = reject_below(
                intent, ranking, threshold, DEFAULT_NLU_FALLBACK_INTENT_NAME, score=score
            )
            message.set(INTENT, intent, add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
            message.set(SENTENCE_VECTOR, vector)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Leave sentence vectors on the training examples for components after this."""
        examples = [m for m in training_data.training_examples if m.get(TEXT)]
        if examples:
            pooled, _ = self.predict([m.get(TEXT) for m in examples])
            for message, vector in zip(examples, pooled, strict=True):
                message.set(SENTENCE_VECTOR, vector)
        return training_data

    def predict(self, texts: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
        """Pooled sentence vectors and calibrated probabilities for ``texts``."""
        if self.model is None or self.tokenizer is None:
            raise ModelLoadError(
                self._resource.name,
                f"{type(self).__name__} has no trained model",
                "run 'rasa train' before parsing messages",
            )
        pooled, logits = predict(
            self._served(self.model),
            self.tokenizer,
            texts,
            int(self.meta.get("max_length", self._config["max_length"])),
            self.device,
            batch_size=self._config["inference_batch_size"],
        )
        return pooled.astype(np.float32), calibration.softmax(logits, temperature=self.temperature)

    def _oos_scorer(self) -> NeighbourScore | None:
        """The neighbour score of what answers, or None where the threshold is on softmax."""
        assert self.model is not None
        if self._scorer is None:
            record = served_oos_score(self.meta, self._served(self.model))
            self._scorer = neighbour_score(record, self._neighbours)
        return self._scorer

    def _served(self, model: EncoderClassifier) -> Served:
        """What answers messages for ``model``, built once (and exported, if need be)."""
        if self._serving is None:
            self._serving = serving_model(
                model,
                self.device,
                self._config["quantize"],
                graph=self._graph,
                component=type(self).__name__,
                meta=self.meta,
                min_agreement=float(self._config["int8_min_agreement"]),
            )
        return self._serving

    # ------------------------------------------------------------ persistence
    def persist(self) -> None:
        """Write the model into Rasa's model storage; :meth:`load` reads it back."""
        assert self.model is not None and self.tokenizer is not None
        with self._model_storage.write_to(self._resource) as directory:
            save_classifier(directory, self.model, self.tokenizer, self.meta)
            # The int8 graph too, so that `rasa run` does not export it at every start.
            store_graph(directory, self._served(self.model), graph=self._graph)
            if self._neighbours is not None:
                save_neighbours(directory, self._neighbours)

    @classmethod
    def load(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> TransformerIntentClassifier:
        """Load what :meth:`persist` wrote; a missing or broken model fails here, loudly."""
        cls.validate(config)
        with read_resource(model_storage, resource) as directory:
            model, tokenizer, meta = load_classifier(directory, config["dropout"])
            graph = stored_graph(directory)
            neighbours = load_neighbours(directory, meta, model.hidden_size)
        component = cls(
            config,
            model_storage,
            resource,
            model=model,
            tokenizer=tokenizer,
            labels=meta["labels"],
            meta=meta,
            graph=graph,
            neighbours=neighbours,
        )
        # Ready before the first customer: a model without a stored graph (trained on
        # a GPU, or before graphs were stored) is exported here, not on a message.
        component._served(model)  # (the same module, moved to the component's device)
        return component
