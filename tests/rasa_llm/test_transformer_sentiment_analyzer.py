from __future__ import annotations

import numpy as np
import pytest
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import ENTITIES
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from rasa_llm import TransformerSentimentAnalyzer
from rasa_llm.errors import (
    InvalidComponentConfigError,
    ModelLoadError,
    PipelineOrderError,
    TrainingDataError,
)
from tests.rasa_llm.conftest import build_training_data, messages, train_classifier

NEGATIVE = "this is terrible i hate it"
NEUTRAL = "where is my parcel"
POSITIVE = "thanks i love this"


def sentiment_config(**overrides):
    return {
        **TransformerSentimentAnalyzer.get_default_config(),
        "min_examples_per_label": 2,
        "calibration_folds": 2,
        # The tiny encoder's vectors are short; a weaker L2 lets the head use them.
        "regularization": 10.0,
        **overrides,
    }


@pytest.fixture()
def pipeline(intent_config, model_storage, execution_context):
    """Train both components the way Rasa's graph does: classifier, its
    process_training_data, then the analyzer on the processed data."""

    def make(**overrides):
        classifier = train_classifier(intent_config(), model_storage, execution_context)
        data = classifier.process_training_data(build_training_data())
        analyzer = TransformerSentimentAnalyzer.create(
            sentiment_config(**overrides), model_storage, Resource("sentiment"), execution_context
        )
        analyzer.train(data)
        return classifier, analyzer

    return make


def run(classifier, analyzer, *texts):
    return analyzer.process(classifier.process(messages(*texts)))


def test_every_message_gets_a_label_and_a_score(pipeline):
    classifier, analyzer = pipeline()
    for message in run(classifier, analyzer, NEGATIVE, NEUTRAL, POSITIVE):
        sentiment = message.as_dict(only_output_properties=True)["sentiment"]
        assert sentiment["label"] in {"negative", "neutral", "positive"}
        assert 0.0 < sentiment["score"] <= 1.0
        assert sentiment["ranking"][0]["name"] == sentiment["label"]
        assert sum(r["confidence"] for r in sentiment["ranking"]) == pytest.approx(1.0)


def test_learns_the_labels_it_was_given(pipeline):
    classifier, analyzer = pipeline()
    labels = [
        m.get("sentiment")["label"]
        for m in run(classifier, analyzer, "i hate this awful item", "track my parcel")
    ]
    assert labels == ["negative", "neutral"]


def test_only_entity_labels_become_an_entity(pipeline):
    classifier, analyzer = pipeline()
    angry, calm = run(classifier, analyzer, "i hate this awful item", "track my parcel")
    assert calm.get(ENTITIES, []) == []
    (entity,) = angry.get(ENTITIES)
    assert entity["entity"] == "sentiment"
    assert entity["value"] == "negative"
    assert (entity["start"], entity["end"]) == (0, len("i hate this awful item"))
    assert entity["extractor"] == "TransformerSentimentAnalyzer"


def test_entity_name_and_labels_are_configurable(pipeline):
    classifier, analyzer = pipeline(entity_name="mood", entity_labels=["negative", "neutral"])
    calm = run(classifier, analyzer, "track my parcel")[0]
    assert [e["entity"] for e in calm.get(ENTITIES)] == ["mood"]


def test_persist_and_load_give_identical_predictions(pipeline, model_storage, execution_context):
    classifier, analyzer = pipeline()
    loaded = TransformerSentimentAnalyzer.load(
        sentiment_config(), model_storage, Resource("sentiment"), execution_context
    )
    vectors = classifier.predict([NEGATIVE, NEUTRAL, POSITIVE])[0]
    np.testing.assert_array_equal(analyzer.predict(vectors), loaded.predict(vectors))


def test_unknown_sentiment_value_names_the_example(model_storage, execution_context):
    data = TrainingData([Message.build("meh", "greet", example_metadata={"sentiment": "angry"})])
    analyzer = TransformerSentimentAnalyzer.create(
        sentiment_config(), model_storage, Resource("s"), execution_context
    )
    with pytest.raises(TrainingDataError, match="'meh'.*'angry'"):
        analyzer.train(data)


def test_too_few_examples_say_how_many_and_how_to_add_them(model_storage, execution_context):
    data = build_training_data([("hi", "greet", "positive"), ("yo", "greet", "positive")])
    analyzer = TransformerSentimentAnalyzer.create(
        sentiment_config(min_examples_per_label=2), model_storage, Resource("s"), execution_context
    )
    with pytest.raises(TrainingDataError, match="negative: 0, neutral: 0, positive: 2"):
        analyzer.train(data)


def test_intent_level_metadata_labels_the_block_and_examples_override_it():
    from rasa_llm.nlu.sentiment_data import sentiment_label

    block = Message.build("hi", "greet", intent_metadata={"sentiment": "positive"})
    override = Message.build(
        "ugh hi",
        "greet",
        intent_metadata={"sentiment": "positive"},
        example_metadata={"sentiment": "negative"},
    )
    unlabelled = Message.build("hello", "greet")
    assert sentiment_label(block, "x") == "positive"
    assert sentiment_label(override, "x") == "negative"
    assert sentiment_label(unlabelled, "x") is None


def test_without_the_intent_classifier_before_it_the_error_says_so(
    model_storage, execution_context
):
    analyzer = TransformerSentimentAnalyzer.create(
        sentiment_config(), model_storage, Resource("s"), execution_context
    )
    with pytest.raises(PipelineOrderError, match="TransformerIntentClassifier"):
        analyzer.train(build_training_data())


def test_bad_config_is_rejected(model_storage, execution_context):
    with pytest.raises(InvalidComponentConfigError, match="entity_labels"):
        TransformerSentimentAnalyzer.create(
            sentiment_config(entity_labels=["furious"]),
            model_storage,
            Resource("s"),
            execution_context,
        )
    with pytest.raises(InvalidComponentConfigError, match="did you mean 'entity_name'"):
        TransformerSentimentAnalyzer.create(
            sentiment_config(entity_nme="x"), model_storage, Resource("s"), execution_context
        )


def test_load_of_a_corrupt_head_fails_with_the_path(pipeline, model_storage, execution_context):
    pipeline()
    with model_storage.read_from(Resource("sentiment")) as directory:
        (directory / "head.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="corrupt") as error:
        TransformerSentimentAnalyzer.load(
            sentiment_config(), model_storage, Resource("sentiment"), execution_context
        )
    assert str(directory) in str(error.value)
