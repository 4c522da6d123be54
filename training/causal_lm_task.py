"""The training loop's view of a causal language model: loss on the supervised tokens.

:class:`CausalLMTask` gives :func:`rasa_llm.models.training_loop.train_loop` the mean
next-token cross-entropy of a batch over the tokens whose label is not ``-100`` (the
response and its end-of-turn token), and the same figure on held-out examples, per
token, as the validation score.
"""

from __future__ import annotations

import math
import time
from typing import Dict, Sequence

import torch
from torch import nn

from rasa_llm.models.device import autocast
from training import instruction_data as data


class CausalLMTask:
    """The loop's view of generation: loss on response tokens, held-out loss."""

    def __init__(
        self,
        model: nn.Module,
        train: Sequence[data.TokenizedExample],
        validation: Sequence[data.TokenizedExample],
        *,
        pad_id: int,
        batch_size: int,
        device: torch.device,
        cpu_bf16: bool = False,
    ) -> None:
        self.model = model
        self.cpu_bf16 = cpu_bf16
        self.train = list(train)
        # Sorted by length, the held-out batches carry little padding; the loss is a
        # sum over tokens, so the order does not change it.
        self.validation = sorted(validation, key=lambda e: len(e.input_ids))
        self.pad_id = pad_id
        self.batch_size = batch_size
        self.device = device
        # Time spent in validate(): the loop's seconds_per_step includes validations
        # run inside an epoch, which on a CPU can cost as much as the training steps.
        self.validation_seconds = 0.0
        self.batches_trained = 0

    def _loss_sum(self, examples: Sequence[data.TokenizedExample]) -> tuple[torch.Tensor, int]:
        batch = {k: v.to(self.device) for k, v in data.pad_batch(examples, self.pad_id).items()}
        logits = self.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).logits
        return causal_lm_loss_sum(logits, batch["labels"])

    def loss(self, batch: Sequence[int]) -> torch.Tensor:
        """Mean cross-entropy per supervised token of the training examples at ``batch``."""
        self.batches_trained += 1
        total, count = self._loss_sum([self.train[i] for i in batch])
        return total / max(1, count)

    @torch.no_grad()
    def held_out_loss(self) -> float:
        """Mean cross-entropy per supervised held-out token, in eval mode."""
        was_training = self.model.training
        self.model.eval()
        total, count = 0.0, 0
        for start in range(0, len(self.validation), self.batch_size):
            with autocast(self.device, cpu_bf16=self.cpu_bf16):
                part, n = self._loss_sum(self.validation[start : start + self.batch_size])
            total += float(part)
            count += n
        self.model.train(was_training)
        return total / max(1, count)

    def validate(self) -> Dict[str, float]:
        """Held-out loss, its perplexity, and ``score`` (the negated loss: higher is better)."""
        started = time.perf_counter()
        loss = self.held_out_loss()
        self.validation_seconds += time.perf_counter() - started
        return {"val_loss": loss, "val_perplexity": perplexity(loss), "score": -loss}


def causal_lm_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over labels that are not -100, and their count."""
    shifted_logits = logits[:, :-1, :].float()
    shifted_labels = labels[:, 1:]
    total = nn.functional.cross_entropy(
        shifted_logits.reshape(-1, shifted_logits.shape[-1]),
        shifted_labels.reshape(-1),
        ignore_index=data.IGNORE_INDEX,
        reduction="sum",
    )
    return total, int((shifted_labels != data.IGNORE_INDEX).sum())


def perplexity(loss: float) -> float:
    """``exp(loss)``, with the loss capped at 700 so that it stays a finite float."""
    return math.exp(min(loss, 700.0))  # exp overflows a float past about 709
