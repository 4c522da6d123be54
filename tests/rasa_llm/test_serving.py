"""Int8 serving on the CPU: chosen by config, close to float32, refused where it cannot run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rasa_llm.errors import InvalidComponentConfigError
from rasa_llm.serving import check_quantize
from tests.rasa_llm.conftest import messages, train_classifier

TEXTS = ["where is my order", "i want my money back", "hello there friend", "track my parcel"]


def _is_int8(module: torch.nn.Module) -> bool:
    return any("quantized" in type(m).__module__ for m in module.modules())


def test_auto_serves_an_int8_encoder_on_the_cpu_and_keeps_the_trained_one(
    intent_config, model_storage, execution_context
):
    component = train_classifier(intent_config(), model_storage, execution_context)
    component.process(messages(*TEXTS))
    assert _is_int8(component._serving.encoder)
    # Training and persistence keep full precision.
    assert not _is_int8(component.model)
    assert component.model.head is not None and not _is_int8(component._serving.head)


def test_int8_and_float32_agree(intent_config, model_storage, execution_context):
    config = intent_config(quantize="none")
    float32 = train_classifier(config, model_storage, execution_context)
    assert not _is_int8(float32._serving or float32.model)
    int8 = type(float32)(
        {**config, "quantize": "int8"},
        model_storage,
        float32._resource,
        float32.model,
        float32.tokenizer,
        float32.labels,
        float32.meta,
    )
    p32, p8 = float32.predict(TEXTS)[1], int8.predict(TEXTS)[1]
    assert _is_int8(int8._serving.encoder)
    assert (p32.argmax(axis=1) == p8.argmax(axis=1)).all()
    assert np.abs(p32 - p8).max() < 0.1


def test_unknown_mode_names_the_key_and_the_choices():
    with pytest.raises(InvalidComponentConfigError, match="quantize") as error:
        check_quantize("TransformerIntentClassifier", "fp8", torch.device("cpu"))
    assert "'auto', 'int8', 'none'" in str(error.value)


def test_int8_on_a_gpu_is_refused_but_auto_is_fine():
    with pytest.raises(InvalidComponentConfigError, match="CPU only"):
        check_quantize("TransformerIntentClassifier", "int8", torch.device("cuda"))
    check_quantize("TransformerIntentClassifier", "auto", torch.device("cuda"))


def test_serving_threads_default_to_one_and_a_bad_setting_names_the_fix():
    from rasa_llm.serving import THREADS_ENV, ServingThreadsError, serving_threads

    assert serving_threads({}) == 1
    assert serving_threads({THREADS_ENV: " 4 "}) == 4
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(ServingThreadsError, match=f"{THREADS_ENV}=.*unset it"):
            serving_threads({THREADS_ENV: bad})


def test_use_serving_threads_sets_torch_s_threads():
    from rasa_llm.serving import THREADS_ENV, use_serving_threads

    before = torch.get_num_threads()
    try:
        assert use_serving_threads({THREADS_ENV: "1"}) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
