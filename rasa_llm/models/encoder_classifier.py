"""The torch network behind the intent classifier: a pretrained encoder, mean pooling
and a linear head.

Mean pooling, not the [CLS] pooler: the shipped MiniLM was trained for sentence
similarity with mean pooling, and fine-tuning it through its untrained [CLS] pooler
scores below a frozen encoder with logistic regression (see ../shared/MODELS.md).
The pooled vector is also what the sentiment analyzer reads, so one encoder pass per
message serves both heads.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn
from transformers import PreTrainedModel


class EncoderClassifier(nn.Module):
    """Encoder → masked mean pooling → dropout → linear head."""

    def __init__(self, encoder: PreTrainedModel, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(int(encoder.config.hidden_size), num_labels)

    @property
    def hidden_size(self) -> int:
        """The width of the encoder's sentence vectors."""
        return int(self.encoder.config.hidden_size)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean of the last hidden states over the real (unpadded) tokens."""
        return mean_pool(self.encoder, input_ids, attention_mask)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return the pooled sentence vectors and the head's logits."""
        pooled = self.encode(input_ids, attention_mask)
        return pooled, self.head(self.dropout(pooled))

    @torch.no_grad()
    def init_head_from_centroids(self, pooled: torch.Tensor, labels: torch.Tensor) -> None:
        """Start the head as a nearest-centroid classifier on the pretrained encoder.

        A random head spends the first epochs undoing its own noise while its
        gradients shake the pretrained encoder; starting from normalised class
        centroids gives sensible logits from step one. The scale makes the
        softmax sharp enough to train from without saturating it.
        """
        num_labels = self.head.out_features
        centroids = torch.zeros(num_labels, pooled.shape[1], dtype=pooled.dtype)
        for label in range(num_labels):
            members = pooled[labels == label]
            if len(members):
                centroids[label] = members.mean(dim=0)
        centroids = nn.functional.normalize(centroids, dim=1)
        scale = 1.0 / max(float(pooled.norm(dim=1).mean()), 1e-6)
        self.head.weight.copy_(centroids * scale * 20.0)
        self.head.bias.zero_()


def mean_pool(
    encoder: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Mean of ``encoder``'s last hidden states over the real (unpadded) tokens.

    The pooling MiniLM was trained with; the intent classifier and the fallback's
    passage retriever both use it, so their vectors live in the same space.
    """
    hidden = encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
