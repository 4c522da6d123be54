"""An out-of-scope score that adds the nearest training example to the softmax confidence.

The softmax confidence alone says how sure the head is among the intents it knows; a
message of an intent it never saw can still land confidently on a near neighbour. The
cosine between its sentence vector and the nearest training example's says how far it is
from anything trained on. Each says something the other misses: on Banking77 with 10
intents held out and never trained on, the confidence alone separates them with AUROC
0.881, the cosine alone 0.887 and their sum 0.903, and at 0.9 out-of-scope recall the
sum keeps 74.2 % of in-scope messages right against 67.2 % (MiniLM; with
all-mpnet-base-v2 the AUROC rises from 0.903 to 0.940 and 73.8 % to 85.1 %;
docs/decisions/out-of-scope-score.md).

The two are on different scales, so each is standardised with its mean and standard
deviation on the in-scope validation messages (never on out-of-scope ones) and the two
z-scores are added. The threshold then applies to that sum, as it did to the confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from rasa_llm.errors import ModelLoadError

# Names of the out-of-scope score a classifier's threshold applies to ("oos_score" in
# its meta; a meta without it uses the softmax confidence).
SOFTMAX = "softmax"
SOFTMAX_AND_NEIGHBOUR = "softmax+neighbour"
OOS_SCORES = (SOFTMAX, SOFTMAX_AND_NEIGHBOUR)
# The unit sentence vectors of the training examples, beside the weights.
NEIGHBOURS_FILE = "neighbours.npy"
# Rows of messages compared with the bank at once: bounds the similarity matrix's size.
_CHUNK = 256


def unit_vectors(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@dataclass(frozen=True)
class NeighbourScore:
    """Standardised softmax confidence plus standardised cosine to the nearest example."""

    bank: np.ndarray  # unit vectors of the training examples, one row each
    confidence_mean: float
    confidence_std: float
    cosine_mean: float
    cosine_std: float

    @classmethod
    def fit(
        cls, bank: np.ndarray, in_scope_vectors: np.ndarray, in_scope_confidence: np.ndarray
    ) -> NeighbourScore:
        """Standardise on in-scope validation messages (vectors, top softmax confidences)."""
        bank = unit_vectors(bank)
        if len(bank) == 0 or len(in_scope_vectors) < 2:
            raise ValueError(
                "the neighbour score needs training examples and at least two in-scope "
                "validation messages"
            )
        cosine = nearest_cosine(bank, in_scope_vectors)
        confidence = np.asarray(in_scope_confidence, dtype=np.float64)
        return cls(
            bank=bank,
            confidence_mean=float(confidence.mean()),
            # A spread of zero (every validation message equally sure) would divide by
            # zero; 1e-6 keeps such a part from swamping the other.
            confidence_std=max(float(confidence.std()), 1e-6),
            cosine_mean=float(cosine.mean()),
            cosine_std=max(float(cosine.std()), 1e-6),
        )

    def __call__(self, vectors: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """The score of each message: higher is more in scope."""
        cosine = nearest_cosine(self.bank, vectors)
        z_confidence = (
            np.asarray(confidence, np.float64) - self.confidence_mean
        ) / self.confidence_std
        return z_confidence + (cosine - self.cosine_mean) / self.cosine_std

    def record(self) -> Dict[str, Any]:
        """What the meta stores; :meth:`from_record` reads it back with the bank."""
        return {
            "name": SOFTMAX_AND_NEIGHBOUR,
            "confidence_mean": self.confidence_mean,
            "confidence_std": self.confidence_std,
            "cosine_mean": self.cosine_mean,
            "cosine_std": self.cosine_std,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], bank: np.ndarray) -> NeighbourScore:
        """Rebuild the score from its stored record and the stored bank of training vectors."""
        return cls(
            bank=unit_vectors(bank),
            confidence_mean=float(record["confidence_mean"]),
            confidence_std=float(record["confidence_std"]),
            cosine_mean=float(record["cosine_mean"]),
            cosine_std=float(record["cosine_std"]),
        )


def nearest_cosine(bank: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Cosine between each of ``vectors`` and its nearest row of the unit-vector ``bank``."""
    queries = unit_vectors(vectors)
    out = np.empty(len(queries), dtype=np.float64)
    for start in range(0, len(queries), _CHUNK):
        block = queries[start : start + _CHUNK] @ bank.T
        out[start : start + _CHUNK] = block.max(axis=1)
    return out


def stored_form(bank: np.ndarray) -> np.ndarray:
    """The bank as it is stored and served: unit rows rounded to float16.

    Half the size of float32, and cosines move by less than 1e-3; training scores with
    this same rounded bank, so its threshold is exact for what a bot serves.
    """
    return unit_vectors(bank).astype(np.float16).astype(np.float32)


def save_neighbours(directory: Path, bank: np.ndarray) -> None:
    """Write a bank in :func:`stored_form`; :func:`load_neighbours` reads it back as is.

    Not normalised again: that would move the rounded values, and the bank read back
    would differ from the one the threshold was fitted with.
    """
    bank = np.asarray(bank, dtype=np.float32)
    if not np.array_equal(bank.astype(np.float16).astype(np.float32), bank):
        raise ValueError("save_neighbours takes a bank in stored_form (rounded to float16)")
    np.save(Path(directory) / NEIGHBOURS_FILE, bank.astype(np.float16))


def neighbour_records(meta: Mapping[str, Any]) -> List[Any]:
    """The out-of-scope score records of a classifier's meta: its own and its graph's."""
    records = [meta.get("oos_score")]
    int8 = meta.get("int8")
    if isinstance(int8, Mapping):
        records.append(int8.get("oos_score"))
    return [r for r in records if r]


def load_neighbours(
    directory: Path, meta: Mapping[str, Any], hidden_size: int
) -> Optional[np.ndarray]:
    """The bank of a classifier whose threshold applies to the neighbour score, else None.

    A meta that names the neighbour score without its bank beside it, or a bank of
    another encoder's width, fails here, with the path and the fix, rather than rejecting
    messages on a scale its threshold is not for (or failing on the first message).
    """
    records = neighbour_records(meta)
    for record in records:
        if not isinstance(record, Mapping) or record.get("name") not in OOS_SCORES:
            name = record.get("name") if isinstance(record, Mapping) else record
            raise ModelLoadError(
                str(directory),
                f"its out-of-scope score {name!r} is not one of {', '.join(OOS_SCORES)}",
                "train the classifier again with this version of rasa-llm",
            )
    if not any(r["name"] == SOFTMAX_AND_NEIGHBOUR for r in records):
        return None
    path = Path(directory) / NEIGHBOURS_FILE
    try:
        bank = np.load(path).astype(np.float32)
    except (OSError, ValueError) as e:
        raise ModelLoadError(
            str(path),
            f"the training examples' vectors for its out-of-scope score cannot be read ({e})",
            f"copy {NEIGHBOURS_FILE} back from the directory it was trained into, or train "
            f"the classifier again (python -m training intent ... --oos-score "
            f"{SOFTMAX_AND_NEIGHBOUR})",
        ) from e
    if bank.ndim != 2 or len(bank) == 0 or not np.isfinite(bank).all():
        raise ModelLoadError(
            str(path),
            f"the training examples' vectors have shape {bank.shape} or are not finite",
            "train the classifier again",
        )
    if bank.shape[1] != hidden_size:
        raise ModelLoadError(
            str(path),
            f"its vectors have {bank.shape[1]} dimensions and the encoder's {hidden_size}: "
            "they come from another model",
            f"copy {NEIGHBOURS_FILE} from the directory this classifier was trained into, "
            "or train it again",
        )
    return bank


def neighbour_score(
    record: Optional[Mapping[str, Any]], bank: Optional[np.ndarray]
) -> Optional[NeighbourScore]:
    """The score a threshold applies to: None for the softmax confidence."""
    if not record or record.get("name") == SOFTMAX:
        return None
    if bank is None:  # load_neighbours reads the bank whenever a record names it
        raise ValueError("a neighbour score record without its bank")
    return NeighbourScore.from_record(record, bank)
