"""TransformerIntentClassifier's settings: every key with its default, and their checks.

``docs/configuration.md`` lists the same keys; a test fails when the two disagree.
"""

from __future__ import annotations

from typing import Any, Dict

from rasa_llm.config_validation import TypeSpec, require, validate_config
from rasa_llm.constants import DEFAULT_RANKING_LENGTH
from rasa_llm.models.device import resolve_device
from rasa_llm.models.serving import DEFAULT_MIN_AGREEMENT, check_min_agreement, check_quantize

_NUMBER = (int, float)
_CONFIG_TYPES: Dict[str, TypeSpec] = {
    "model_name_or_path": (str, type(None)),
    "classifier_path": (str, type(None)),
    "device": str,
    "epochs": int,
    "batch_size": int,
    "learning_rate": _NUMBER,
    "head_learning_rate": _NUMBER,
    "weight_decay": _NUMBER,
    "warmup_ratio": _NUMBER,
    "dropout": _NUMBER,
    "max_length": int,
    "freeze_embeddings": bool,
    "freeze_layers": int,
    "early_stopping_patience": int,
    "validation_fraction": _NUMBER,
    "calibrate": bool,
    "random_seed": int,
    "ranking_length": int,
    "inference_batch_size": int,
    "show_progress": bool,
    "sentiment_loss_weight": _NUMBER,
    "quantize": str,
    "int8_min_agreement": _NUMBER,
    "use_stored_threshold": bool,
}


def defaults() -> Dict[str, Any]:
    """Every key this component accepts, with its default."""
    return {
        # Local Hugging Face encoder directory to fine-tune; null = shipped MiniLM.
        "model_name_or_path": None,
        # Directory of a classifier fine-tuned outside Rasa (rasa-llm layout);
        # when set, `rasa train` uses it as is instead of fine-tuning.
        "classifier_path": None,
        # "auto" (cuda when available, else cpu), "cpu", "cuda" or "cuda:N".
        "device": "auto",
        # Passes over the training data; early stopping may end sooner.
        "epochs": 12,
        "batch_size": 32,
        # AdamW learning rate of the encoder.
        "learning_rate": 5.0e-5,
        # AdamW learning rate of the new classification head.
        "head_learning_rate": 2.0e-3,
        "weight_decay": 0.01,
        # Share of the steps spent warming the learning rate up from zero.
        "warmup_ratio": 0.1,
        # Dropout on the pooled sentence vector before the head.
        "dropout": 0.1,
        # Longer messages are cut to this many tokens.
        "max_length": 64,
        # Keep the pretrained token embeddings fixed.
        "freeze_embeddings": False,
        # Keep this many bottom encoder layers fixed (and the embeddings).
        "freeze_layers": 0,
        # Stop after this many epochs without a better validation score.
        "early_stopping_patience": 3,
        # Share of each intent's examples held out for early stopping and
        # calibration (intents with fewer than 3 examples keep all of theirs).
        "validation_fraction": 0.15,
        # Fit a temperature on the held-out examples so confidences are calibrated.
        "calibrate": True,
        "random_seed": 42,
        # Entries in intent_ranking; 0 keeps all, as in Rasa's classifiers.
        "ranking_length": DEFAULT_RANKING_LENGTH,
        # Messages per forward pass when many are processed at once.
        "inference_batch_size": 64,
        # Show a progress bar per epoch during `rasa train`.
        "show_progress": True,
        # Weight of a joint sentiment loss on examples labelled with sentiment
        # metadata, so the shared encoder keeps what the sentiment analyzer
        # needs; 0 fine-tunes on intents alone.
        "sentiment_loss_weight": 0.5,
        # How the encoder answers messages: "auto" = an int8 ONNX Runtime graph on
        # the CPU (about five times as fast, within 0.1 points of float32) and
        # unchanged on a GPU; "int8" = the graph, or fail; "none" = float32 torch.
        # Training always runs in full precision.
        "quantize": "auto",
        # "auto" answers in float32 instead when, at training, the graph kept the
        # float32 model's top intent on fewer than this share of held-out messages
        # (0.99: at most one changed answer in a hundred; larger encoders such as
        # all-mpnet-base-v2 change 3 to 6 in int8 and lose accuracy).
        "int8_min_agreement": DEFAULT_MIN_AGREEMENT,
        # A classifier from `python -m training intent --oos-label ...` stores the
        # out-of-scope threshold chosen on its validation data; below it a message
        # gets intent nlu_fallback, as with FallbackClassifier. false ignores it.
        "use_stored_threshold": True,
    }


def validate(name: str, config: Dict[str, Any]) -> None:
    """Reject unknown keys, wrong types and values out of range."""
    default = defaults()
    validate_config(name, config, default, _CONFIG_TYPES)

    def check(key: str, ok: bool, problem: str) -> None:
        require(name, key, ok, problem, default[key])

    check("epochs", config["epochs"] >= 1, "must be at least 1")
    check("batch_size", config["batch_size"] >= 1, "must be at least 1")
    check("learning_rate", config["learning_rate"] > 0, "must be positive")
    check("head_learning_rate", config["head_learning_rate"] > 0, "must be positive")
    check("weight_decay", config["weight_decay"] >= 0, "must not be negative")
    check("warmup_ratio", 0 <= config["warmup_ratio"] < 1, "must be in [0, 1)")
    check("dropout", 0 <= config["dropout"] < 1, "must be in [0, 1)")
    check("max_length", 8 <= config["max_length"] <= 512, "must be in [8, 512]")
    check("freeze_layers", config["freeze_layers"] >= 0, "must not be negative")
    check(
        "early_stopping_patience",
        config["early_stopping_patience"] >= 1,
        "must be at least 1",
    )
    check(
        "validation_fraction",
        0 <= config["validation_fraction"] <= 0.5,
        "must be in [0, 0.5]",
    )
    check("sentiment_loss_weight", config["sentiment_loss_weight"] >= 0, "must not be negative")
    check("ranking_length", config["ranking_length"] >= 0, "must not be negative")
    check("inference_batch_size", config["inference_batch_size"] >= 1, "must be at least 1")
    check_quantize(name, config["quantize"], resolve_device(name, config["device"]))
    check_min_agreement(name, config["int8_min_agreement"])
