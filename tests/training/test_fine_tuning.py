"""Fine-tuning an encoder classifier: it learns, and what is frozen stays as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Sequence

import pytest
import torch

from rasa_llm.models import fine_tuning, model_files
from rasa_llm.models.encoder_classifier import EncoderClassifier
from rasa_llm.models.fine_tuning import FineTuneSettings, fine_tune, freeze
from rasa_llm.models.inference import predict, tokenize
from tests.training.conftest import CLASS_WORDS, make_rows

CPU = torch.device("cpu")
LABELS = ["greet", "order_status", "refund"]


def train_tiny(
    encoder_dir: Path, outliers: Sequence[str] = (), **settings: object
) -> tuple[Dict[str, torch.Tensor], EncoderClassifier, List[dict]]:
    encoder, tokenizer = model_files.load_pretrained(encoder_dir)
    model = EncoderClassifier(encoder, len(LABELS), 0.0)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rows = make_rows({k: CLASS_WORDS[k] for k in LABELS}, 12, seed=5)
    texts = [t for t, _ in rows]
    labels = [LABELS.index(label) for _, label in rows]
    result = fine_tune(
        model,
        tokenizer,
        texts[:30],
        labels[:30],
        texts[30:],
        labels[30:],
        FineTuneSettings(
            **{  # type: ignore[arg-type]
                "epochs": 4,
                "batch_size": 8,
                "learning_rate": 1e-3,
                "head_learning_rate": 1e-2,
                "early_stopping_patience": 0,
                "show_progress": False,
                **settings,
            }
        ),
        CPU,
        outlier_texts=outliers,
    )
    return before, model, result.history


def changed(before: Dict[str, torch.Tensor], model: EncoderClassifier, prefix: str) -> List[bool]:
    state = model.state_dict()
    return [not torch.equal(before[k], state[k]) for k in before if k.startswith(prefix)]


def test_the_training_loss_falls(tiny_encoder: Path) -> None:
    _, _, history = train_tiny(tiny_encoder)
    assert history[-1]["train_loss"] < history[0]["train_loss"] * 0.8


def test_predict_sorts_batches_by_length_and_returns_rows_in_the_given_order(
    tiny_encoder: Path,
) -> None:
    encoder, tokenizer = model_files.load_pretrained(tiny_encoder)
    model = EncoderClassifier(encoder, len(LABELS), 0.0)
    words = CLASS_WORDS["refund"] + CLASS_WORDS["greet"]
    texts = [" ".join(words[: 1 + (5 * i) % len(words)]) for i in range(11)]
    pooled, logits = predict(model, tokenizer, texts, 32, CPU, batch_size=3)
    for i, text in enumerate(texts):  # one at a time: no padding, no reordering
        alone_pooled, alone_logits = predict(model, tokenizer, [text], 32, CPU)
        assert torch.allclose(
            torch.from_numpy(pooled[i]), torch.from_numpy(alone_pooled[0]), atol=1e-5
        )
        assert torch.allclose(
            torch.from_numpy(logits[i]), torch.from_numpy(alone_logits[0]), atol=1e-5
        )


def watch_train_loop(monkeypatch: pytest.MonkeyPatch, look: Callable[..., None]) -> None:
    """Have fine-tuning call ``look`` with the training loop's arguments, then the loop."""
    real_loop = fine_tuning.train_loop

    def spy(*args: object, **kwargs: object) -> object:
        look(*args, **kwargs)
        return real_loop(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fine_tuning, "train_loop", spy)


def test_fine_tuning_gives_the_loop_each_texts_token_count(
    tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: Dict[str, object] = {}

    def look(*args: object, **kwargs: object) -> None:
        seen.update(kwargs)

    watch_train_loop(monkeypatch, look)
    train_tiny(tiny_encoder)
    _, tokenizer = model_files.load_pretrained(tiny_encoder)
    rows = make_rows({k: CLASS_WORDS[k] for k in LABELS}, 12, seed=5)[:30]
    expected = [
        len(tokenizer(text, truncation=True, max_length=64)["input_ids"]) for text, _ in rows
    ]
    assert seen["lengths"] == expected
    assert len(set(expected)) > 1  # the texts differ in length, so grouping matters


def first_batch(
    net: object, task: object, twice: bool = False
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """``task.loss`` on six rows, and the log-probabilities of the same pass by hand.

    The same seed before both passes gives the same dropout draws; ``twice`` passes
    the rows twice in one batch, as R-drop does.
    """
    net.train()  # type: ignore[attr-defined]  # dropout on, as in the loop
    classifier = net["classifier"]  # type: ignore[index]
    rows = list(range(6))
    texts = [task.texts[i] for i in rows]  # type: ignore[attr-defined]
    inputs = tokenize(task.tokenizer, texts, 64, CPU)
    if twice:
        inputs = {k: torch.cat([v, v]) for k, v in inputs.items()}
    with torch.no_grad():
        torch.manual_seed(7)
        loss = float(task.loss(rows))  # type: ignore[attr-defined]
        torch.manual_seed(7)
        log_p = torch.log_softmax(classifier(**inputs)[1].float(), dim=-1)
    return loss, log_p, task.labels[rows]  # type: ignore[attr-defined]


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_label_smoothing_spreads_that_share_of_the_target_over_all_classes(
    tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch, smoothing: float
) -> None:
    seen: Dict[str, float] = {}

    def look(*args: object, **kwargs: object) -> None:
        task = args[1]
        seen["loss"], log_p, labels = first_batch(args[0], task)
        # (1 - s) on the true class and s / C on every class, by hand.
        target = torch.full_like(log_p, smoothing / log_p.shape[1])
        target[torch.arange(len(labels)), labels] += 1 - smoothing
        seen["expected"] = float(-(target * log_p).sum(dim=1).mean())
        seen["plain"] = float(torch.nn.functional.nll_loss(log_p, labels))
        # Validation is scored with plain cross-entropy (its loss breaks accuracy ties).
        classifier = args[0]["classifier"]  # type: ignore[index]
        _, val_logits = predict(classifier, task.tokenizer, task.val_texts, 64, CPU)  # type: ignore[attr-defined]
        seen["val_loss"] = task.validate()["val_loss"]  # type: ignore[attr-defined]
        seen["val_plain"] = float(
            torch.nn.functional.cross_entropy(
                torch.from_numpy(val_logits),
                torch.from_numpy(task.val_labels),  # type: ignore[attr-defined]
            )
        )

    watch_train_loop(monkeypatch, look)
    train_tiny(tiny_encoder, epochs=1, label_smoothing=smoothing)
    assert seen["loss"] == pytest.approx(seen["expected"], rel=1e-5)
    if smoothing:
        assert abs(seen["loss"] - seen["plain"]) > 1e-3  # the smoothing changed the loss
    assert seen["val_loss"] == pytest.approx(seen["val_plain"], rel=1e-5)


def test_label_smoothing_of_one_or_more_is_refused(tiny_encoder: Path) -> None:
    with pytest.raises(ValueError, match="label_smoothing must be at least 0 and below 1"):
        train_tiny(tiny_encoder, epochs=1, label_smoothing=1.0)


@pytest.mark.parametrize("weight", [0.0, 2.0])
def test_rdrop_adds_the_symmetric_kl_of_two_dropout_draws_to_the_loss(
    tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch, weight: float
) -> None:
    seen: Dict[str, float] = {}

    def look(*args: object, **kwargs: object) -> None:
        seen["loss"], log_p, labels = first_batch(args[0], args[1], twice=True)
        p, q = log_p[:6], log_p[6:]
        cross_entropy = float(torch.nn.functional.nll_loss(log_p, torch.cat([labels, labels])))
        kl_pq = float((p.exp() * (p - q)).sum(dim=1).mean())
        kl_qp = float((q.exp() * (q - p)).sum(dim=1).mean())
        seen["kl"] = (kl_pq + kl_qp) / 2
        seen["expected"] = cross_entropy + weight * seen["kl"]

    watch_train_loop(monkeypatch, look)
    train_tiny(tiny_encoder, epochs=1, rdrop_weight=weight)
    assert seen["kl"] > 1e-4  # dropout made the two passes differ
    if weight:
        assert seen["loss"] == pytest.approx(seen["expected"], rel=1e-4)
    else:  # one pass: the loss is not the two-pass figure
        assert seen["loss"] != pytest.approx(seen["expected"], rel=1e-4)


@pytest.mark.parametrize("weight", [-0.5, float("nan")])
def test_a_negative_rdrop_weight_is_refused(tiny_encoder: Path, weight: float) -> None:
    with pytest.raises(ValueError, match="rdrop_weight must be 0 or more"):
        train_tiny(tiny_encoder, epochs=1, rdrop_weight=weight)


def test_freezing_the_encoder_trains_the_head_alone(tiny_encoder: Path) -> None:
    before, model, _ = train_tiny(tiny_encoder, freeze_encoder=True)
    assert not any(changed(before, model, "encoder."))
    assert all(changed(before, model, "head."))


def test_freezing_bottom_layers_keeps_them_and_the_embeddings(tiny_encoder: Path) -> None:
    before, model, _ = train_tiny(tiny_encoder, freeze_layers=1)
    assert not any(changed(before, model, "encoder.embeddings."))
    assert not any(changed(before, model, "encoder.encoder.layer.0."))
    assert all(changed(before, model, "encoder.encoder.layer.1.attention.self.query."))


def test_freezing_embeddings_only(tiny_encoder: Path) -> None:
    before, model, _ = train_tiny(tiny_encoder, freeze_embeddings=True)
    assert not any(changed(before, model, "encoder.embeddings."))
    assert all(changed(before, model, "encoder.encoder.layer.0.attention.self.query."))


def test_no_freezing_changes_the_embeddings(tiny_encoder: Path) -> None:
    before, model, _ = train_tiny(tiny_encoder)
    assert any(changed(before, model, "encoder.embeddings."))


def test_freezing_more_layers_than_exist_says_so(tiny_encoder: Path) -> None:
    encoder, _ = model_files.load_pretrained(tiny_encoder)
    with pytest.raises(ValueError, match="has 2 layers"):
        freeze(EncoderClassifier(encoder, 2, 0.0), embeddings=False, layers=3)


def test_outlier_exposure_teaches_a_low_confidence_on_out_of_scope_texts(
    tiny_encoder: Path,
) -> None:
    rows = make_rows({"out_of_scope": CLASS_WORDS["out_of_scope"]}, 24, seed=9)
    texts = [t for t, _ in rows]
    in_scope = [t for t, _ in make_rows({k: CLASS_WORDS[k] for k in LABELS}, 4, seed=11)]
    _, tokenizer = model_files.load_pretrained(tiny_encoder)

    def confidences(model: EncoderClassifier, batch: List[str]) -> torch.Tensor:
        logits = torch.from_numpy(predict(model, tokenizer, batch, 64, CPU)[1])
        return torch.softmax(logits, dim=-1).max(dim=-1).values

    _, plain, _ = train_tiny(tiny_encoder, epochs=8)
    _, exposed, history = train_tiny(tiny_encoder, outliers=texts[:12], epochs=8)
    unseen = texts[12:]  # out-of-scope texts neither run trained on
    # Lower on out-of-scope texts, and further apart from the in-scope ones, so a
    # threshold separates them better (the tiny model is never very sure of anything).
    assert confidences(exposed, unseen).mean() < confidences(plain, unseen).mean() - 0.05
    gap_plain = confidences(plain, in_scope).mean() - confidences(plain, unseen).mean()
    gap_exposed = confidences(exposed, in_scope).mean() - confidences(exposed, unseen).mean()
    assert gap_exposed > gap_plain + 0.1
    assert history[-1]["val_accuracy"] == 1.0  # the classes are still learned
