"""The neighbour out-of-scope score: its standardisation, its nearest-example cosine,
how it is stored and read back, and how a rejection by it looks in Rasa's ranking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rasa_llm.errors import ModelLoadError
from rasa_llm.models.neighbour_score import (
    NEIGHBOURS_FILE,
    NeighbourScore,
    load_neighbours,
    nearest_cosine,
    neighbour_score,
    save_neighbours,
    stored_form,
)
from rasa_llm.nlu.ranking import reject_below


def test_nearest_cosine_is_the_largest_cosine_to_any_training_example() -> None:
    rng = np.random.default_rng(0)
    bank = stored_form(rng.normal(size=(300, 8)))
    queries = rng.normal(size=(600, 8))  # more than one block of 256
    # The bank's rows are unit vectors to float16 precision; they are used as stored.
    expected = [max(float(q @ b) for b in bank) / np.linalg.norm(q) for q in queries]
    assert nearest_cosine(bank, queries) == pytest.approx(expected, abs=1e-5)
    # A training example itself is at cosine 1, whatever its length.
    assert nearest_cosine(bank, 3.0 * bank[:5]) == pytest.approx(np.ones(5), abs=1e-3)


def test_each_part_is_standardised_on_the_in_scope_validation_rows() -> None:
    bank = stored_form(np.eye(3))
    vectors = np.array([[1.0, 0, 0], [1.0, 1.0, 0], [1.0, 1.0, 1.0]])
    confidence = np.array([0.9, 0.6, 0.3])
    scorer = NeighbourScore.fit(bank, vectors, confidence)
    cosines = np.array([1.0, 1 / np.sqrt(2), 1 / np.sqrt(3)])
    assert scorer.confidence_mean == pytest.approx(0.6)
    assert scorer.confidence_std == pytest.approx(np.std(confidence))
    assert scorer.cosine_mean == pytest.approx(cosines.mean(), abs=1e-3)
    assert scorer.cosine_std == pytest.approx(cosines.std(), abs=1e-3)
    z = (confidence - confidence.mean()) / confidence.std()
    z += (cosines - cosines.mean()) / cosines.std()
    assert scorer(vectors, confidence) == pytest.approx(z, abs=1e-2)
    # On the rows it was fitted on, the sum of two z-scores averages 0.
    assert float(np.mean(scorer(vectors, confidence))) == pytest.approx(0.0, abs=1e-6)


def test_a_constant_part_does_not_divide_by_zero() -> None:
    bank = stored_form(np.eye(2))
    scorer = NeighbourScore.fit(bank, np.array([[1.0, 0], [0, 1.0]]), np.array([0.5, 0.9]))
    assert scorer.cosine_std == 1e-6  # both rows are training examples: cosine 1
    assert np.isfinite(scorer(np.array([[1.0, 1.0]]), np.array([0.7]))).all()


def test_the_score_reads_back_as_it_was_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    bank = stored_form(rng.normal(size=(50, 16)))
    scorer = NeighbourScore.fit(bank, rng.normal(size=(20, 16)), rng.uniform(size=20))
    save_neighbours(tmp_path, bank)
    assert np.load(tmp_path / NEIGHBOURS_FILE).dtype == np.float16
    meta = {"oos_score": scorer.record(), "int8": {"oos_score": scorer.record()}}
    back = neighbour_score(meta["oos_score"], load_neighbours(tmp_path, meta, 16))
    assert back is not None
    queries, confidence = rng.normal(size=(30, 16)), rng.uniform(size=30)
    # The bank was rounded to float16 before fitting, as training does: exact after.
    assert back(queries, confidence) == pytest.approx(scorer(queries, confidence), abs=1e-9)


def test_a_softmax_classifier_needs_no_bank(tmp_path: Path) -> None:
    assert load_neighbours(tmp_path, {}, 16) is None
    assert load_neighbours(tmp_path, {"oos_score": None, "int8": {"oos_score": None}}, 16) is None
    assert neighbour_score(None, None) is None
    assert neighbour_score({"name": "softmax"}, None) is None


def test_a_missing_or_broken_bank_fails_at_load_with_the_path_and_the_fix(tmp_path: Path) -> None:
    record = {
        "name": "softmax+neighbour",
        "confidence_mean": 0.5,
        "confidence_std": 0.1,
        "cosine_mean": 0.5,
        "cosine_std": 0.1,
    }
    with pytest.raises(ModelLoadError) as e:
        load_neighbours(tmp_path, {"oos_score": record}, 2)
    assert str(tmp_path / NEIGHBOURS_FILE) in str(e.value) and "Fix: copy" in str(e.value)
    # Only the graph's record names it (a float32 model with a softmax threshold): still
    # needed, since a CPU serves the graph.
    with pytest.raises(ModelLoadError):
        load_neighbours(tmp_path, {"int8": {"oos_score": record}}, 2)
    np.save(tmp_path / NEIGHBOURS_FILE, np.array([1.0, np.nan], dtype=np.float16))
    with pytest.raises(ModelLoadError, match="shape"):
        load_neighbours(tmp_path, {"oos_score": record}, 2)
    np.save(tmp_path / NEIGHBOURS_FILE, np.ones((4, 3), dtype=np.float16))
    with pytest.raises(ModelLoadError, match="3 dimensions and the encoder's 2"):
        load_neighbours(tmp_path, {"oos_score": record}, 2)
    (tmp_path / NEIGHBOURS_FILE).write_bytes(b"not numpy")
    with pytest.raises(ModelLoadError, match="cannot be read"):
        load_neighbours(tmp_path, {"oos_score": record}, 2)
    with pytest.raises(ModelLoadError, match="'knn' is not one of softmax, softmax\\+neighbour"):
        load_neighbours(tmp_path, {"oos_score": {"name": "knn"}}, 2)


def test_a_rejection_by_score_keeps_a_probability_as_the_fallback_confidence() -> None:
    intent = {"name": "refund", "confidence": 0.8}
    ranking = [dict(intent), {"name": "greet", "confidence": 0.2}]
    # The score is below the threshold (both can be negative); the confidence is not.
    fallback, new_ranking = reject_below(intent, ranking, -0.5, "nlu_fallback", score=-1.2)
    assert fallback == {"name": "nlu_fallback", "confidence": 0.8}
    assert [r["name"] for r in new_ranking] == ["nlu_fallback", "refund", "greet"]
    # A score above the threshold keeps the intent, however low its confidence.
    low = {"name": "refund", "confidence": 0.1}
    assert reject_below(low, [low], -0.5, "nlu_fallback", score=0.3) == (low, [low])
    # Without a score, FallbackClassifier's shape: the threshold as the confidence.
    assert reject_below(low, [low], 0.4, "nlu_fallback")[0] == {
        "name": "nlu_fallback",
        "confidence": 0.4,
    }
