from __future__ import annotations

import numpy as np
import pytest

from rasa_llm.models.calibration import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    softmax,
)


def overconfident_sample(true_temperature: float, n: int = 4000, seed: int = 0):
    """Labels drawn from softmax(z / T): logits z are over-confident by factor T."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 4.0, size=(n, 5))
    probs = softmax(logits, temperature=true_temperature)
    labels = np.array([rng.choice(5, p=p) for p in probs])
    return logits, labels


def test_softmax_rows_sum_to_one_and_are_stable():
    probs = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(probs[1], [0.5, 0.5])
    assert np.isfinite(probs).all()


def test_fit_temperature_recovers_a_known_temperature():
    logits, labels = overconfident_sample(2.5)
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.1)


def test_fitted_temperature_lowers_nll_and_ece():
    logits, labels = overconfident_sample(3.0)
    temperature = fit_temperature(logits, labels)
    assert negative_log_likelihood(logits, labels, temperature) < negative_log_likelihood(
        logits, labels, 1.0
    )
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(softmax(logits, temperature=temperature), labels)
    assert after < before / 3
    assert after < 0.03


def test_temperature_keeps_the_ranking():
    logits, labels = overconfident_sample(2.0, n=200)
    temperature = fit_temperature(logits, labels)
    np.testing.assert_array_equal(
        softmax(logits).argmax(axis=1), softmax(logits, temperature=temperature).argmax(axis=1)
    )


def test_perfect_held_out_set_does_not_push_every_confidence_to_one():
    logits = np.array([[3.0, 0.0], [0.0, 3.0]] * 5)
    labels = np.array([0, 1] * 5)
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(0.5, abs=1e-3)


def test_nothing_to_fit_means_no_change():
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0


def test_ece_of_a_calibrated_and_a_wrong_model():
    labels = np.array([0, 0, 0, 0, 1])
    calibrated = np.array([[0.8, 0.2]] * 5)
    assert expected_calibration_error(calibrated, labels) == pytest.approx(0.0)
    overconfident = np.array([[1.0, 0.0]] * 5)
    assert expected_calibration_error(overconfident, labels) == pytest.approx(0.2)
