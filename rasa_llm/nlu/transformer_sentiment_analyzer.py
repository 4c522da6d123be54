"""TransformerSentimentAnalyzer: negative / neutral / positive for every message, from
the sentence vector the intent classifier's encoder pass already computed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Tuple, Type

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_CONFIDENCE,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    EXTRACTOR,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from transformers import PreTrainedTokenizerBase

from rasa_llm.config_validation import TypeSpec, require, validate_config
from rasa_llm.constants import SENTENCE_VECTOR, SENTIMENT_LABELS
from rasa_llm.errors import ModelLoadError, PipelineOrderError
from rasa_llm.models import calibration, model_files
from rasa_llm.models.device import resolve_device
from rasa_llm.models.encoder_classifier import EncoderClassifier
from rasa_llm.models.inference import predict
from rasa_llm.models.model_files import load_classifier, save_classifier
from rasa_llm.models.serving import (
    DEFAULT_MIN_AGREEMENT,
    Served,
    check_min_agreement,
    check_quantize,
    served_temperature,
    serving_model,
    store_graph,
    stored_graph,
)
from rasa_llm.nlu.ranking import build_ranking
from rasa_llm.nlu.resources import read_resource
from rasa_llm.nlu.sentiment_data import labelled_examples
from rasa_llm.nlu.transformer_intent_classifier import TransformerIntentClassifier
from rasa_llm.server.log_redactor import log_redactor

logger = logging.getLogger(__name__)

KIND = "sentiment_analyzer"
# The kind `python -m training sentiment` writes: a whole fine-tuned encoder and head.
CLASSIFIER_KIND = "sentiment_classifier"
# Key of the parse result that carries the label, the score and the ranking.
OUTPUT_KEY = "sentiment"

_CONFIG_TYPES: Dict[str, TypeSpec] = {
    "entity_name": str,
    "entity_labels": list,
    "regularization": (int, float),
    "calibrate": bool,
    "calibration_folds": int,
    "min_examples_per_label": int,
    "random_seed": int,
    "classifier_path": (str, type(None)),
    "device": str,
    "quantize": str,
    "int8_min_agreement": (int, float),
}


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=True)
class TransformerSentimentAnalyzer(GraphComponent, EntityExtractorMixin):
    """A calibrated sentiment head on the shared transformer encoder."""

    @classmethod
    def required_components(cls) -> List[Type]:
        """The encoder pass this head reads comes from the intent classifier."""
        return [TransformerIntentClassifier]

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """Every key this component accepts, with its default."""
        return {
            # Name of the entity (and so of the slot it can fill) that carries the label.
            "entity_name": "sentiment",
            # Labels that are also added as an entity; the others only appear in the
            # parse result's `sentiment` key. The entity marks a user turn in stories
            # and rules ("this customer is upset") without repeating on calm turns.
            "entity_labels": ["negative"],
            # Inverse L2 strength of the logistic-regression head (higher = weaker).
            "regularization": 1.0,
            # Fit a temperature on out-of-fold predictions so scores are calibrated.
            "calibrate": True,
            # Folds for those out-of-fold predictions.
            "calibration_folds": 5,
            # Training fails with a clear error if any label has fewer examples.
            "min_examples_per_label": 5,
            "random_seed": 42,
            # Directory of a sentiment classifier fine-tuned with `python -m training
            # sentiment`. When set, `rasa train` adopts it instead of fitting a head on
            # the intent classifier's vectors, and it runs its own encoder pass per
            # message (slower, but it can learn from far more data than a bot has).
            "classifier_path": None,
            # With classifier_path: "auto" (cuda when available, else cpu), "cpu", "cuda".
            "device": "auto",
            # With classifier_path: "auto" = an int8 ONNX Runtime graph on the CPU (as
            # the intent classifier), "int8" = the graph or fail, "none" = float32.
            "quantize": "auto",
            # With classifier_path: "auto" answers in float32 instead when the graph
            # kept the float32 model's label on fewer than this share of held-out texts
            # when it was trained (as the intent classifier).
            "int8_min_agreement": DEFAULT_MIN_AGREEMENT,
        }

    @classmethod
    def validate(cls, config: Dict[str, Any]) -> None:
        """Reject unknown keys, wrong types and values out of range."""
        defaults = cls.get_default_config()
        name = cls.__name__
        validate_config(name, config, defaults, _CONFIG_TYPES)
        unknown = [x for x in config["entity_labels"] if x not in SENTIMENT_LABELS]
        require(
            name,
            "entity_labels",
            not unknown,
            f"holds {unknown}, which are not among {list(SENTIMENT_LABELS)}",
            defaults["entity_labels"],
        )
        require(name, "entity_name", bool(config["entity_name"]), "must not be empty", "sentiment")
        require(name, "regularization", config["regularization"] > 0, "must be positive", 1.0)
        require(
            name, "calibration_folds", config["calibration_folds"] >= 2, "must be at least 2", 5
        )
        check_quantize(name, config["quantize"], resolve_device(name, config["device"]))
        check_min_agreement(name, config["int8_min_agreement"])
        require(
            name,
            "min_examples_per_label",
            config["min_examples_per_label"] >= 2,
            "must be at least 2",
            5,
        )

    def __init__(
        self,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        *,
        weights: np.ndarray | None = None,
        bias: np.ndarray | None = None,
        meta: Dict[str, Any] | None = None,
        classifier: Tuple[EncoderClassifier, PreTrainedTokenizerBase] | None = None,
        graph: bytes | None = None,
    ) -> None:
        self.validate(config)
        self._config = dict(config)
        self._model_storage = model_storage
        self._resource = resource
        self.weights = weights
        self.bias = bias
        self.meta: Dict[str, Any] = dict(meta or {})
        self.device = resolve_device(type(self).__name__, config["device"])
        # A fine-tuned classifier of its own (classifier_path), or None for the head.
        self.classifier = (
            (classifier[0].to(self.device).eval(), classifier[1]) if classifier else None
        )
        self._serving: Served | None = None
        self._graph = graph  # the stored int8 ONNX graph of the classifier's encoder

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> TransformerSentimentAnalyzer:
        """An untrained component, as Rasa creates it before ``train``."""
        return cls(config, model_storage, resource)

    @property
    def labels(self) -> List[str]:
        """The sentiment labels the head predicts, in its output order."""
        return list(self.meta.get("labels", SENTIMENT_LABELS))

    # ------------------------------------------------------------------ training
    def train(self, training_data: TrainingData) -> Resource:
        """Fit the head on the labelled examples' sentence vectors (or adopt a classifier)."""
        if self._config["classifier_path"]:
            self._adopt(Path(self._config["classifier_path"]))
            self.persist()
            return self._resource
        name = type(self).__name__
        examples, names = labelled_examples(
            training_data.training_examples, name, self._config["min_examples_per_label"]
        )
        features = np.stack([self._vector(m) for m in examples])
        labels = list(SENTIMENT_LABELS)
        targets = np.asarray([labels.index(x) for x in names])
        temperature = 1.0
        if self._config["calibrate"]:
            out_of_fold = self._out_of_fold_logits(features, targets)
            temperature = calibration.fit_temperature(out_of_fold, targets)
            accuracy = float((out_of_fold.argmax(axis=1) == targets).mean())
        else:
            accuracy = None
        model = self._fit(features, targets)
        self.weights = model.coef_.astype(np.float32)
        self.bias = model.intercept_.astype(np.float32)
        self.meta = {
            "kind": KIND,
            "labels": labels,
            "temperature": temperature,
            "embedding_size": int(features.shape[1]),
            "examples": {x: names.count(x) for x in labels},
            "cross_validated_accuracy": accuracy,
        }
        logger.info(
            "%s: trained on %d examples, cross-validated accuracy %s, temperature %.3f",
            name,
            len(examples),
            accuracy,
            temperature,
        )
        self.persist()
        return self._resource

    def _adopt(self, path: Path) -> None:
        """Use a classifier from ``python -m training sentiment``, checking its labels."""
        model, tokenizer, meta = load_classifier(path, 0.0, kind=CLASSIFIER_KIND)
        unknown = sorted(set(meta["labels"]) - set(SENTIMENT_LABELS))
        if unknown:
            raise ModelLoadError(
                path,
                f"its labels {unknown} are not among {list(SENTIMENT_LABELS)}",
                "train it again on negative/neutral/positive labels",
            )
        self.classifier, self.meta = (model.to(self.device).eval(), tokenizer), meta
        # The graph stored beside it is the one its int8 temperature was fitted on.
        self._serving, self._graph = None, stored_graph(path)

    def _fit(self, features: np.ndarray, targets: np.ndarray) -> LogisticRegression:
        # Balanced class weights: neutral examples usually outnumber the rest, and
        # missing an upset customer costs more than an extra apology.
        return LogisticRegression(
            C=float(self._config["regularization"]),
            class_weight="balanced",
            max_iter=2000,
            random_state=self._config["random_seed"],
        ).fit(features, targets)

    def _out_of_fold_logits(self, features: np.ndarray, targets: np.ndarray) -> np.ndarray:
        folds = min(self._config["calibration_folds"], int(np.bincount(targets).min()))
        splitter = StratifiedKFold(
            n_splits=folds, shuffle=True, random_state=self._config["random_seed"]
        )
        logits = np.zeros((len(targets), len(SENTIMENT_LABELS)))
        for train_idx, test_idx in splitter.split(features, targets):
            logits[test_idx] = self._fit(features[train_idx], targets[train_idx]).decision_function(
                features[test_idx]
            )
        return logits

    def _vector(self, message: Message) -> np.ndarray:
        vector = message.get(SENTENCE_VECTOR)
        if vector is None:
            raise PipelineOrderError(type(self).__name__, TransformerIntentClassifier.__name__)
        return np.asarray(vector, dtype=np.float32)

    # ---------------------------------------------------------------- inference
    def process(self, messages: List[Message]) -> List[Message]:
        """Label every message with text; add the entity for ``entity_labels``."""
        with_text = [m for m in messages if m.get(TEXT)]
        if not with_text:
            return messages
        for message in with_text:  # also in bots without our intent classifier
            log_redactor().remember(message.get(TEXT))
        if self.classifier is not None:
            probs = self.predict_texts([m.get(TEXT) for m in with_text])
        else:
            probs = self.predict(np.stack([self._vector(m) for m in with_text]))
        for message, row in zip(with_text, probs, strict=True):
            top, ranking = build_ranking(row, self.labels, 0)
            message.set(
                OUTPUT_KEY,
                {"label": top["name"], "score": top["confidence"], "ranking": ranking},
                add_to_output=True,
            )
            if top["name"] in self._config["entity_labels"]:
                entity = {
                    ENTITY_ATTRIBUTE_TYPE: self._config["entity_name"],
                    ENTITY_ATTRIBUTE_VALUE: top["name"],
                    # The whole message carries the sentiment.
                    ENTITY_ATTRIBUTE_START: 0,
                    ENTITY_ATTRIBUTE_END: len(message.get(TEXT)),
                    ENTITY_ATTRIBUTE_CONFIDENCE: top["confidence"],
                    EXTRACTOR: type(self).__name__,
                }
                message.set(ENTITIES, [*message.get(ENTITIES, []), entity], add_to_output=True)
        return messages

    def predict_texts(self, texts: List[str]) -> np.ndarray:
        """Calibrated probabilities from the adopted classifier's own encoder pass."""
        assert self.classifier is not None
        _, logits = predict(
            self._served(),
            self.classifier[1],
            texts,
            int(self.meta.get("max_length", 64)),
            self.device,
        )
        return calibration.softmax(
            logits, temperature=served_temperature(self.meta, self._served())
        )

    def _served(self) -> Served:
        """What answers for the adopted classifier, built once (exported, if need be)."""
        assert self.classifier is not None
        if self._serving is None:
            self._serving = serving_model(
                self.classifier[0],
                self.device,
                self._config["quantize"],
                graph=self._graph,
                component=type(self).__name__,
                meta=self.meta,
                min_agreement=float(self._config["int8_min_agreement"]),
            )
        return self._serving

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Calibrated probabilities over ``labels`` for a batch of sentence vectors."""
        if self.weights is None or self.bias is None:
            raise ModelLoadError(
                self._resource.name,
                f"{type(self).__name__} has no trained model",
                "run 'rasa train' before parsing messages",
            )
        if features.shape[1] != self.weights.shape[1]:
            raise ModelLoadError(
                self._resource.name,
                f"the sentence vectors have {features.shape[1]} dimensions but the "
                f"sentiment head was trained on {self.weights.shape[1]}",
                "run 'rasa train --force' so both heads share one encoder",
            )
        logits = features @ self.weights.T + self.bias
        return calibration.softmax(logits, temperature=float(self.meta.get("temperature", 1.0)))

    # ------------------------------------------------------------ persistence
    def persist(self) -> None:
        """Write the head (or the adopted classifier) and its label map; :meth:`load` reads it."""
        with self._model_storage.write_to(self._resource) as directory:
            if self.classifier is not None:
                save_classifier(Path(directory), *self.classifier, self.meta, kind=CLASSIFIER_KIND)
                store_graph(Path(directory), self._served(), graph=self._graph)
                return
            assert self.weights is not None and self.bias is not None
            model_files.save_linear_head(Path(directory), self.weights, self.bias, self.meta)

    @classmethod
    def load(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> TransformerSentimentAnalyzer:
        """Load what :meth:`persist` wrote; a missing or broken model fails here, loudly."""
        cls.validate(config)
        with read_resource(model_storage, resource) as directory:
            if model_files.directory_kind(directory) == CLASSIFIER_KIND:
                model, tokenizer, meta = load_classifier(directory, 0.0, kind=CLASSIFIER_KIND)
                component = cls(
                    config,
                    model_storage,
                    resource,
                    meta=meta,
                    classifier=(model, tokenizer),
                    graph=stored_graph(directory),
                )
                component._served()  # ready before the first message
                return component
            weights, bias, meta = model_files.load_linear_head(directory, KIND)
        return cls(config, model_storage, resource, weights=weights, bias=bias, meta=meta)
