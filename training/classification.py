"""``python -m training intent|sentiment``: fine-tune, calibrate, test, report, export.

One run: read TRAIN and TEST, set the out-of-scope rows aside, optionally sample N
examples per label, hold out a validation part of TRAIN, fine-tune the encoder with a
task head (:mod:`rasa_llm.models.fine_tuning`), fit a temperature and, with out-of-scope rows,
a rejection threshold on the validation part, then score TEST and write the model
directory the Rasa components load (``classifier_path``) and the report.
:mod:`training.classifier_data` prepares the rows, :mod:`training.classifier_scoring`
calibrates and scores; this module runs the job and writes what it made.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from training.arguments import ClassifierArguments
from training.classifier_data import prepare, split_record
from training.classifier_scoring import in_scope_mask, int8_calibration, score
from training.dataset import PreparedData
from training.errors import TrainingInputError
from training.outputs import CHECKPOINT_DIR, MODEL_DIR, PREDICTIONS_FILE
from training.soup import make_soup

logger = logging.getLogger(__name__)

# The kinds of model directory rasa_llm's components read (rasa_llm.json "kind").
KINDS = {"intent": "intent_classifier", "sentiment": "sentiment_classifier"}
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
    in_scope = in_scope_mask(data)
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
