"""``python -m training intent|sentiment``: fine-tune, calibrate, test, report, export.

One run: read TRAIN and TEST, set the out-of-scope rows aside, optionally sample N
examples per label, hold out a validation part of TRAIN, fine-tune the encoder with a
task head (:mod:`rasa_llm.models.fine_tuning`), fit a temperature and, with out-of-scope rows,
a rejection threshold on the validation part, then score TEST and write the model
directory the Rasa components load (``classifier_path``) and the report.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from training.arguments import DEFAULT_OOS_SCORE, ClassifierArguments
from training.dataset import LabelledTexts, PreparedData, load_labelled, sample_per_class
from training.errors import TrainingInputError
from training.outputs import CHECKPOINT_DIR, MODEL_DIR, PREDICTIONS_FILE
from training.soup import make_soup

logger = logging.getLogger(__name__)

DEFAULT_OOS_LABEL = "out_of_scope"
# The kinds of model directory rasa_llm's components read (rasa_llm.json "kind").
KINDS = {"intent": "intent_classifier", "sentiment": "sentiment_classifier"}
# Validation out-of-scope recalls whose thresholds the report also evaluates on TEST.
OPERATING_POINTS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
# What the model's int8 record keeps of ``served_int8``: the graph's own calibration and
# how many answers it changes, which a bot's ``quantize: auto`` decides on.
INT8_META_KEYS = (
    "temperature",
    "oos_threshold",
    "oos_score",
    "agreement",
    "agreement_texts",
    "agreement_measured_on",
)


def prepare(args: ClassifierArguments) -> PreparedData:
    """Load and check both files, then sample, relabel and split as the flags say."""
    from rasa_llm.constants import SENTIMENT_LABELS
    from rasa_llm.models.splits import stratified_split

    task = args.task

    def load(path: str) -> LabelledTexts:
        return load_labelled(
            Path(path), task, text_column=args.text_column, label_column=args.label_column
        )

    train, test = load(args.train), load(args.test)
    held_out = [x.strip() for x in (args.hold_out_labels or "").split(",") if x.strip()]
    oos_label = args.oos_label or (DEFAULT_OOS_LABEL if held_out else None)
    if held_out:
        unknown = sorted(set(held_out) - set(train.labels))
        if unknown:
            raise TrainingInputError(
                args.train, f"--hold-out-labels names {unknown}, not labels of TRAIN", "fix them"
            )
        train = _relabel(train, held_out, oos_label)
        test = _relabel(test, held_out, oos_label)
    in_scope = [i for i, label in enumerate(train.labels) if label != oos_label]
    oos_rows = [i for i, label in enumerate(train.labels) if label == oos_label]
    if oos_label and not oos_rows:
        raise TrainingInputError(
            args.train,
            f"no row has the out-of-scope label '{oos_label}'",
            "add out-of-scope examples to TRAIN (their share of it chooses the threshold), "
            "or drop --oos-label",
        )
    labels = sorted({train.labels[i] for i in in_scope})
    if len(labels) < 2:
        raise TrainingInputError(
            args.train, f"it has {len(labels)} class(es)", "a classifier needs at least two"
        )
    if task == "sentiment":
        wrong = sorted(set(labels) - set(SENTIMENT_LABELS))
        if wrong:
            raise TrainingInputError(
                args.train,
                f"sentiment labels must be among {list(SENTIMENT_LABELS)}, found {wrong}",
                "map them (e.g. 0/1/2 or 'pos') to negative, neutral and positive",
            )
    unseen = sorted(set(test.labels) - set(labels) - {oos_label})
    if unseen:
        raise TrainingInputError(
            args.test,
            f"labels {unseen[:10]} occur in TEST but never in TRAIN",
            "add training examples for them, drop those rows from TEST, or give them "
            "the --oos-label",
        )
    scoped = train.subset(in_scope)
    short: List[str] = []
    seed = args.data_seed
    if args.per_class:
        scoped, short = sample_per_class(scoped, args.per_class, seed)
    ids = [labels.index(x) for x in scoped.labels]
    train_idx, val_idx = stratified_split(ids, args.validation_fraction, seed)
    oos_texts = [train.texts[i] for i in oos_rows]
    exposed: List[str] = []
    fraction = args.oos_train_fraction
    if fraction and not oos_label:
        raise TrainingInputError(
            "--oos-train-fraction",
            "it needs out-of-scope rows, and no --oos-label (or --hold-out-labels) names them",
            "add --oos-label LABEL, or drop --oos-train-fraction",
        )
    if fraction:
        order = np.random.default_rng(seed).permutation(len(oos_texts))
        cut = int(round(fraction * len(oos_texts)))
        if cut >= len(oos_texts):
            raise TrainingInputError(
                args.train,
                f"--oos-train-fraction {fraction} leaves none of its {len(oos_texts)} "
                "out-of-scope rows to choose the threshold",
                "lower --oos-train-fraction or add out-of-scope rows",
            )
        exposed = [oos_texts[i] for i in sorted(order[:cut])]
        oos_texts = [oos_texts[i] for i in sorted(order[cut:])]
    if args.oos_score != DEFAULT_OOS_SCORE:
        # Checked before training, not after it: the score needs both.
        if not oos_label:
            raise TrainingInputError(
                "--oos-score",
                "it chooses a threshold on out-of-scope rows, and no --oos-label (or "
                "--hold-out-labels) names them",
                "add --oos-label LABEL, or drop --oos-score",
            )
        if len(val_idx) < 2:
            raise TrainingInputError(
                "--oos-score",
                f"{args.oos_score} is standardised on the in-scope validation rows, and "
                f"there are {len(val_idx)}",
                "raise --validation-fraction, or use --oos-score softmax",
            )
    return PreparedData(
        labels=labels,
        train=scoped.subset(train_idx),
        validation=scoped.subset(val_idx),
        validation_oos=oos_texts,
        train_oos=exposed,
        test=test,
        oos_label=oos_label,
        held_out_labels=held_out,
        short_labels=short,
    )


def split_record(args: ClassifierArguments, data: PreparedData) -> Dict[str, Any]:
    """How the run drew its validation rows, stored with the model.

    A soup (``--soup``) compares it with its own split: averaged weights can only be
    chosen on rows that none of the runs trained on.
    """
    import hashlib

    digest = hashlib.sha256()
    for text, label in zip(data.validation.texts, data.validation.labels, strict=True):
        digest.update(f"{label}\t{text}\n".encode())
    for text in data.validation_oos:
        digest.update(f"\t{text}\n".encode())
    return {
        "seed": args.data_seed,
        "validation_fraction": args.validation_fraction,
        "per_class": args.per_class,
        "validation_rows": len(data.validation),
        "validation_sha256": digest.hexdigest(),
    }


def _relabel(data: LabelledTexts, labels: Sequence[str], new: Optional[str]) -> LabelledTexts:
    return LabelledTexts(
        data.texts, [new if x in labels and new else x for x in data.labels], data.source
    )


def run_classifier(args: ClassifierArguments) -> int:
    """Run one fine-tuning job end to end; return the exit code."""
    from rasa_llm.errors import InvalidComponentConfigError
    from rasa_llm.models.device import resolve_device
    from rasa_llm.models.inference import predict
    from rasa_llm.models.model_files import save_classifier
    from rasa_llm.models.neighbour_score import SOFTMAX_AND_NEIGHBOUR, save_neighbours, stored_form
    from rasa_llm.models.onnx_encoder_classifier import GRAPH_FILE
    from rasa_llm.models.serving import INT8_META
    from training import metrics
    from training.report import write_report

    try:
        device = resolve_device("python -m training", args.device)
    except InvalidComponentConfigError as e:
        raise TrainingInputError("--device", str(e), "use auto or cpu") from e
    task = args.task
    data = prepare(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    split = split_record(args, data)
    logger.info(
        "%s: %d classes, %d training (+%d out-of-scope), %d validation (+%d out-of-scope), "
        "%d test rows, on %s",
        task,
        len(data.labels),
        len(data.train),
        len(data.train_oos),
        len(data.validation),
        len(data.validation_oos),
        len(data.test),
        device,
    )
    if args.soup:
        model, tokenizer, base_name, training = _souped(args, data, split, task, device)
    else:
        model, tokenizer, base_name, training = _fine_tuned(args, data, out, device)

    def encode(texts: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
        return predict(
            model, tokenizer, texts, args.max_length, device, batch_size=args.eval_batch_size
        )

    # The neighbour score's bank: the float32 model's vectors of the in-scope training
    # rows (outliers trained on are not examples of any intent). The int8 graph's
    # messages are compared with the same bank; its standardisation is its own.
    neighbours = (
        stored_form(encode(data.train.texts)[0])
        if data.oos_label and args.oos_score == SOFTMAX_AND_NEIGHBOUR
        else None
    )
    scored = score(data, encode, args.calibrate, args.target_oos_recall, neighbours=neighbours)
    temperature, threshold, test_probs, report = (
        scored.temperature,
        scored.threshold,
        scored.test_probs,
        scored.report,
    )
    # Last, as it moves the model to the CPU: the calibration of the int8 graph that
    # answers on a CPU (what a bot adopting this classifier serves by default).
    int8_graph, int8 = int8_calibration(
        model, tokenizer, data, args, test_probs, neighbours=neighbours
    )
    report.update(
        task=task,
        **training,
        temperature=temperature,
        device=str(device),
        base_model=base_name,
        examples={
            "train": len(data.train),
            "validation": len(data.validation),
            "validation_out_of_scope": len(data.validation_oos),
            "train_out_of_scope": len(data.train_oos),
            "test": len(data.test),
        },
    )
    if data.oos_label:
        report.update(
            oos_score=args.oos_score,
            target_oos_recall=args.target_oos_recall,
            oos_train_fraction=args.oos_train_fraction,
            oos_label=data.oos_label,
            held_out_labels=data.held_out_labels,
        )
    if data.short_labels:
        report["labels_with_fewer_than_per_class"] = data.short_labels
    meta = {
        "kind": KINDS[task],
        "labels": data.labels,
        "temperature": temperature,
        "max_length": args.max_length,
        "base_model": base_name,
        "best_epoch": training.get("best_epoch"),
        "epochs_run": training.get("epochs_run"),
        "history": training["history"],
        "trained_by": f"python -m training {task}" + (" --soup" if args.soup else ""),
        "oos_threshold": threshold,
        "oos_score": scored.oos_score,
        "oos_label": data.oos_label,
        "train_seconds": training["train_seconds"],
        "split": split,
    }
    if int8_graph is not None:
        meta[INT8_META] = {k: int8[k] for k in INT8_META_KEYS}
        report["served_int8"] = int8
    save_classifier(out / MODEL_DIR, model, tokenizer, meta, kind=KINDS[task])
    if int8_graph is not None:
        (out / MODEL_DIR / GRAPH_FILE).write_bytes(int8_graph)
    if neighbours is not None:
        save_neighbours(out / MODEL_DIR, neighbours)
    _write_predictions(out / PREDICTIONS_FILE, data, test_probs, scored.test_scores)
    in_scope = _in_scope_mask(data)
    truth = np.asarray([data.labels.index(x) for x in np.asarray(data.test.labels)[in_scope]])
    write_report(
        out,
        report,
        labels=data.labels,
        confusion=np.asarray(report["confusion"]),
        reliability=metrics.reliability_bins(test_probs[in_scope], truth),
        history=training["history"],
        title=f"{task} classifier: {Path(args.train).name} → {Path(args.test).name}",
    )
    if not args.keep_checkpoint:
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    print(_summary(report, out))
    return 0


def _souped(
    args: ClassifierArguments, data: PreparedData, split: Dict[str, Any], task: str, device: Any
) -> Tuple[Any, Any, str, Dict[str, Any]]:
    """The model ``--soup`` averages from earlier runs, and the report's training part."""
    soup = make_soup(args, data, split, KINDS[task], device)
    known = [x["train_seconds"] for x in soup.record["ingredients"] if x["train_seconds"]]
    training: Dict[str, Any] = {
        # What the model cost: its runs' training and the averaging.
        "train_seconds": round(sum(known) + soup.seconds, 1),
        "soup": {**soup.record, "seconds": round(soup.seconds, 1)},
        "history": [],
    }
    return soup.model, soup.tokenizer, soup.base_model, training


def _fine_tuned(
    args: ClassifierArguments, data: PreparedData, out: Path, device: Any
) -> Tuple[Any, Any, str, Dict[str, Any]]:
    """Fine-tune the encoder with a head on TRAIN; the model and the report's part."""
    import torch

    from rasa_llm.models import model_files
    from rasa_llm.models.encoder_classifier import EncoderClassifier
    from rasa_llm.models.fine_tuning import fine_tune

    base = Path(args.model) if args.model else model_files.default_encoder_path()
    encoder, tokenizer = model_files.load_pretrained(base)
    torch.manual_seed(args.seed)  # the dropout and head before the centroid start
    model = EncoderClassifier(encoder, len(data.labels), args.dropout)
    settings = args.fine_tune_settings()
    result = fine_tune(
        model,
        tokenizer,
        data.train.texts,
        [data.labels.index(x) for x in data.train.labels],
        data.validation.texts,
        [data.labels.index(x) for x in data.validation.labels],
        settings,
        device,
        outlier_texts=data.train_oos,
        checkpoint_dir=out / CHECKPOINT_DIR,
        resume=args.resume,
    )
    training = {
        "train_seconds": round(result.seconds, 1),
        "seconds_per_step": round(result.seconds_per_step, 4),
        "steps": result.steps,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "averaged_weights": result.averaged,
        "settings": {**asdict(settings), "dropout": args.dropout, "per_class": args.per_class},
        "history": result.history,
    }
    return model, tokenizer, str(base), training


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

    in_scope = _in_scope_mask(data)
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


def _in_scope_mask(data: PreparedData) -> np.ndarray:
    return np.asarray([x != data.oos_label for x in data.test.labels], dtype=bool)


def _write_predictions(
    path: Path, data: PreparedData, probs: np.ndarray, scores: Optional[np.ndarray]
) -> None:
    """TEST's predictions; with the neighbour score, the score its threshold applies to."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["text", "label", "predicted", "confidence", *(["oos_score"] * (scores is not None))]
        )
        for i, (text, label, row) in enumerate(
            zip(data.test.texts, data.test.labels, probs, strict=True)
        ):
            top = int(row.argmax())
            extra = [] if scores is None else [f"{scores[i]:.6f}"]
            writer.writerow([text, label, data.labels[top], f"{row[top]:.6f}", *extra])


def _summary(report: Dict[str, Any], out: Path) -> str:
    parts = [f"accuracy {report['accuracy']:.4f}", f"macro-F1 {report['macro_f1']:.4f}"]
    parts.append(f"ECE {report['ece']:.4f}")
    if "oos_recall" in report:
        parts.append(f"in-scope accuracy {report['in_scope_accuracy']:.4f}")
        parts.append(f"out-of-scope recall {report['oos_recall']:.4f}")
        parts.append(f"AUROC {report['auroc']:.4f}")
    int8 = report.get("served_int8")
    if int8:
        parts.append(f"served int8: accuracy {int8['accuracy']:.4f}, ECE {int8['ece']:.4f}")
        from rasa_llm.models.serving import DEFAULT_MIN_AGREEMENT, INT8_META, int8_refusal

        refusal = int8_refusal({INT8_META: int8}, DEFAULT_MIN_AGREEMENT)
        if refusal:
            parts.append(f"a bot with quantize: auto answers in float32: {refusal}")
    parts.append(f"{report['train_seconds']:.0f} s")
    return f"{', '.join(parts)}\nmodel: {out / MODEL_DIR}\nreport: {out / 'report.md'}"
