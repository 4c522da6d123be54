"""Weight soups: runs of one recipe averaged into one model (``--soup DIR ...``).

Runs that start from the same pretrained encoder and differ only in ``--seed`` end in
the same basin, so the average of their weights is a model too, and it often scores
above each of them (Wortsman et al. 2022, "Model soups"). Unlike an ensemble it costs
nothing when serving: one model, one forward pass, one int8 graph.

The greedy recipe: take the runs in order of validation accuracy and keep each one only
if adding it does not lower the validation accuracy of the average. The validation
rows must be rows none of the runs trained on, so every run records how it drew them
(``split`` in ``rasa_llm.json``) and the soup refuses runs that drew others. Without a
validation part (few-shot) only the uniform average is possible.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from training.arguments import ClassifierArguments
from training.dataset import PreparedData
from training.errors import TrainingInputError
from training.outputs import MODEL_DIR

logger = logging.getLogger(__name__)

SOUP_METHODS = ("greedy", "uniform")


@dataclass
class Ingredient:
    """One fine-tuned run, loaded."""

    path: Path
    model: Any  # EncoderClassifier
    meta: Dict[str, Any]


@dataclass
class Soup:
    """The averaged model and what the report says about how it was made."""

    model: Any  # EncoderClassifier
    tokenizer: Any
    base_model: str
    record: Dict[str, Any]
    seconds: float


def model_directory(path: Path) -> Path:
    """A run's OUT directory or its ``model/`` directory: the one holding the weights."""
    nested = path / MODEL_DIR
    return nested if (nested / "rasa_llm.json").is_file() else path


def load_ingredients(
    paths: Sequence[str], labels: Sequence[str], split: Dict[str, Any], kind: str, dropout: float
) -> Tuple[List[Ingredient], Any]:
    """Load every run and check it can go into one soup with this run's data."""
    from rasa_llm.models.model_files import load_classifier

    if len(paths) < 2:
        raise TrainingInputError("--soup", "it names one run", "name two or more run directories")
    ingredients: List[Ingredient] = []
    tokenizer = None
    for raw in paths:
        path = model_directory(Path(raw))
        model, loaded_tokenizer, meta = load_classifier(path, dropout, kind=kind)
        if tokenizer is None:  # runs of one base model share its tokenizer
            tokenizer = loaded_tokenizer
        if list(meta["labels"]) != list(labels):
            raise TrainingInputError(
                path,
                "its labels are not the labels of TRAIN in this run",
                "soup runs trained on the same TRAIN (and --hold-out-labels)",
            )
        _check_split(path, meta.get("split"), split)
        if ingredients:
            _check_shapes(ingredients[0], path, model)
        ingredients.append(Ingredient(path, model.cpu().eval(), meta))
    return ingredients, tokenizer


def _check_split(path: Path, theirs: Any, ours: Dict[str, Any]) -> None:
    fix = (
        "train every run with the same --split-seed, --validation-fraction and --per-class "
        "(and the same TRAIN), and give the soup that --split-seed"
    )
    if not isinstance(theirs, dict) or "validation_sha256" not in theirs:
        raise TrainingInputError(
            path,
            "it does not record which validation rows it held out (made by rasa train, "
            "or by an older python -m training)",
            "train it again with python -m training; " + fix,
        )
    # The seed and --per-class too: without a validation part the rows' digest is the
    # same for every few-shot sample, and runs on other samples saw more data.
    keys = ("validation_sha256", "seed", "per_class", "validation_fraction")
    if any(theirs.get(key) != ours[key] for key in keys):
        raise TrainingInputError(
            path,
            f"it drew other training or validation rows (split seed {theirs.get('seed')}, "
            f"--per-class {theirs.get('per_class')}, {theirs.get('validation_rows')} "
            f"validation rows; this soup: split seed {ours['seed']}, --per-class "
            f"{ours['per_class']}, {ours['validation_rows']}), so they cannot be averaged "
            "and chosen fairly",
            fix,
        )


def _check_shapes(first: Ingredient, path: Path, model: Any) -> None:
    want = {k: tuple(v.shape) for k, v in first.model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if want != have:
        raise TrainingInputError(
            path,
            f"its weights do not have the shapes of {first.path}'s (another base model?)",
            "soup runs fine-tuned from the same --model",
        )


def average(models: Sequence[Any]) -> Any:
    """A new model whose floating-point weights are the mean of ``models``' weights."""
    import torch

    states = [m.state_dict() for m in models]
    mean = {}
    for key, value in states[0].items():
        if value.is_floating_point():
            mean[key] = torch.stack([s[key].float() for s in states]).mean(0).to(value.dtype)
        else:  # integer buffers (position ids) are the same in every run
            mean[key] = value.clone()
    soup = copy.deepcopy(models[0])
    soup.load_state_dict(mean)
    return soup.eval()


def greedy(
    scores: Sequence[float], score_of: Callable[[List[int]], float]
) -> Tuple[List[int], List[Dict[str, Any]]]:
    """Wortsman et al.'s greedy soup: best run first, then each run that does not hurt.

    ``scores`` are the runs' own validation accuracies; ``score_of(indices)`` is the
    validation accuracy of the average of those runs. Ties keep the run (an average is
    rarely worse on unseen data than the runs it is as good as on validation).
    """
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept = [order[0]]
    best = scores[order[0]]
    steps: List[Dict[str, Any]] = []
    for index in order[1:]:
        trial = score_of([*kept, index])
        added = trial >= best
        steps.append({"added": index, "validation_accuracy": trial, "kept": added})
        if added:
            kept.append(index)
            best = trial
    return kept, steps


def make_soup(
    args: ClassifierArguments,
    data: PreparedData,
    split: Dict[str, Any],
    kind: str,
    device: Any,
) -> Soup:
    """Load the runs ``--soup`` names and average them as ``--soup-method`` says."""
    from rasa_llm.models.inference import predict

    started = time.perf_counter()
    val_ids = np.asarray([data.labels.index(x) for x in data.validation.labels])
    if args.soup_method == "greedy" and not len(val_ids):
        raise TrainingInputError(
            "--soup-method greedy",
            "it chooses runs on validation rows and this run has none (--validation-fraction 0)",
            "use --soup-method uniform, or hold out a validation part",
        )
    paths = args.soup or []
    ingredients, tokenizer = load_ingredients(paths, data.labels, split, kind, args.dropout)

    def logits(model: Any, texts: Sequence[str]) -> np.ndarray:
        model.to(device)
        found = predict(
            model, tokenizer, texts, args.max_length, device, batch_size=args.eval_batch_size
        )
        model.cpu()  # one run on the device at a time
        return found[1]

    def accuracy(model: Any) -> float:
        return float((logits(model, data.validation.texts).argmax(axis=1) == val_ids).mean())

    models = [ingredient.model for ingredient in ingredients]
    own = [accuracy(m) for m in models] if len(val_ids) else [float("nan")] * len(models)
    steps: List[Dict[str, Any]] = []
    if args.soup_method == "greedy":
        kept, steps = greedy(own, lambda indices: accuracy(average([models[i] for i in indices])))
    else:
        kept = list(range(len(models)))
    soup = average([models[i] for i in kept])
    record: Dict[str, Any] = {
        "method": args.soup_method,
        "ingredients": [
            {
                "path": str(ingredient.path),
                "validation_accuracy": own[i] if len(val_ids) else None,
                "train_seconds": ingredient.meta.get("train_seconds"),
                "kept": i in kept,
            }
            for i, ingredient in enumerate(ingredients)
        ],
        "greedy_steps": steps,
    }
    if len(val_ids):
        record["validation_accuracy"] = accuracy(soup)
    in_scope = [i for i, x in enumerate(data.test.labels) if x != data.oos_label]
    test_texts = [data.test.texts[i] for i in in_scope]
    truth = np.asarray([data.labels.index(data.test.labels[i]) for i in in_scope])
    _test_figures(record, [logits(m, test_texts) for m in models], truth)
    logger.info(
        "soup: %d of %d runs kept (%s)%s",
        len(kept),
        len(models),
        args.soup_method,
        f", validation accuracy {record['validation_accuracy']:.4f} (runs: "
        + ", ".join(f"{x:.4f}" for x in own)
        + ")"
        if len(val_ids)
        else "",
    )
    base = str(ingredients[0].meta.get("base_model", ingredients[0].path))
    return Soup(soup.to(device), tokenizer, base, record, time.perf_counter() - started)


def _test_figures(record: Dict[str, Any], logits: Sequence[np.ndarray], truth: np.ndarray) -> None:
    """Each run's TEST accuracy and the ensemble of the kept runs, for the report only.

    Never used to choose anything: they show what the soup gained over its runs, and
    what an ensemble of the same runs (one forward pass per run and message) scores.
    """
    from rasa_llm.models import calibration

    kept_probs = []
    for entry, run_logits in zip(record["ingredients"], logits, strict=True):
        entry["test_accuracy"] = float((run_logits.argmax(axis=1) == truth).mean())
        if entry["kept"]:
            kept_probs.append(calibration.softmax(run_logits, temperature=1.0))
    ensemble = np.mean(kept_probs, axis=0)
    record["ensemble_test_accuracy"] = float((ensemble.argmax(axis=1) == truth).mean())
