"""One fine-tuning loop for an :class:`EncoderClassifier`: AdamW with weight decay,
warm-up and linear decay, dropout, layer freezing, validation every epoch and early
stopping on it. The intent classifier uses it inside ``rasa train``; ``training/``
builds its command-line tools on the same loop.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from rasa_llm.encoder_classifier import EncoderClassifier, seed_everything

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FineTuneSettings:
    """Hyper-parameters of one fine-tuning run (the component's config keys)."""

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 5e-5
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 64
    freeze_embeddings: bool = False
    freeze_layers: int = 0
    early_stopping_patience: int = 3
    seed: int = 42
    show_progress: bool = True
    # Weight of the auxiliary loss (see :func:`fine_tune`); 0 turns it off.
    auxiliary_weight: float = 0.5


@dataclass
class FineTuneResult:
    """What the loop learned about itself; the model is updated in place."""

    best_epoch: int
    epochs_run: int
    seconds: float
    history: List[Dict[str, float]] = field(default_factory=list)
    validation_logits: np.ndarray | None = None


def tokenize(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, device: torch.device
) -> Dict[str, torch.Tensor]:
    """Tokenize a batch, padded to its longest text and cut at ``max_length``."""
    batch = tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    return {k: batch[k].to(device) for k in ("input_ids", "attention_mask")}


@torch.no_grad()
def predict(
    model: EncoderClassifier,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    device: torch.device,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled vectors and logits for ``texts``, in eval mode, in batches."""
    model.eval()
    pooled_parts, logit_parts = [], []
    for start in range(0, len(texts), batch_size):
        inputs = tokenize(tokenizer, texts[start : start + batch_size], max_length, device)
        with _autocast(device):
            pooled, logits = model(**inputs)
        pooled_parts.append(pooled.float().cpu().numpy())
        logit_parts.append(logits.float().cpu().numpy())
    if not pooled_parts:
        return np.zeros((0, model.hidden_size)), np.zeros((0, model.head.out_features))
    return np.concatenate(pooled_parts), np.concatenate(logit_parts)


def freeze(model: EncoderClassifier, embeddings: bool, layers: int) -> None:
    """Stop gradients to the embeddings and/or the bottom ``layers`` encoder layers."""
    encoder = model.encoder
    if embeddings or layers > 0:
        for param in encoder.get_submodule("embeddings").parameters():
            param.requires_grad = False
    if layers > 0:
        stack = getattr(getattr(encoder, "encoder", None), "layer", None)
        if stack is None:
            raise ValueError(
                f"freeze_layers needs an encoder with 'encoder.layer' (BERT-like); "
                f"{type(encoder).__name__} has none"
            )
        for layer in list(stack)[:layers]:
            for param in layer.parameters():
                param.requires_grad = False


def fine_tune(
    model: EncoderClassifier,
    tokenizer: PreTrainedTokenizerBase,
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    val_texts: Sequence[str],
    val_labels: Sequence[int],
    settings: FineTuneSettings,
    device: torch.device,
    auxiliary_labels: Optional[Sequence[int]] = None,
    auxiliary_classes: int = 0,
) -> FineTuneResult:
    """Fine-tune ``model`` in place and keep the weights of its best validation epoch.

    ``auxiliary_labels`` (one per training text, -1 where unknown) add a second task
    to the shared encoder: a throw-away head learns them beside the main one, so the
    encoder keeps what that task needs. The intent classifier passes sentiment labels
    here, so the sentiment analyzer's head finds sentiment in the same sentence vector
    instead of a vector tuned for intents alone.
    """
    started = time.perf_counter()
    seed_everything(settings.seed)
    model.to(device)
    use_auxiliary = (
        auxiliary_labels is not None
        and settings.auxiliary_weight > 0
        and any(label >= 0 for label in auxiliary_labels)
    )
    aux_head = nn.Linear(model.hidden_size, max(auxiliary_classes, 1)).to(device)
    aux_targets = torch.tensor(
        list(auxiliary_labels) if use_auxiliary and auxiliary_labels else [-1] * len(train_texts),
        dtype=torch.long,
    )
    freeze(model, settings.freeze_embeddings, settings.freeze_layers)

    labels = torch.tensor(list(train_labels), dtype=torch.long)
    pooled, _ = predict(model, tokenizer, train_texts, settings.max_length, device)
    model.init_head_from_centroids(torch.from_numpy(pooled).float(), labels)
    model.to(device)

    groups = _param_groups(model, settings)
    if use_auxiliary:
        groups.append({"params": list(aux_head.parameters()), "lr": settings.head_learning_rate})
    optimizer = torch.optim.AdamW(groups, lr=settings.learning_rate)
    steps_per_epoch = math.ceil(len(train_texts) / settings.batch_size)
    total_steps = max(1, steps_per_epoch * settings.epochs)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(settings.warmup_ratio * total_steps), total_steps
    )
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(settings.seed)

    result = FineTuneResult(best_epoch=0, epochs_run=0, seconds=0.0)
    best_score = (-math.inf, -math.inf)
    best_state = None
    stale_epochs = 0
    for epoch in range(1, settings.epochs + 1):
        model.train()
        order = torch.randperm(len(train_texts), generator=generator).tolist()
        batches = [
            order[i : i + settings.batch_size] for i in range(0, len(order), settings.batch_size)
        ]
        running = 0.0
        progress = tqdm(
            batches, desc=f"epoch {epoch}/{settings.epochs}", disable=not settings.show_progress
        )
        for batch in progress:
            inputs = tokenize(
                tokenizer, [train_texts[i] for i in batch], settings.max_length, device
            )
            with _autocast(device):
                pooled_batch, logits = model(**inputs)
            loss = loss_fn(logits.float(), labels[batch].to(device))
            batch_aux = aux_targets[batch].to(device)
            if use_auxiliary and bool((batch_aux >= 0).any()):
                aux_logits = aux_head(model.dropout(pooled_batch)).float()
                known = batch_aux >= 0
                loss = loss + settings.auxiliary_weight * loss_fn(
                    aux_logits[known], batch_aux[known]
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            running += loss.item() * len(batch)
            progress.set_postfix(loss=f"{loss.item():.3f}")
        record = {"epoch": float(epoch), "train_loss": running / max(1, len(train_texts))}
        result.epochs_run = epoch

        if not val_texts:
            result.best_epoch = epoch
            result.history.append(record)
            continue
        _, val_logits = predict(model, tokenizer, val_texts, settings.max_length, device)
        val_targets = np.asarray(val_labels)
        val_loss = float(
            loss_fn(torch.from_numpy(val_logits), torch.from_numpy(val_targets)).item()
        )
        val_accuracy = float((val_logits.argmax(axis=1) == val_targets).mean())
        record.update(val_loss=val_loss, val_accuracy=val_accuracy)
        result.history.append(record)
        logger.info(
            "epoch %d: train loss %.4f, validation loss %.4f, accuracy %.4f",
            epoch,
            record["train_loss"],
            val_loss,
            val_accuracy,
        )
        score = (val_accuracy, -val_loss)
        if score > best_score:
            best_score, stale_epochs = score, 0
            best_state = copy.deepcopy(model.state_dict())
            result.best_epoch = epoch
            result.validation_logits = val_logits
        else:
            stale_epochs += 1
            if stale_epochs >= settings.early_stopping_patience:
                logger.info("early stopping after epoch %d (best: %d)", epoch, result.best_epoch)
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - started
    return result


def _param_groups(model: EncoderClassifier, settings: FineTuneSettings) -> List[Dict[str, object]]:
    """Encoder and head at their own learning rates; no decay on biases and norms."""
    groups: Dict[tuple, List[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_head = name.startswith("head.")
        no_decay = name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name
        groups.setdefault((is_head, no_decay), []).append(param)
    return [
        {
            "params": params,
            "lr": settings.head_learning_rate if is_head else settings.learning_rate,
            "weight_decay": 0.0 if no_decay else settings.weight_decay,
        }
        for (is_head, no_decay), params in groups.items()
    ]


def _autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on a GPU; a no-op context on the CPU, where fp32 is faster."""
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
    )
