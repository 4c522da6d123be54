from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rasa_llm.config_validation import validate_config
from rasa_llm.errors import InvalidComponentConfigError
from rasa_llm.models.device import resolve_device
from rasa_llm.models.splits import stratified_split
from rasa_llm.nlu.ranking import build_ranking, empty_intent


def test_ranking_is_sorted_cut_and_json_ready():
    probs = np.array([0.1, 0.6, 0.3], dtype=np.float32)
    intent, ranking = build_ranking(probs, ["a", "b", "c"], 2)
    assert intent == {"name": "b", "confidence": pytest.approx(0.6)}
    assert [r["name"] for r in ranking] == ["b", "c"]
    assert all(type(r["confidence"]) is float for r in ranking)
    json.dumps(ranking)


def test_ranking_length_zero_keeps_everything_and_ties_keep_label_order():
    _, ranking = build_ranking(np.array([0.5, 0.5]), ["x", "y"], 0)
    assert [r["name"] for r in ranking] == ["x", "y"]


def test_empty_intent_matches_rasa():
    assert empty_intent() == {"name": None, "confidence": 0.0}


def test_device_auto_picks_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("C", "auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("C", "auto") == torch.device("cpu")
    assert resolve_device("C", "cpu") == torch.device("cpu")


def test_explicit_cuda_without_a_gpu_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InvalidComponentConfigError, match="no CUDA GPU"):
        resolve_device("C", "cuda")


@pytest.mark.parametrize("bad", ["gpu0", "mps", "tpu"])
def test_unknown_device_is_an_error(bad):
    with pytest.raises(InvalidComponentConfigError, match="device"):
        resolve_device("C", bad)


def test_config_validation_accepts_rasa_injected_keys_and_nulls():
    validate_config(
        "C",
        {"a": None, "finetuning_epoch_fraction": 0.5},
        {"a": None},
        {"a": (str, type(None))},
    )


def test_config_validation_rejects_bool_for_number():
    with pytest.raises(InvalidComponentConfigError, match="must be a number"):
        validate_config("C", {"lr": True}, {"lr": 0.1}, {"lr": (int, float)})


def test_stratified_split_holds_out_each_label_and_is_seeded():
    labels = [0] * 10 + [1] * 10 + [2] * 2
    train, val = stratified_split(labels, 0.2, seed=1)
    assert sorted(train + val) == list(range(22))
    assert [labels[i] for i in val].count(0) == 2
    assert [labels[i] for i in val].count(1) == 2
    assert 2 not in [labels[i] for i in val]  # too rare to hold out
    assert stratified_split(labels, 0.2, seed=1) == (train, val)
    assert stratified_split(labels, 0.2, seed=2) != (train, val)


def test_a_lone_surrogate_is_tokenized_as_a_replacement_character(tiny_bert_dir):
    """A webhook's JSON can carry "\\ud800"; the fast tokenizer raised on it."""
    import torch
    from transformers import AutoTokenizer

    from rasa_llm.models.inference import tokenize

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    with pytest.raises(TypeError):
        tokenizer(["\ud800 where is my order"])  # why tokenize() cleans first
    lone = tokenize(tokenizer, ["\ud800 where is my order"], 16, torch.device("cpu"))
    replaced = tokenize(tokenizer, ["\ufffd where is my order"], 16, torch.device("cpu"))
    assert torch.equal(lone["input_ids"], replaced["input_ids"])
