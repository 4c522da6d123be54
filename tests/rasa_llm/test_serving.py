"""Int8 serving on the CPU: an ONNX Runtime graph, chosen by config, stored in the model,
close to float32, and float32 where it cannot be had (with ``auto``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from rasa.engine.storage.resource import Resource

from rasa_llm.errors import InvalidComponentConfigError
from rasa_llm.models import serving
from rasa_llm.models.onnx_encoder_classifier import (
    GRAPH_FILE,
    OnnxEncoderClassifier,
    OnnxServingError,
)
from rasa_llm.models.serving import check_quantize
from tests.rasa_llm.conftest import messages, train_classifier

TEXTS = ["where is my order", "i want my money back", "hello there friend", "track my parcel"]


def _graph_ops(graph: bytes) -> list:
    return [node.op_type for node in onnx.load_from_string(graph).graph.node]


def _stored(storage, name: str = "intent") -> Path:
    with storage.read_from(Resource(name)) as directory:
        return Path(directory) / GRAPH_FILE


def _same_model(component, config, model_storage):
    """Another component serving ``component``'s trained model, with ``config``."""
    return type(component)(
        config,
        model_storage,
        component._resource,
        model=component.model,
        tokenizer=component.tokenizer,
        labels=component.labels,
        meta=component.meta,
    )


def test_auto_serves_an_int8_onnx_graph_on_the_cpu_and_keeps_the_trained_model(
    intent_config, model_storage, execution_context
):
    component = train_classifier(intent_config(), model_storage, execution_context)
    component.process(messages(*TEXTS))
    served = component._serving
    assert isinstance(served, OnnxEncoderClassifier)
    ops = _graph_ops(served.graph)
    # Weights as int8 with a scale per output channel, activations quantized per call.
    assert "DynamicQuantizeLinear" in ops
    # Six weight matrices a layer (query, key, value, output, two feed-forward), each
    # int8 (the attention's own products of activations stay float32).
    layers = component.model.encoder.config.num_hidden_layers
    assert ops.count("MatMulInteger") >= 6 * layers
    # Weights in 7 bits (reduce_range), which CPUs without VNNI cannot overflow: each
    # channel's largest weight maps to 64, not 127.
    weights = [
        onnx.numpy_helper.to_array(t)
        for t in onnx.load_from_string(served.graph).graph.initializer
        if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2
    ]
    assert len(weights) >= 6 * layers
    assert max(int(np.abs(w.astype(np.int16)).max()) for w in weights) == 64
    # The head is not in the graph: it stays a float32 layer, equal to the trained one.
    assert "Gemm" not in ops
    assert served.head.weight.dtype == torch.float32
    assert torch.equal(served.head.weight, component.model.head.weight.detach().cpu())
    # Training and persistence keep the float32 torch model.
    assert isinstance(component.model, torch.nn.Module) and component.model.encoder is not None


def test_the_graph_is_stored_in_the_model_and_loaded_without_exporting_again(
    intent_config, model_storage, execution_context, monkeypatch
):
    from rasa_llm import TransformerIntentClassifier

    config = intent_config()
    trained = train_classifier(config, model_storage, execution_context)
    before = trained.predict(TEXTS)
    assert _stored(model_storage).read_bytes() == trained._serving.graph

    def no_export(model):
        raise AssertionError("a stored graph must not be exported again")

    monkeypatch.setattr(serving, "export_int8_graph", no_export)
    loaded = TransformerIntentClassifier.load(
        config, model_storage, Resource("intent"), execution_context
    )
    assert isinstance(loaded._serving, OnnxEncoderClassifier), "ready before the first message"
    after = loaded.predict(TEXTS)
    np.testing.assert_allclose(after[1], before[1], atol=1e-6)
    np.testing.assert_allclose(after[0], before[0], atol=1e-5)


def test_a_model_without_a_graph_gets_one_at_load(intent_config, model_storage, execution_context):
    from rasa_llm import TransformerIntentClassifier

    # As a model trained on a GPU, or by an earlier rasa-llm, arrives: no graph in it.
    config = intent_config()
    trained = train_classifier(config, model_storage, execution_context)
    expected = trained.predict(TEXTS)[1]
    _stored(model_storage).unlink()
    loaded = TransformerIntentClassifier.load(
        config, model_storage, Resource("intent"), execution_context
    )
    assert isinstance(loaded._serving, OnnxEncoderClassifier)
    # The same export of the same weights answers the same.
    np.testing.assert_allclose(loaded.predict(TEXTS)[1], expected, atol=1e-5)


def test_int8_and_float32_agree(intent_config, model_storage, execution_context):
    config = intent_config(quantize="none")
    float32 = train_classifier(config, model_storage, execution_context)
    assert not _stored(model_storage).exists(), "quantize: none stores no graph"
    int8 = _same_model(float32, {**config, "quantize": "int8"}, model_storage)
    p32, p8 = float32.predict(TEXTS)[1], int8.predict(TEXTS)[1]
    assert float32._serving is float32.model
    assert isinstance(int8._serving, OnnxEncoderClassifier)
    assert (p32.argmax(axis=1) == p8.argmax(axis=1)).all()
    assert np.abs(p32 - p8).max() < 0.1


def test_auto_answers_in_float32_when_the_export_fails_and_int8_says_how_to_fix(
    intent_config, model_storage, execution_context, monkeypatch, caplog
):
    def broken(model):
        raise OnnxServingError("could not export X. Fix: set quantize: none in config.yml")

    monkeypatch.setattr(serving, "export_int8_graph", broken)
    with caplog.at_level(logging.WARNING, logger="rasa_llm.models.serving"):
        component = train_classifier(intent_config(), model_storage, execution_context)
    assert component._serving is component.model
    assert "answers in float32 (quantize: auto)" in caplog.text
    assert not _stored(model_storage).exists()
    component.process(messages(*TEXTS))  # and it answers
    strict = _same_model(component, {**intent_config(), "quantize": "int8"}, model_storage)
    with pytest.raises(OnnxServingError, match="quantize: none"):
        strict.predict(TEXTS)


def test_the_export_leaves_no_quantizer_notes_in_an_info_log(
    intent_config, model_storage, execution_context, caplog
):
    from rasa_llm.models.onnx_encoder_classifier import export_int8_graph

    component = train_classifier(intent_config(quantize="none"), model_storage, execution_context)
    with caplog.at_level(logging.INFO):
        export_int8_graph(component.model)
    quantizer = [r.getMessage() for r in caplog.records if r.name == "root"]
    assert quantizer == [], quantizer[:3]


def test_a_corrupt_stored_graph_names_the_fix():
    head = torch.nn.Linear(4, 2)
    with pytest.raises(OnnxServingError, match=f"delete {GRAPH_FILE}.*rasa train --force"):
        OnnxEncoderClassifier(b"not an onnx graph", head, threads=1)


def test_unknown_mode_names_the_key_and_the_choices():
    with pytest.raises(InvalidComponentConfigError, match="quantize") as error:
        check_quantize("TransformerIntentClassifier", "fp8", torch.device("cpu"))
    assert "'auto', 'int8', 'none'" in str(error.value)


def test_int8_on_a_gpu_is_refused_but_auto_is_fine():
    with pytest.raises(InvalidComponentConfigError, match="CPU only"):
        check_quantize("TransformerIntentClassifier", "int8", torch.device("cuda"))
    check_quantize("TransformerIntentClassifier", "auto", torch.device("cuda"))


def test_serving_threads_default_to_one_and_a_bad_setting_names_the_fix():
    from rasa_llm.models.serving import THREADS_ENV, ServingThreadsError, serving_threads

    assert serving_threads(environ={}) == 1
    assert serving_threads(environ={THREADS_ENV: " 4 "}) == 4
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(ServingThreadsError, match=f"{THREADS_ENV}=.*unset it"):
            serving_threads(environ={THREADS_ENV: bad})


def test_use_serving_threads_sets_torch_s_threads():
    from rasa_llm.models.serving import THREADS_ENV, use_serving_threads

    before = torch.get_num_threads()
    try:
        assert use_serving_threads(environ={THREADS_ENV: "1"}) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_agreement_is_measured_on_held_out_texts_and_training_texts_only_fill_in():
    from rasa_llm.models.serving import AGREEMENT_MAX_TEXTS, AGREEMENT_MIN_TEXTS, agreement_texts

    held_out = [f"held {i}" for i in range(AGREEMENT_MIN_TEXTS)]
    training = [f"train {i}" for i in range(5000)]
    assert agreement_texts(held_out, training) == (held_out, "validation")
    few, on = agreement_texts(held_out[:30], training, seed=3)
    assert on == "validation+training" and few[:30] == held_out[:30]
    assert len(few) == AGREEMENT_MAX_TEXTS and len(set(few)) == AGREEMENT_MAX_TEXTS
    assert set(few[30:]) <= set(training)
    assert agreement_texts(held_out[:30], training, seed=3) == (few, on), "seeded"
    none, on = agreement_texts([], training[:40])
    assert on == "training" and sorted(none) == sorted(training[:40])


def test_the_agreement_record_counts_unchanged_top_labels():
    from rasa_llm.models.serving import agreement_record

    float32 = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 1.0, 2.0], [1.0, 0.0, 0.0]])
    int8 = np.array([[2.1, 0.9, 0.0], [0.0, 1.0, 3.0], [0.1, 1.0, 2.0], [0.9, 1.0, 0.0]])
    record = agreement_record(float32, int8, "validation")
    assert record == {
        "agreement": 0.5,
        "agreement_texts": 4,
        "agreement_measured_on": "validation",
    }


def test_training_records_how_many_answers_the_graph_keeps(
    intent_config, model_storage, execution_context
):
    """The record is the share of unchanged top intents on the texts it names, counted
    here again from the stored graph and the float32 model."""
    from rasa_llm.models.inference import predict
    from rasa_llm.models.serving import agreement_texts
    from rasa_llm.models.splits import stratified_split
    from tests.rasa_llm.conftest import EXAMPLES

    config = intent_config()
    component = train_classifier(config, model_storage, execution_context)
    record = component.meta["int8"]
    assert isinstance(component._serving, OnnxEncoderClassifier)

    labels = sorted({intent for _, intent, _ in EXAMPLES})
    ids = [labels.index(intent) for _, intent, _ in EXAMPLES]
    train_idx, val_idx = stratified_split(ids, config["validation_fraction"], 42)
    texts, on = agreement_texts(
        [EXAMPLES[i][0] for i in val_idx], [EXAMPLES[i][0] for i in train_idx], seed=42
    )
    assert on == "validation+training" and len(texts) == len(EXAMPLES)
    cpu = torch.device("cpu")
    graph = OnnxEncoderClassifier(_stored(model_storage).read_bytes(), component.model.head, 1)
    top32 = predict(component.model, component.tokenizer, texts, 64, cpu)[1].argmax(axis=1)
    top8 = predict(graph, component.tokenizer, texts, 64, cpu)[1].argmax(axis=1)
    assert record["agreement"] == pytest.approx(float((top32 == top8).mean()))
    assert record["agreement_texts"] == len(texts)
    assert record["agreement_measured_on"] == on


def _with_agreement(storage, agreement: float) -> None:
    """Rewrite the stored model's int8 record, as a model whose graph changed answers."""
    import json

    with storage.read_from(Resource("intent")) as directory:
        meta_file = Path(directory) / "rasa_llm.json"
        meta = json.loads(meta_file.read_text())
        meta["int8"].update(agreement=agreement, agreement_texts=1000)
        meta_file.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("overrides", "serves_graph"),
    [
        ({}, False),  # auto, default 0.99: refused
        ({"int8_min_agreement": 0.95}, True),  # the builder accepts more changes
        ({"quantize": "int8"}, True),  # int8 serves the graph whatever it changes
    ],
)
def test_auto_answers_in_float32_when_the_graph_changed_too_many_answers(
    intent_config, model_storage, execution_context, caplog, overrides, serves_graph
):
    from rasa_llm import TransformerIntentClassifier

    trained = train_classifier(intent_config(), model_storage, execution_context)
    graph = _stored(model_storage).read_bytes()
    _with_agreement(model_storage, 0.97)
    config = intent_config(**overrides)
    with caplog.at_level(logging.WARNING, logger="rasa_llm.models.serving"):
        loaded = TransformerIntentClassifier.load(
            config, model_storage, Resource("intent"), execution_context
        )
    if serves_graph:
        assert isinstance(loaded._serving, OnnxEncoderClassifier)
        assert loaded._serving.graph == graph
        assert loaded.temperature == loaded.meta["int8"]["temperature"]
        assert "answers in float32" not in caplog.text
    else:
        assert loaded._serving is loaded.model
        assert loaded.temperature == loaded.meta["temperature"]
        assert "answers in float32 (quantize: auto)" in caplog.text
        assert "97.0% of 1000" in caplog.text and "quantize: int8" in caplog.text
        # Float32 answers as the trained model did.
        float32 = _same_model(trained, intent_config(quantize="none"), model_storage)
        np.testing.assert_allclose(loaded.predict(TEXTS)[1], float32.predict(TEXTS)[1], atol=1e-5)


def test_a_refused_graph_stays_in_the_model_for_quantize_int8(
    intent_config, model_storage, execution_context
):
    """Persisting a component that answers in float32 keeps the graph its int8
    temperature was fitted on."""
    from rasa_llm import TransformerIntentClassifier

    train_classifier(intent_config(), model_storage, execution_context)
    graph = _stored(model_storage).read_bytes()
    _with_agreement(model_storage, 0.5)
    loaded = TransformerIntentClassifier.load(
        intent_config(), model_storage, Resource("intent"), execution_context
    )
    assert loaded._serving is loaded.model
    _stored(model_storage).unlink()
    loaded.persist()
    assert _stored(model_storage).read_bytes() == graph


def test_a_model_without_an_agreement_figure_is_served_in_int8_as_before(
    intent_config, model_storage, execution_context
):
    import json

    from rasa_llm import TransformerIntentClassifier

    train_classifier(intent_config(), model_storage, execution_context)
    with model_storage.read_from(Resource("intent")) as directory:
        meta_file = Path(directory) / "rasa_llm.json"
        meta = json.loads(meta_file.read_text())
        for key in ("agreement", "agreement_texts", "agreement_measured_on"):
            del meta["int8"][key]
        meta_file.write_text(json.dumps(meta))
    loaded = TransformerIntentClassifier.load(
        intent_config(), model_storage, Resource("intent"), execution_context
    )
    assert isinstance(loaded._serving, OnnxEncoderClassifier)


@pytest.mark.parametrize("bad", [1.5, -0.1, "0.9", True])
def test_a_min_agreement_outside_0_to_1_names_the_key_and_the_fix(intent_config, bad):
    from rasa_llm import TransformerIntentClassifier, TransformerSentimentAnalyzer

    problem = "int8_min_agreement.*(share in|a number)"
    with pytest.raises(InvalidComponentConfigError, match=problem):
        TransformerIntentClassifier.validate(intent_config(int8_min_agreement=bad))
    config = {**TransformerSentimentAnalyzer.get_default_config(), "int8_min_agreement": bad}
    with pytest.raises(InvalidComponentConfigError, match="int8_min_agreement"):
        TransformerSentimentAnalyzer.validate(config)


def test_a_graph_that_computes_something_else_is_not_served(
    intent_config, model_storage, execution_context, tiny_bert_dir, caplog
):
    """A graph made for other weights (or broken on this CPU, as 8-bit graphs are
    without VNNI) fails the random-token probe at load: auto answers in float32 with the
    reason, int8 fails with the fix."""
    from transformers import BertModel

    from rasa_llm import TransformerIntentClassifier
    from rasa_llm.models.encoder_classifier import EncoderClassifier
    from rasa_llm.models.onnx_encoder_classifier import export_int8_graph
    from rasa_llm.models.serving import PROBE_MIN_COSINE, graph_cosine

    trained = train_classifier(intent_config(), model_storage, execution_context)
    assert graph_cosine(trained.model, trained._served(trained.model)) > 0.95
    torch.manual_seed(7)
    stranger = BertModel(BertModel.from_pretrained(str(tiny_bert_dir)).config)
    other = EncoderClassifier(stranger, len(trained.labels), 0.0).eval()
    _stored(model_storage).write_bytes(export_int8_graph(other))

    with caplog.at_level(logging.WARNING, logger="rasa_llm.models.serving"):
        loaded = TransformerIntentClassifier.load(
            intent_config(), model_storage, Resource("intent"), execution_context
        )
    assert loaded._serving is loaded.model
    assert "does not compute what the float32 encoder does" in caplog.text
    cosine = float(caplog.text.split("mean cosine ")[1].split()[0])
    assert cosine < PROBE_MIN_COSINE
    with pytest.raises(OnnxServingError, match=f"delete {GRAPH_FILE}"):
        TransformerIntentClassifier.load(
            intent_config(quantize="int8"), model_storage, Resource("intent"), execution_context
        )


def test_rasa_train_itself_answers_in_float32_when_its_graph_changed_too_many_answers(
    intent_config, model_storage, execution_context, caplog, monkeypatch
):
    """A graph that changed 8 answers in 100 (the tiny model's graph changes none, so the
    count is set): the freshly trained component answers in float32 and says so, its
    validation ECE is the float32 model's, and the graph is kept for quantize: int8."""
    from rasa_llm.models import calibration
    from rasa_llm.models.inference import predict
    from rasa_llm.models.splits import stratified_split
    from rasa_llm.nlu import intent_training as module
    from tests.rasa_llm.conftest import EXAMPLES

    def changed(float32_logits, int8_logits, measured_on):
        return {"agreement": 0.92, "agreement_texts": 100, "agreement_measured_on": "validation"}

    monkeypatch.setattr(module, "agreement_record", changed)
    config = intent_config()
    with caplog.at_level(logging.WARNING):
        component = train_classifier(config, model_storage, execution_context)
    assert component._serving is component.model
    assert "TransformerIntentClassifier answers in float32 (quantize: auto)" in caplog.text
    assert "92.0% of 100 validation texts" in caplog.text
    assert _stored(model_storage).read_bytes() == component._graph

    labels = sorted({intent for _, intent, _ in EXAMPLES})
    ids = [labels.index(intent) for _, intent, _ in EXAMPLES]
    _, val_idx = stratified_split(ids, config["validation_fraction"], 42)
    texts = [EXAMPLES[i][0] for i in val_idx]
    logits = predict(component.model, component.tokenizer, texts, 64, torch.device("cpu"))[1]
    expected = calibration.expected_calibration_error(
        calibration.softmax(logits, temperature=component.meta["temperature"]),
        np.asarray([ids[i] for i in val_idx]),
    )
    assert component.meta["validation_ece_calibrated"] == pytest.approx(expected, abs=1e-6)
