"""Fine-tuning an :class:`EncoderClassifier` on labelled texts, through the one loop.

The intent classifier runs this inside ``rasa train``; ``python -m training intent``
and ``python -m training sentiment`` run it from the command line. What is specific to
classification lives here (the head starting at class centroids, layer freezing, the
optional auxiliary head, accuracy-based validation); batching, schedules, early
stopping and checkpoints are :mod:`rasa_llm.models.training_loop`'s.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from rasa_llm.models.encoder_classifier import EncoderClassifier
from rasa_llm.models.inference import predict, token_lengths, tokenize
from rasa_llm.models.training_loop import LoopSettings, adamw, param_groups, train_loop

logger = logging.getLogger(__name__)

FREEZE_MODES = ("none", "embeddings", "layers", "encoder")


@dataclass(frozen=True)
class FineTuneSettings(LoopSettings):
    """Hyper-parameters of one fine-tuning run: the loop's settings and the task's own.

    The loop's (epochs, batch size, warm-up, early stopping, seed, weight average, length
    groups, ...) are :class:`LoopSettings`' fields, inherited; these are the task's.
    """

    learning_rate: float = 5e-5
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    max_length: int = 64
    # Keep the token embeddings fixed.
    freeze_embeddings: bool = False
    # Keep the embeddings and this many bottom encoder layers fixed.
    freeze_layers: int = 0
    # Keep the whole encoder fixed and train the head alone ("all but the head").
    freeze_encoder: bool = False
    # Weight of the auxiliary loss (see :func:`fine_tune`); 0 turns it off.
    auxiliary_weight: float = 0.5
    # Weight of the outlier-exposure loss on out-of-scope texts (see :func:`fine_tune`);
    # 0.5 as in Hendrycks et al. 2019.
    outlier_weight: float = 0.5
    # Share of each target spread evenly over all classes (Szegedy et al. 2016):
    # the head stops pushing logits of already-right texts apart and spends the
    # updates on the hard ones. Validation loss stays plain cross-entropy; the
    # temperature fitted afterwards undoes the softer confidences. 0 = off.
    label_smoothing: float = 0.0
    # R-drop (Liang et al. 2021): each batch goes through the network twice, with two
    # dropout draws, and this weight times the symmetric KL divergence of the two
    # predictions joins the loss, so the head learns answers that dropout does not
    # sway. Twice the compute a step. 0 = off.
    rdrop_weight: float = 0.0


@dataclass
class FineTuneResult:
    """What the loop learned about itself; the model is updated in place."""

    best_epoch: int
    epochs_run: int
    seconds: float
    steps: int = 0
    seconds_per_step: float = 0.0
    stopped_early: bool = False
    history: List[Dict[str, float]] = field(default_factory=list)
    # The result is the moving average of the weights (``ema_decay``).
    averaged: bool = False


def freeze(
    model: EncoderClassifier, embeddings: bool, layers: int, *, encoder: bool = False
) -> None:
    """Stop gradients to the embeddings, the bottom ``layers`` layers, or the encoder."""
    if encoder:
        for param in model.encoder.parameters():
            param.requires_grad = False
        return
    if embeddings or layers > 0:
        for param in model.encoder.get_submodule("embeddings").parameters():
            param.requires_grad = False
    if layers > 0:
        stack = getattr(getattr(model.encoder, "encoder", None), "layer", None)
        if stack is None:
            raise ValueError(
                f"freeze_layers needs an encoder with 'encoder.layer' (BERT-like); "
                f"{type(model.encoder).__name__} has none"
            )
        if layers > len(stack):
            raise ValueError(
                f"freeze_layers is {layers} but the encoder has {len(stack)} layers; "
                "use freeze_encoder to keep all of it fixed"
            )
        for layer in list(stack)[:layers]:
            for param in layer.parameters():
                param.requires_grad = False


class _ClassificationTask:
    """Cross-entropy on the head, plus the auxiliary head's where labels are known.

    Rows labelled -1 are outliers (out-of-scope texts): instead of a class they get
    the cross-entropy to the uniform distribution, which teaches the head to be
    unsure on such texts rather than to name them (outlier exposure).
    """

    def __init__(
        self,
        classifier: EncoderClassifier,
        aux: nn.Linear,
        tokenizer: PreTrainedTokenizerBase,
        texts: Sequence[str],
        labels: torch.Tensor,
        aux_labels: Optional[torch.Tensor],
        val_texts: Sequence[str],
        val_labels: np.ndarray,
        settings: FineTuneSettings,
        device: torch.device,
    ) -> None:
        self.classifier, self.aux = classifier, aux
        self.tokenizer, self.texts, self.labels = tokenizer, texts, labels
        self.aux_labels, self.val_texts, self.val_labels = aux_labels, val_texts, val_labels
        self.settings, self.device = settings, device
        self.loss_fn = nn.CrossEntropyLoss()
        self.train_loss_fn = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)

    def loss(self, batch: Sequence[int]) -> torch.Tensor:
        classifier = self.classifier
        inputs = tokenize(
            self.tokenizer, [self.texts[i] for i in batch], self.settings.max_length, self.device
        )
        rows = list(batch)
        if self.settings.rdrop_weight:
            # One forward pass over the batch twice: the dropout masks differ per row.
            inputs = {k: torch.cat([v, v]) for k, v in inputs.items()}
            rows = rows + rows
        pooled, logits = classifier(**inputs)
        labels = self.labels[rows].to(self.device)
        inside = labels >= 0
        loss = logits.new_zeros((), dtype=torch.float32)
        if self.settings.rdrop_weight:
            first, second = torch.log_softmax(logits.float(), dim=-1).chunk(2)
            symmetric_kl = 0.5 * (
                nn.functional.kl_div(first, second, log_target=True, reduction="batchmean")
                + nn.functional.kl_div(second, first, log_target=True, reduction="batchmean")
            )
            loss = loss + self.settings.rdrop_weight * symmetric_kl
        if bool(inside.any()):
            loss = loss + self.train_loss_fn(logits[inside].float(), labels[inside])
        if not bool(inside.all()):
            log_probs = torch.log_softmax(logits[~inside].float(), dim=-1)
            # KL(uniform || p): the cross-entropy to uniform less its floor log(C), so
            # the reported loss still falls towards 0 (the gradient is the same).
            kl = -log_probs.mean(dim=-1) - math.log(log_probs.shape[-1])
            loss = loss + self.settings.outlier_weight * kl.mean()
        if self.aux_labels is not None:
            targets = self.aux_labels[rows].to(self.device)
            known = targets >= 0
            if bool(known.any()):
                aux_logits = self.aux(classifier.dropout(pooled)).float()
                loss = loss + self.settings.auxiliary_weight * self.loss_fn(
                    aux_logits[known], targets[known]
                )
        return loss

    def validate(self) -> Dict[str, float]:
        if not len(self.val_texts):
            return {}
        _, logits = predict(
            self.classifier,
            self.tokenizer,
            self.val_texts,
            self.settings.max_length,
            self.device,
        )
        val_loss = float(
            self.loss_fn(torch.from_numpy(logits), torch.from_numpy(self.val_labels)).item()
        )
        accuracy = float((logits.argmax(axis=1) == self.val_labels).mean())
        # Accuracy decides; the loss only breaks ties (it is far below 1/n).
        score = accuracy - 1e-6 * min(val_loss, 100.0)
        return {"val_loss": val_loss, "val_accuracy": accuracy, "score": score}


def fine_tune(
    model: EncoderClassifier,
    tokenizer: PreTrainedTokenizerBase,
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    val_texts: Sequence[str],
    val_labels: Sequence[int],
    settings: FineTuneSettings,
    device: torch.device,
    *,
    auxiliary_labels: Optional[Sequence[int]] = None,
    auxiliary_classes: int = 0,
    outlier_texts: Sequence[str] = (),
    checkpoint_dir: Optional[Path] = None,
    resume: bool = False,
) -> FineTuneResult:
    """Fine-tune ``model`` in place and keep the weights of its best validation epoch.

    ``auxiliary_labels`` (one per training text, -1 where unknown) add a second task
    to the shared encoder: a throw-away head learns them beside the main one, so the
    encoder keeps what that task needs. The intent classifier passes sentiment labels
    here, so the sentiment analyzer's head finds sentiment in the same sentence vector
    instead of a vector tuned for intents alone.

    ``outlier_texts`` (out-of-scope examples) are trained towards a uniform
    distribution over the labels (outlier exposure), so that texts like them get a
    low confidence and fall below an out-of-scope threshold. They are never a class.
    """
    if not 0.0 <= settings.label_smoothing < 1.0:
        raise ValueError(
            f"label_smoothing must be at least 0 and below 1, not {settings.label_smoothing!r}; "
            "0.1 is the usual value, 0 turns it off"
        )
    if not settings.rdrop_weight >= 0:  # also refuses nan
        raise ValueError(
            f"rdrop_weight must be 0 or more, not {settings.rdrop_weight!r}; "
            "1.0 is a usual value, 0 turns R-drop off"
        )
    if outlier_texts:
        outliers = list(outlier_texts)
        train_texts = [*train_texts, *outliers]
        train_labels = [*train_labels, *([-1] * len(outliers))]
        if auxiliary_labels is not None:
            auxiliary_labels = [*auxiliary_labels, *([-1] * len(outliers))]
    use_auxiliary = (
        auxiliary_labels is not None
        and settings.auxiliary_weight > 0
        and any(label >= 0 for label in auxiliary_labels)
    )
    torch.manual_seed(settings.seed)  # the auxiliary head's random start
    net = nn.ModuleDict(
        {"classifier": model, "aux": nn.Linear(model.hidden_size, max(auxiliary_classes, 1))}
    ).to(device)
    freeze(
        model, settings.freeze_embeddings, settings.freeze_layers, encoder=settings.freeze_encoder
    )
    labels = torch.tensor(list(train_labels), dtype=torch.long)
    if not resume or checkpoint_dir is None:
        # A resumed run gets its head from the checkpoint.
        # Outliers have no centroid: the head starts from the classes alone.
        inside = labels >= 0
        texts = [t for t, keep in zip(train_texts, inside.tolist(), strict=True) if keep]
        pooled, _ = predict(model, tokenizer, texts, settings.max_length, device)
        model.init_head_from_centroids(torch.from_numpy(pooled).float(), labels[inside])
        model.to(device)
    if not use_auxiliary:
        net["aux"].requires_grad_(False)
    optimizer = adamw(
        param_groups(
            net.named_parameters(),
            learning_rate=settings.learning_rate,
            weight_decay=settings.weight_decay,
            head_prefixes=("classifier.head.", "aux."),
            head_learning_rate=settings.head_learning_rate,
        ),
        settings.learning_rate,
    )
    aux_head = net["aux"]
    assert isinstance(aux_head, nn.Linear)
    task = _ClassificationTask(
        model,
        aux_head,
        tokenizer,
        train_texts,
        labels,
        torch.tensor(list(auxiliary_labels), dtype=torch.long)
        if use_auxiliary and auxiliary_labels is not None
        else None,
        val_texts,
        np.asarray(val_labels, dtype=np.int64),
        settings,
        device,
    )
    loop = train_loop(
        net,
        task,
        len(train_texts),
        optimizer,
        settings,
        device,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        lengths=token_lengths(tokenizer, train_texts, settings.max_length),
    )
    model.eval()
    return FineTuneResult(
        best_epoch=loop.best_epoch,
        epochs_run=loop.epochs_run,
        seconds=loop.seconds,
        steps=loop.steps,
        seconds_per_step=loop.seconds_per_step,
        stopped_early=loop.stopped_early,
        history=loop.history,
        averaged=loop.averaged,
    )
