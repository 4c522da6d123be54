"""Tiny models and Rasa storage for component tests; nothing is downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest
import torch
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from transformers import BertConfig, BertModel, BertTokenizerFast

WORDS = (
    "where is my order parcel package delivery track shipped arrive when "
    "refund money back return item send broken want please "
    "hello hi hey good morning evening there friend "
    "terrible awful worst hate angry furious great thanks love lovely happy "
    "the a i you it this is was very so not"
).split()

# Three intents with their own words, each example with a sentiment label.
EXAMPLES: List[Tuple[str, str, str]] = [
    ("where is my order", "order_status", "neutral"),
    ("track my parcel", "order_status", "neutral"),
    ("when will my package arrive", "order_status", "neutral"),
    ("has my delivery shipped", "order_status", "neutral"),
    ("where is the parcel", "order_status", "neutral"),
    ("track the delivery please", "order_status", "neutral"),
    ("where is my order this is terrible", "order_status", "negative"),
    ("my package is so late i hate this", "order_status", "negative"),
    ("i want a refund", "refund", "neutral"),
    ("send my money back", "refund", "neutral"),
    ("return item refund please", "refund", "neutral"),
    ("i want my money back", "refund", "neutral"),
    ("refund the broken item", "refund", "neutral"),
    ("awful broken item i want a refund", "refund", "negative"),
    ("worst item ever send my money back", "refund", "negative"),
    ("furious i want a refund", "refund", "negative"),
    ("terrible awful refund now", "refund", "negative"),
    ("i hate this parcel delivery", "order_status", "negative"),
    ("awful i am angry where is it", "order_status", "negative"),
    ("hello there", "greet", "positive"),
    ("hi friend", "greet", "positive"),
    ("good morning lovely", "greet", "positive"),
    ("hey great to see you", "greet", "positive"),
    ("hello i love this", "greet", "positive"),
    ("good evening thanks", "greet", "positive"),
    ("hi", "greet", "neutral"),
    ("hey there", "greet", "neutral"),
]


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT and a word-level vocabulary, saved locally."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def build_tiny_bert(path: Path, words: List[str] = WORDS) -> Path:
    """Save a randomly initialised 2-layer BERT with a vocabulary of ``words`` at ``path``."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(words))]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def build_training_data(examples: List[Tuple[str, str, str]] = EXAMPLES) -> TrainingData:
    return TrainingData(
        [
            Message.build(text, intent, example_metadata={"sentiment": sentiment})
            for text, intent, sentiment in examples
        ]
    )


@pytest.fixture()
def training_data() -> TrainingData:
    return build_training_data()


@pytest.fixture()
def model_storage(tmp_path: Path) -> LocalModelStorage:
    (tmp_path / "storage").mkdir()
    return LocalModelStorage(tmp_path / "storage")


@pytest.fixture()
def execution_context() -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), "test-model")


@pytest.fixture()
def intent_config(tiny_bert_dir: Path) -> Callable[..., Dict[str, Any]]:
    """The classifier's full config for the tiny BERT, with overrides."""
    from rasa_llm import TransformerIntentClassifier

    def make(**overrides: Any) -> Dict[str, Any]:
        return {
            **TransformerIntentClassifier.get_default_config(),
            "model_name_or_path": str(tiny_bert_dir),
            "epochs": 30,
            "batch_size": 8,
            "learning_rate": 1e-3,
            "head_learning_rate": 1e-2,
            "early_stopping_patience": 30,
            "validation_fraction": 0.2,
            "show_progress": False,
            **overrides,
        }

    return make


def messages(*texts: str) -> List[Message]:
    return [Message.build(t) for t in texts]


def resource(name: str = "intent") -> Resource:
    return Resource(name)


def train_classifier(
    config: Dict[str, Any],
    storage: LocalModelStorage,
    context: ExecutionContext,
    data: TrainingData | None = None,
    name: str = "intent",
) -> Any:
    from rasa_llm import TransformerIntentClassifier

    component = TransformerIntentClassifier.create(config, storage, Resource(name), context)
    component.train(data or build_training_data())
    return component
