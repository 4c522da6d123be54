from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY

from rasa_llm import TransformerIntentClassifier
from rasa_llm.constants import SENTENCE_VECTOR
from rasa_llm.errors import InvalidComponentConfigError, ModelLoadError, TrainingDataError
from rasa_llm.models.model_files import save_classifier
from tests.rasa_llm.conftest import EXAMPLES, build_training_data, messages, train_classifier

TEXTS = ("where is my order", "i want my money back", "hello there friend", "")


def probabilities(component: TransformerIntentClassifier, *texts: str) -> np.ndarray:
    return component.predict(list(texts))[1]


def test_fills_intent_and_ranking_like_rasa(intent_config, model_storage, execution_context):
    component = train_classifier(intent_config(ranking_length=2), model_storage, execution_context)
    out = component.process(messages(*TEXTS))

    for message, expected in zip(out[:3], ("order_status", "refund", "greet"), strict=True):
        intent = message.get(INTENT)
        ranking = message.get(INTENT_RANKING_KEY)
        assert intent["name"] == expected
        assert set(intent) == {"name", "confidence"}
        assert isinstance(intent["confidence"], float)
        assert len(ranking) == 2
        assert ranking[0] == intent
        assert ranking[0]["confidence"] >= ranking[1]["confidence"]
        assert message.as_dict(only_output_properties=True).keys() >= {INTENT, INTENT_RANKING_KEY}
        # The sentence vector is for later components, never for the parse output.
        assert SENTENCE_VECTOR not in message.as_dict(only_output_properties=True)
        assert message.get(SENTENCE_VECTOR).shape == (32,)
    assert out[3].get(INTENT) == {"name": None, "confidence": 0.0}
    assert out[3].get(INTENT_RANKING_KEY) == []


def test_ranking_length_zero_keeps_all_and_sums_to_one(
    intent_config, model_storage, execution_context
):
    component = train_classifier(intent_config(ranking_length=0), model_storage, execution_context)
    ranking = component.process(messages("track my parcel"))[0].get(INTENT_RANKING_KEY)
    assert {r["name"] for r in ranking} == {"order_status", "refund", "greet"}
    assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0, abs=1e-6)


def test_processes_the_batch_in_one_forward_pass(intent_config, model_storage, execution_context):
    component = train_classifier(intent_config(), model_storage, execution_context)
    calls = []
    # What answers messages: the int8 graph on the CPU (rasa_llm.models.serving).
    handle = component._serving.register_forward_hook(lambda *_: calls.append(1))
    try:
        component.process(messages(*TEXTS[:3], "track the parcel", "hi"))
    finally:
        handle.remove()
    assert len(calls) == 1


def test_persist_and_load_give_identical_predictions(
    intent_config, model_storage, execution_context
):
    config = intent_config()
    trained = train_classifier(config, model_storage, execution_context)
    loaded = TransformerIntentClassifier.load(
        config, model_storage, Resource("intent"), execution_context
    )
    assert loaded.labels == trained.labels
    assert loaded.temperature == trained.temperature
    np.testing.assert_array_equal(
        probabilities(trained, *TEXTS[:3]), probabilities(loaded, *TEXTS[:3])
    )


def storage(path: Path):
    from rasa.engine.storage.local_model_storage import LocalModelStorage

    path.mkdir()
    return LocalModelStorage(path)


def test_training_is_seeded_and_reproducible(intent_config, tmp_path, execution_context):
    first = train_classifier(intent_config(), storage(tmp_path / "a"), execution_context)
    second = train_classifier(intent_config(), storage(tmp_path / "b"), execution_context)
    other = train_classifier(
        intent_config(random_seed=7), storage(tmp_path / "c"), execution_context
    )
    np.testing.assert_array_equal(
        probabilities(first, *TEXTS[:3]), probabilities(second, *TEXTS[:3])
    )
    assert not np.array_equal(probabilities(first, *TEXTS[:3]), probabilities(other, *TEXTS[:3]))


def test_calibration_stores_a_temperature_and_keeps_the_ranking(
    intent_config, model_storage, execution_context
):
    calibrated = train_classifier(intent_config(), model_storage, execution_context, name="a")
    raw = train_classifier(
        intent_config(calibrate=False), model_storage, execution_context, name="b"
    )
    assert raw.temperature == 1.0
    assert calibrated.meta["validation_examples"] > 0
    # Temperature scaling minimises held-out NLL (tested in test_calibration.py);
    # here: a temperature was fitted, and it divides the logits.
    assert calibrated.temperature != 1.0
    assert isinstance(calibrated.meta["validation_ece_calibrated"], float)
    p_cal, p_raw = probabilities(calibrated, *TEXTS[:3]), probabilities(raw, *TEXTS[:3])
    np.testing.assert_array_equal(p_cal.argmax(axis=1), p_raw.argmax(axis=1))


@pytest.mark.parametrize("quantize", ["auto", "none"])
def test_each_serving_path_gets_the_temperature_fitted_on_its_own_logits(
    intent_config, model_storage, execution_context, quantize
):
    from rasa_llm.models.calibration import fit_temperature
    from rasa_llm.models.inference import predict
    from rasa_llm.models.splits import stratified_split

    config = intent_config(quantize=quantize)
    component = train_classifier(config, model_storage, execution_context)
    # The validation part the component held out, chosen again the same way.
    labels = [component.labels.index(intent) for _, intent, _ in EXAMPLES]
    _, val_idx = stratified_split(labels, config["validation_fraction"], config["random_seed"])
    texts, truth = [EXAMPLES[i][0] for i in val_idx], np.asarray([labels[i] for i in val_idx])

    def fitted(model) -> float:
        logits = predict(model, component.tokenizer, texts, 64, component.device)[1]
        return fit_temperature(logits, truth)

    assert component.meta["temperature"] == pytest.approx(fitted(component.model), rel=1e-4)
    served = component._served(component.model)
    if quantize == "auto":  # the int8 graph answers on the CPU, with a fit of its own
        assert served is not component.model
        assert component.meta["int8"]["temperature"] == pytest.approx(fitted(served), rel=1e-4)
        assert component.temperature == component.meta["int8"]["temperature"]
    else:
        assert "int8" not in component.meta
        assert component.temperature == component.meta["temperature"]
    loaded = TransformerIntentClassifier.load(
        config, model_storage, Resource("intent"), execution_context
    )
    assert loaded.temperature == component.temperature


def test_freezing_keeps_the_bottom_layers_fixed(intent_config, model_storage, execution_context):
    from transformers import AutoModel

    component = train_classifier(intent_config(freeze_layers=1), model_storage, execution_context)
    original = AutoModel.from_pretrained(intent_config()["model_name_or_path"])
    trained = component.model.encoder.state_dict()
    for name, value in original.state_dict().items():
        if name.startswith(("embeddings.", "encoder.layer.0.")):
            assert torch.equal(value, trained[name]), name
    assert not torch.equal(
        original.state_dict()["encoder.layer.1.output.dense.weight"],
        trained["encoder.layer.1.output.dense.weight"],
    )


def test_adopts_a_classifier_fine_tuned_outside_rasa(
    intent_config, model_storage, execution_context, tmp_path
):
    trained = train_classifier(intent_config(), model_storage, execution_context, name="a")
    export = tmp_path / "exported"
    save_classifier(export, trained.model, trained.tokenizer, trained.meta)

    adopted = train_classifier(
        intent_config(classifier_path=str(export), model_name_or_path=None),
        model_storage,
        execution_context,
        name="b",
    )
    np.testing.assert_array_equal(
        probabilities(trained, *TEXTS[:3]), probabilities(adopted, *TEXTS[:3])
    )

    more = build_training_data([*EXAMPLES, ("open an account", "open_account", "neutral")])
    with pytest.raises(TrainingDataError, match="open_account"):
        train_classifier(
            intent_config(classifier_path=str(export)),
            model_storage,
            execution_context,
            data=more,
            name="c",
        )


def test_one_intent_is_a_clear_training_error(intent_config, model_storage, execution_context):
    data = build_training_data([("hi", "greet", "neutral"), ("hello", "greet", "neutral")])
    with pytest.raises(TrainingDataError, match="at least two"):
        train_classifier(intent_config(), model_storage, execution_context, data=data)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"epochz": 3}, "epochz"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": "3"}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"dropout": 1.5}, "dropout"),
        ({"device": "tpu"}, "device"),
        ({"validation_fraction": 0.9}, "validation_fraction"),
    ],
)
def test_bad_config_names_the_key_and_the_component(
    intent_config, model_storage, execution_context, override, key
):
    with pytest.raises(InvalidComponentConfigError) as error:
        TransformerIntentClassifier.create(
            intent_config(**override), model_storage, Resource("x"), execution_context
        )
    assert error.value.key == key
    assert "TransformerIntentClassifier" in str(error.value)
    assert "Fix:" in str(error.value)


def test_typo_suggests_the_key(intent_config, model_storage, execution_context):
    with pytest.raises(InvalidComponentConfigError, match="did you mean 'epochs'"):
        TransformerIntentClassifier.create(
            intent_config(epoch=3), model_storage, Resource("x"), execution_context
        )


def test_load_without_a_trained_resource_fails_loudly(
    intent_config, model_storage, execution_context
):
    with pytest.raises(ModelLoadError, match="rasa train"):
        TransformerIntentClassifier.load(
            intent_config(), model_storage, Resource("never-trained"), execution_context
        )


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("meta_missing", "rasa_llm.json is missing"),
        ("meta_garbage", "not valid JSON"),
        ("head_garbage", "head.safetensors is corrupt"),
        ("weights_garbage", "transformers could not read it"),
        ("config_missing", "no config.json"),
        ("empty", "rasa_llm.json is missing"),
    ],
)
def test_a_broken_model_directory_names_the_path_and_the_fix(
    intent_config, model_storage, execution_context, damage, expected
):
    config = intent_config()
    train_classifier(config, model_storage, execution_context)
    with model_storage.read_from(Resource("intent")) as directory:
        path = Path(directory)
    if damage == "meta_missing":
        (path / "rasa_llm.json").unlink()
    elif damage == "meta_garbage":
        (path / "rasa_llm.json").write_text("{not json")
    elif damage == "head_garbage":
        (path / "head.safetensors").write_bytes(b"\x00garbage")
    elif damage == "weights_garbage":
        (path / "encoder" / "model.safetensors").write_bytes(b"garbage bytes")
    elif damage == "config_missing":
        (path / "encoder" / "config.json").unlink()
    elif damage == "empty":
        shutil.rmtree(path)
        path.mkdir()
    with pytest.raises(ModelLoadError) as error:
        TransformerIntentClassifier.load(
            config, model_storage, Resource("intent"), execution_context
        )
    assert expected in str(error.value)
    assert str(path) in str(error.value)
    assert "Fix:" in str(error.value)


def test_missing_base_model_directory_is_a_clear_error(
    intent_config, model_storage, execution_context, tmp_path
):
    with pytest.raises(ModelLoadError, match="does not exist") as error:
        train_classifier(
            intent_config(model_name_or_path=str(tmp_path / "nowhere")),
            model_storage,
            execution_context,
        )
    assert str(tmp_path / "nowhere") in str(error.value)
