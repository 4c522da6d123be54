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

from rasa_llm.config_validation import TypeSpec, require, validate_config
from rasa_llm.constants import DEFAULT_RANKING_LENGTH, SENTENCE_VECTOR, SENTIMENT_LABELS
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
from rasa_llm.models.onnx_encoder_classifier import OnnxEncoderClassifier
from rasa_llm.models.serving import (
    DEFAULT_MIN_AGREEMENT,
    INT8_META,
    Served,
    agreement_record,
    agreement_texts,
    check_min_agreement,
    check_quantize,
    int8_refusal,
    served_oos_score,
    served_temperature,
    served_threshold,
    serving_model,
    store_graph,
    stored_graph,
)
from rasa_llm.models.splits import stratified_split
from rasa_llm.nlu.ranking import build_ranking, empty_intent, reject_below
from rasa_llm.nlu.sentiment_data import sentiment_label
from rasa_llm.server.log_redactor import log_redactor

logger = logging.getLogger(__name__)

KIND = model_files.INTENT_KIND

_NUMBER = (int, float)
_CONFIG_TYPES: Dict[str, TypeSpec] = {
    "model_name_or_path": (str, type(None)),
    "classifier_path": (str, type(None)),
    "device": str,
    "epochs": int,
    "batch_size": int,
    "learning_rate": _NUMBER,
    "head_learning_rate": _NUMBER,
    "weight_decay": _NUMBER,
    "warmup_ratio": _NUMBER,
    "dropout": _NUMBER,
    "max_length": int,
    "freeze_embeddings": bool,
    "freeze_layers": int,
    "early_stopping_patience": int,
    "validation_fraction": _NUMBER,
    "calibrate": bool,
    "random_seed": int,
    "ranking_length": int,
    "inference_batch_size": int,
    "show_progress": bool,
    "sentiment_loss_weight": _NUMBER,
    "quantize": str,
    "int8_min_agreement": _NUMBER,
    "use_stored_threshold": bool,
}


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
        """Every key this component accepts, with its default."""
        return {
            # Local Hugging Face encoder directory to fine-tune; null = shipped MiniLM.
            "model_name_or_path": None,
            # Directory of a classifier fine-tuned outside Rasa (rasa-llm layout);
            # when set, `rasa train` uses it as is instead of fine-tuning.
            "classifier_path": None,
            # "auto" (cuda when available, else cpu), "cpu", "cuda" or "cuda:N".
            "device": "auto",
            # Passes over the training data; early stopping may end sooner.
            "epochs": 12,
            "batch_size": 32,
            # AdamW learning rate of the encoder.
            "learning_rate": 5.0e-5,
            # AdamW learning rate of the new classification head.
            "head_learning_rate": 2.0e-3,
            "weight_decay": 0.01,
            # Share of the steps spent warming the learning rate up from zero.
            "warmup_ratio": 0.1,
            # Dropout on the pooled sentence vector before the head.
            "dropout": 0.1,
            # Longer messages are cut to this many tokens.
            "max_length": 64,
            # Keep the pretrained token embeddings fixed.
            "freeze_embeddings": False,
            # Keep this many bottom encoder layers fixed (and the embeddings).
            "freeze_layers": 0,
            # Stop after this many epochs without a better validation score.
            "early_stopping_patience": 3,
            # Share of each intent's examples held out for early stopping and
            # calibration (intents with fewer than 3 examples keep all of theirs).
            "validation_fraction": 0.15,
            # Fit a temperature on the held-out examples so confidences are calibrated.
            "calibrate": True,
            "random_seed": 42,
            # Entries in intent_ranking; 0 keeps all, as in Rasa's classifiers.
            "ranking_length": DEFAULT_RANKING_LENGTH,
            # Messages per forward pass when many are processed at once.
            "inference_batch_size": 64,
            # Show a progress bar per epoch during `rasa train`.
            "show_progress": True,
            # Weight of a joint sentiment loss on examples labelled with sentiment
            # metadata, so the shared encoder keeps what the sentiment analyzer
            # needs; 0 fine-tunes on intents alone.
            "sentiment_loss_weight": 0.5,
            # How the encoder answers messages: "auto" = an int8 ONNX Runtime graph on
            # the CPU (about five times as fast, within 0.1 points of float32) and
            # unchanged on a GPU; "int8" = the graph, or fail; "none" = float32 torch.
            # Training always runs in full precision.
            "quantize": "auto",
            # "auto" answers in float32 instead when, at training, the graph kept the
            # float32 model's top intent on fewer than this share of held-out messages
            # (0.99: at most one changed answer in a hundred; larger encoders such as
            # all-mpnet-base-v2 change 3 to 6 in int8 and lose accuracy).
            "int8_min_agreement": DEFAULT_MIN_AGREEMENT,
            # A classifier from `python -m training intent --oos-label ...` stores the
            # out-of-scope threshold chosen on its validation data; below it a message
            # gets intent nlu_fallback, as with FallbackClassifier. false ignores it.
            "use_stored_threshold": True,
        }

    @classmethod
    def validate(cls, config: Dict[str, Any]) -> None:
        """Reject unknown keys, wrong types and values out of range."""
        defaults = cls.get_default_config()
        name = cls.__name__
        validate_config(name, config, defaults, _CONFIG_TYPES)

        def check(key: str, ok: bool, problem: str) -> None:
            require(name, key, ok, problem, defaults[key])

        check("epochs", config["epochs"] >= 1, "must be at least 1")
        check("batch_size", config["batch_size"] >= 1, "must be at least 1")
        check("learning_rate", config["learning_rate"] > 0, "must be positive")
        check("head_learning_rate", config["head_learning_rate"] > 0, "must be positive")
        check("weight_decay", config["weight_decay"] >= 0, "must not be negative")
        check("warmup_ratio", 0 <= config["warmup_ratio"] < 1, "must be in [0, 1)")
        check("dropout", 0 <= config["dropout"] < 1, "must be in [0, 1)")
        check("max_length", 8 <= config["max_length"] <= 512, "must be in [8, 512]")
        check("freeze_layers", config["freeze_layers"] >= 0, "must not be negative")
        check(
            "early_stopping_patience",
            config["early_stopping_patience"] >= 1,
            "must be at least 1",
        )
        check(
            "validation_fraction",
            0 <= config["validation_fraction"] <= 0.5,
            "must be in [0, 0.5]",
        )
        check("sentiment_loss_weight", config["sentiment_loss_weight"] >= 0, "must not be negative")
        check("ranking_length", config["ranking_length"] >= 0, "must not be negative")
        check("inference_batch_size", config["inference_batch_size"] >= 1, "must be at least 1")
        check_quantize(name, config["quantize"], resolve_device(name, config["device"]))
        check_min_agreement(name, config["int8_min_agreement"])

    def __init__(
        self,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
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
        base_path = (
            Path(self._config["model_name_or_path"])
            if self._config["model_name_or_path"]
            else model_files.default_encoder_path()
        )
        encoder, tokenizer = model_files.load_pretrained(base_path)
        self._serving, self._graph = None, None  # they belong to the model it replaces
        self.labels = sorted(set(intents))
        label_ids = [self.labels.index(i) for i in intents]
        train_idx, val_idx = stratified_split(
            label_ids, self._config["validation_fraction"], self._config["random_seed"]
        )
        model = EncoderClassifier(encoder, len(self.labels), self._config["dropout"])
        # Imported here: serving a trained model never loads the training loop.
        from rasa_llm.models.fine_tuning import FineTuneSettings, fine_tune

        settings = FineTuneSettings(
            epochs=self._config["epochs"],
            batch_size=self._config["batch_size"],
            learning_rate=float(self._config["learning_rate"]),
            head_learning_rate=float(self._config["head_learning_rate"]),
            weight_decay=float(self._config["weight_decay"]),
            warmup_ratio=float(self._config["warmup_ratio"]),
            max_length=self._config["max_length"],
            freeze_embeddings=self._config["freeze_embeddings"],
            freeze_layers=self._config["freeze_layers"],
            early_stopping_patience=self._config["early_stopping_patience"],
            seed=self._config["random_seed"],
            show_progress=self._config["show_progress"],
            auxiliary_weight=float(self._config["sentiment_loss_weight"]),
        )
        result = fine_tune(
            model,
            tokenizer,
            [texts[i] for i in train_idx],
            [label_ids[i] for i in train_idx],
            [texts[i] for i in val_idx],
            [label_ids[i] for i in val_idx],
            settings,
            self.device,
            auxiliary_labels=[sentiments[i] for i in train_idx],
            auxiliary_classes=len(SENTIMENT_LABELS),
        )
        temperature, ece_before, ece_after = 1.0, None, None
        int8: Dict[str, Any] = {}
        val_texts = [texts[i] for i in val_idx]
        # The int8 graph, if this mode and device serve one (whether `auto` keeps it is
        # decided below, from how many answers it changes).
        graph = serving_model(
            model.eval(), self.device, self._config["quantize"], None, type(self).__name__
        )
        if isinstance(graph, OnnxEncoderClassifier):
            self._graph = graph.graph
            measured, on = agreement_texts(
                val_texts, [texts[i] for i in train_idx], self._config["random_seed"]
            )
            int8.update(
                agreement_record(
                    self._logits(model, tokenizer, measured),
                    self._logits(graph, tokenizer, measured),
                    on,
                )
            )
        # What will answer messages: the graph, unless `auto` refuses it for the
        # answers it changes (`int8` serves it whatever it changes).
        serves_graph = graph is not model and (
            self._config["quantize"] != "auto"
            or int8_refusal({INT8_META: int8}, float(self._config["int8_min_agreement"])) is None
        )
        if val_idx:
            val_labels = np.asarray([label_ids[i] for i in val_idx])
            # One temperature for the float32 model (a GPU, or quantize: none) and one
            # for the int8 graph that answers on the CPU: their logits differ a little.
            logits = self._logits(model, tokenizer, val_texts)
            if self._config["calibrate"]:
                temperature = calibration.fit_temperature(logits, val_labels)
            if graph is not model:
                int8_logits = self._logits(graph, tokenizer, val_texts)
                int8["temperature"] = (
                    calibration.fit_temperature(int8_logits, val_labels)
                    if self._config["calibrate"]
                    else 1.0
                )
            # The figures of the model that will answer messages.
            temperature_served = temperature
            if serves_graph:
                logits, temperature_served = int8_logits, int8["temperature"]
            ece_before = calibration.expected_calibration_error(
                calibration.softmax(logits), val_labels
            )
            ece_after = calibration.expected_calibration_error(
                calibration.softmax(logits, temperature_served), val_labels
            )
        elif self._config["calibrate"]:
            logger.warning(
                "%s: too few examples to hold any out, so confidences are not "
                "calibrated; add examples (at least 3 per intent) to calibrate.",
                type(self).__name__,
            )
        self.model, self.tokenizer = model.eval(), tokenizer
        self.meta = {
            "kind": KIND,
            "labels": self.labels,
            "temperature": temperature,
            "max_length": self._config["max_length"],
            "base_model": str(base_path),
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "validation_examples": len(val_idx),
            "validation_ece_uncalibrated": ece_before,
            "validation_ece_calibrated": ece_after,
            "history": result.history,
        }
        if int8:
            self.meta[INT8_META] = int8
        self._serving = graph if serves_graph else model
        if graph is not model and not serves_graph:
            logger.warning(
                "%s answers in float32 (quantize: auto): %s",
                type(self).__name__,
                int8_refusal(self.meta, float(self._config["int8_min_agreement"])),
            )
        logger.info(
            "%s: trained %d epochs (best %d) in %.1f s, temperature %.3f",
            type(self).__name__,
            result.epochs_run,
            result.best_epoch,
            result.seconds,
            self.temperature,
        )

    def _logits(
        self, model: Served, tokenizer: PreTrainedTokenizerBase, texts: List[str]
    ) -> np.ndarray:
        return predict(
            model,
            tokenizer,
            texts,
            self._config["max_length"],
            self.device,
            self._config["inference_batch_size"],
        )[1]

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
                intent, ranking, threshold, DEFAULT_NLU_FALLBACK_INTENT_NAME, score
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
            self._config["inference_batch_size"],
        )
        return pooled.astype(np.float32), calibration.softmax(logits, self.temperature)

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
                self._graph,
                type(self).__name__,
                self.meta,
                float(self._config["int8_min_agreement"]),
            )
        return self._serving

    # ------------------------------------------------------------ persistence
    def persist(self) -> None:
        """Write the model into Rasa's model storage; :meth:`load` reads it back."""
        assert self.model is not None and self.tokenizer is not None
        with self._model_storage.write_to(self._resource) as directory:
            save_classifier(directory, self.model, self.tokenizer, self.meta)
            # The int8 graph too, so that `rasa run` does not export it at every start.
            store_graph(directory, self._served(self.model), self._graph)
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
        try:
            with model_storage.read_from(resource) as directory:
                model, tokenizer, meta = load_classifier(directory, config["dropout"])
                graph = stored_graph(directory)
                neighbours = load_neighbours(directory, meta, model.hidden_size)
        except ValueError as e:  # Rasa's storage: the resource does not exist
            raise ModelLoadError(
                resource.name,
                f"the trained model has no '{resource.name}' resource ({e})",
                "run 'rasa train' again; the model file may be from another config",
            ) from e
        component = cls(
            config,
            model_storage,
            resource,
            model,
            tokenizer,
            meta["labels"],
            meta,
            graph,
            neighbours,
        )
        # Ready before the first customer: a model without a stored graph (trained on
        # a GPU, or before graphs were stored) is exported here, not on a message.
        component._served(model)  # (the same module, moved to the component's device)
        return component
