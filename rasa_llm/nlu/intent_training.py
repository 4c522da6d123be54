"""Fine-tuning inside ``rasa train``: the encoder, its calibration and the int8 decision.

``TransformerIntentClassifier.train`` calls ``fine_tune_intents`` and keeps what it
returns; serving a trained model never imports this module's training loop (it is
imported inside the function).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from rasa_llm.constants import SENTIMENT_LABELS
from rasa_llm.models import calibration, model_files
from rasa_llm.models.encoder_classifier import EncoderClassifier
from rasa_llm.models.inference import predict
from rasa_llm.models.onnx_encoder_classifier import OnnxEncoderClassifier
from rasa_llm.models.serving import (
    INT8_META,
    Served,
    agreement_record,
    agreement_texts,
    int8_refusal,
    served_temperature,
    serving_model,
)
from rasa_llm.models.splits import stratified_split

logger = logging.getLogger(__name__)

KIND = model_files.INTENT_KIND


@dataclass
class TrainedIntents:
    """A fine-tuned intent model and what serves it: the float32 model or its int8 graph."""

    model: EncoderClassifier
    tokenizer: PreTrainedTokenizerBase
    labels: List[str]
    meta: Dict[str, Any]
    served: Served
    graph: Optional[bytes]


def fine_tune_intents(
    config: Mapping[str, Any],
    texts: List[str],
    intents: List[str],
    sentiments: List[int],
    *,
    device: torch.device,
    component: str,
) -> TrainedIntents:
    """Fine-tune an encoder on the intent examples, calibrate it and choose what serves.

    ``sentiments`` holds each example's sentiment label id (-1 where unlabelled) for the
    joint sentiment loss. The int8 graph is measured against the float32 model on held-out
    messages; ``quantize: auto`` keeps it only when it changes few enough answers.
    """
    base_path = (
        Path(config["model_name_or_path"])
        if config["model_name_or_path"]
        else model_files.default_encoder_path()
    )
    encoder, tokenizer = model_files.load_pretrained(base_path)
    stored_graph: Optional[bytes] = None
    labels = sorted(set(intents))
    label_ids = [labels.index(i) for i in intents]
    train_idx, val_idx = stratified_split(
        label_ids, config["validation_fraction"], config["random_seed"]
    )
    model = EncoderClassifier(encoder, len(labels), config["dropout"])
    # Imported here: serving a trained model never loads the training loop.
    from rasa_llm.models.fine_tuning import FineTuneSettings, fine_tune

    settings = FineTuneSettings(
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        learning_rate=float(config["learning_rate"]),
        head_learning_rate=float(config["head_learning_rate"]),
        weight_decay=float(config["weight_decay"]),
        warmup_ratio=float(config["warmup_ratio"]),
        max_length=config["max_length"],
        freeze_embeddings=config["freeze_embeddings"],
        freeze_layers=config["freeze_layers"],
        early_stopping_patience=config["early_stopping_patience"],
        seed=config["random_seed"],
        show_progress=config["show_progress"],
        auxiliary_weight=float(config["sentiment_loss_weight"]),
    )
    result = fine_tune(
        model,
        tokenizer,
        [texts[i] for i in train_idx],
        [label_ids[i] for i in train_idx],
        [texts[i] for i in val_idx],
        [label_ids[i] for i in val_idx],
        settings,
        device,
        auxiliary_labels=[sentiments[i] for i in train_idx],
        auxiliary_classes=len(SENTIMENT_LABELS),
    )
    temperature, ece_before, ece_after = 1.0, None, None
    int8: Dict[str, Any] = {}
    val_texts = [texts[i] for i in val_idx]
    # The int8 graph, if this mode and device serve one (whether `auto` keeps it is
    # decided below, from how many answers it changes).
    graph = serving_model(
        model.eval(),
        device,
        config["quantize"],
        graph=None,
        component=component,
    )
    if isinstance(graph, OnnxEncoderClassifier):
        stored_graph = graph.graph
        measured, on = agreement_texts(
            val_texts, [texts[i] for i in train_idx], seed=config["random_seed"]
        )
        int8.update(
            agreement_record(
                _logits(config, device, model, tokenizer, measured),
                _logits(config, device, graph, tokenizer, measured),
                on,
            )
        )
    # What will answer messages: the graph, unless `auto` refuses it for the
    # answers it changes (`int8` serves it whatever it changes).
    serves_graph = graph is not model and (
        config["quantize"] != "auto"
        or int8_refusal({INT8_META: int8}, float(config["int8_min_agreement"])) is None
    )
    if val_idx:
        val_labels = np.asarray([label_ids[i] for i in val_idx])
        # One temperature for the float32 model (a GPU, or quantize: none) and one
        # for the int8 graph that answers on the CPU: their logits differ a little.
        logits = _logits(config, device, model, tokenizer, val_texts)
        if config["calibrate"]:
            temperature = calibration.fit_temperature(logits, val_labels)
        if graph is not model:
            int8_logits = _logits(config, device, graph, tokenizer, val_texts)
            int8["temperature"] = (
                calibration.fit_temperature(int8_logits, val_labels)
                if config["calibrate"]
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
            calibration.softmax(logits, temperature=temperature_served), val_labels
        )
    elif config["calibrate"]:
        logger.warning(
            "%s: too few examples to hold any out, so confidences are not "
            "calibrated; add examples (at least 3 per intent) to calibrate.",
            component,
        )
    meta: Dict[str, Any] = {
        "kind": KIND,
        "labels": labels,
        "temperature": temperature,
        "max_length": config["max_length"],
        "base_model": str(base_path),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "validation_examples": len(val_idx),
        "validation_ece_uncalibrated": ece_before,
        "validation_ece_calibrated": ece_after,
        "history": result.history,
    }
    if int8:
        meta[INT8_META] = int8
    served: Served = graph if serves_graph else model
    if graph is not model and not serves_graph:
        logger.warning(
            "%s answers in float32 (quantize: auto): %s",
            component,
            int8_refusal(meta, float(config["int8_min_agreement"])),
        )
    logger.info(
        "%s: trained %d epochs (best %d) in %.1f s, temperature %.3f",
        component,
        result.epochs_run,
        result.best_epoch,
        result.seconds,
        served_temperature(meta, served),
    )
    return TrainedIntents(model.eval(), tokenizer, labels, meta, served, stored_graph)


def _logits(
    config: Mapping[str, Any],
    device: torch.device,
    model: Served,
    tokenizer: PreTrainedTokenizerBase,
    texts: List[str],
) -> np.ndarray:
    return predict(
        model,
        tokenizer,
        texts,
        config["max_length"],
        device,
        batch_size=config["inference_batch_size"],
    )[1]
