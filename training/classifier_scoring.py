"""A classifier's calibration on validation and its figures on TEST.

:func:`score` fits the temperature and, with out-of-scope rows, the rejection threshold
(on the softmax confidence or the neighbour score) on the validation part, then scores
TEST; :func:`int8_calibration` does the same for the int8 graph a CPU serves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from training.arguments import ClassifierArguments
from training.dataset import PreparedData

logger = logging.getLogger(__name__)

# Validation out-of-scope recalls whose thresholds the report also evaluates on TEST.
OPERATING_POINTS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


@dataclass
class Scored:
    """One model's calibration on validation and figures on TEST."""

    temperature: float
    threshold: Optional[float]
    test_probs: np.ndarray
    report: Dict[str, Any]
    # The neighbour score's record (rasa_llm.models.neighbour_score) when the threshold applies
    # to it; None when it applies to the softmax confidence.
    oos_score: Optional[Dict[str, Any]] = None
    test_scores: Optional[np.ndarray] = None  # TEST's neighbour scores, with oos_score


def score(
    data: PreparedData,
    encode: Callable[[Sequence[str]], Tuple[np.ndarray, np.ndarray]],
    calibrate: bool,
    target_oos_recall: float,
    *,
    neighbours: Optional[np.ndarray] = None,
) -> Scored:
    """Fit the temperature (and threshold) on validation, then score TEST with them.

    ``encode`` gives sentence vectors and logits. With ``neighbours`` (the training rows'
    vectors) the threshold applies to the neighbour score, standardised on the in-scope
    validation rows, instead of the softmax confidence.
    """
    from rasa_llm.models import calibration
    from rasa_llm.models.neighbour_score import NeighbourScore
    from training import metrics

    val_ids = np.asarray([data.labels.index(x) for x in data.validation.labels], dtype=np.int64)
    val_vectors, val_logits = encode(data.validation.texts)
    temperature = 1.0
    if len(val_ids) and calibrate:
        temperature = calibration.fit_temperature(val_logits, val_ids)
    threshold = None
    thresholds: Dict[float, float] = {}
    scorer: Optional[NeighbourScore] = None
    if data.oos_label:
        oos_vectors, oos_logits = encode(data.validation_oos)
        oos_conf = calibration.softmax(oos_logits, temperature=temperature).max(axis=1)
        in_conf = calibration.softmax(val_logits, temperature=temperature).max(axis=1)
        if neighbours is not None:  # prepare() made sure of 2+ validation rows
            scorer = NeighbourScore.fit(neighbours, val_vectors, in_conf)
            in_conf, oos_conf = scorer(val_vectors, in_conf), scorer(oos_vectors, oos_conf)
        threshold = metrics.choose_threshold(in_conf, oos_conf, target_oos_recall)
        thresholds = {
            target: metrics.choose_threshold(in_conf, oos_conf, target)
            for target in OPERATING_POINTS
        }
    test_vectors, test_logits = encode(data.test.texts)
    test_probs = calibration.softmax(test_logits, temperature=temperature)
    test_scores = None if scorer is None else scorer(test_vectors, test_probs.max(axis=1))
    report = evaluate(data, test_probs, threshold, scores=test_scores)
    if "oos_recall" in report:
        report["operating_points"] = operating_points(
            data, test_probs, thresholds, scores=test_scores
        )
    record = None if scorer is None else scorer.record()
    return Scored(temperature, threshold, test_probs, report, record, test_scores)


def int8_calibration(
    model: Any,
    tokenizer: Any,
    data: PreparedData,
    args: ClassifierArguments,
    float32_probs: np.ndarray,
    *,
    neighbours: Optional[np.ndarray] = None,
) -> Tuple[Optional[bytes], Dict[str, Any]]:
    """The int8 ONNX graph a CPU serves, its own temperature and threshold, its figures.

    The graph's logits differ a little from float32's, so a temperature fitted on these
    is the one that calibrates what a bot on a CPU answers with. ``(None, {})`` when the
    graph cannot be made; a bot then exports one itself and uses the float32 fit.
    """
    import torch

    from rasa_llm.models.inference import predict
    from rasa_llm.models.onnx_encoder_classifier import (
        OnnxEncoderClassifier,
        OnnxServingError,
        export_int8_graph,
    )
    from rasa_llm.models.serving import agreement_record, agreement_texts

    cpu = torch.device("cpu")
    try:
        model.cpu().eval()
        graph = export_int8_graph(model)
        served = OnnxEncoderClassifier(graph, model.head, torch.get_num_threads())
    except OnnxServingError as e:
        logger.warning("no int8 graph stored with the model: %s", e)
        return None, {}

    def encode(texts: Sequence[str], *, of: Any = served) -> Tuple[np.ndarray, np.ndarray]:
        return predict(of, tokenizer, texts, args.max_length, cpu, batch_size=args.eval_batch_size)

    def logits_of(texts: Sequence[str], *, of: Any = served) -> np.ndarray:
        return encode(texts, of=of)[1]

    scored = score(data, encode, args.calibrate, args.target_oos_recall, neighbours=neighbours)
    # How many answers the graph changes on texts the model did not train on: a bot's
    # `quantize: auto` serves float32 below its int8_min_agreement (rasa_llm.models.serving).
    texts, measured_on = agreement_texts(
        [*data.validation.texts, *data.validation_oos], data.train.texts, seed=args.seed
    )
    agreement = agreement_record(logits_of(texts, of=model), logits_of(texts), measured_on)
    figures = {
        "temperature": scored.temperature,
        "oos_threshold": scored.threshold,
        "oos_score": scored.oos_score,
        **agreement,
        # Share of TEST rows whose top label is the float32 model's.
        "test_agreement": float(
            (scored.test_probs.argmax(axis=1) == float32_probs.argmax(axis=1)).mean()
        ),
    }
    keys = ("accuracy", "macro_f1", "ece", "in_scope_accuracy", "oos_recall", "auroc")
    figures.update({k: scored.report[k] for k in keys if k in scored.report})
    return graph, figures


def evaluate(
    data: PreparedData,
    probs: np.ndarray,
    threshold: Optional[float],
    *,
    scores: Optional[np.ndarray] = None,
) -> Dict[str, Any]:
    """Closed-set figures on the in-scope TEST rows; out-of-scope figures on all rows.

    The threshold applies to ``scores`` (the neighbour score) when given, else to the
    top softmax confidence.
    """
    from rasa_llm.models import calibration
    from training import metrics

    in_scope = in_scope_mask(data)
    labels = np.asarray(data.test.labels)
    truth = np.asarray([data.labels.index(x) for x in labels[in_scope]], dtype=np.int64)
    predicted = probs.argmax(axis=1)
    confusion = metrics.confusion_matrix(truth, predicted[in_scope], len(data.labels))
    report: Dict[str, Any] = dict(metrics.classification_figures(confusion, data.labels))
    report["ece"] = calibration.expected_calibration_error(probs[in_scope], truth)
    report["labels"] = data.labels
    report["confusion"] = confusion.tolist()
    if threshold is not None:
        report["threshold"] = threshold
    if threshold is not None and in_scope.all():
        logger.warning(
            "TEST has no '%s' rows, so out-of-scope recall and AUROC cannot be measured; "
            "the threshold is stored all the same",
            data.oos_label,
        )
    elif threshold is not None:
        all_truth = np.asarray(
            [data.labels.index(x) if ok else -1 for x, ok in zip(labels, in_scope, strict=True)]
        )
        report.update(
            metrics.out_of_scope_figures(
                probs.max(axis=1) if scores is None else scores,
                predicted,
                all_truth,
                ~in_scope,
                threshold,
            )
        )
    return report


def operating_points(
    data: PreparedData,
    probs: np.ndarray,
    thresholds: Dict[float, float],
    *,
    scores: Optional[np.ndarray] = None,
) -> List[Dict[str, float]]:
    """TEST's out-of-scope figures at thresholds chosen on validation for other targets.

    The stored threshold is one point of a trade-off; these rows show the rest of it
    honestly (each threshold comes from validation data, never from TEST).
    """
    rows = []
    for target, threshold in sorted(thresholds.items()):
        figures = evaluate(data, probs, threshold, scores=scores)
        rows.append(
            {
                "target_oos_recall": target,
                "threshold": threshold,
                **{k: figures[k] for k in ("in_scope_accuracy", "oos_recall", "in_scope_rejected")},
            }
        )
    return rows


def in_scope_mask(data: PreparedData) -> np.ndarray:
    """Which TEST rows carry an in-scope label (not the out-of-scope label)."""
    return np.asarray([x != data.oos_label for x in data.test.labels], dtype=bool)
