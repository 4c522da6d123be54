"""Running an encoder classifier on texts: tokenizing and batched prediction.

What serving needs and nothing of training: the components import this module, and
:mod:`rasa_llm.models.fine_tuning` (which imports the training loop) only when they
train.
"""

from __future__ import annotations

import re
from typing import Dict, List, Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from rasa_llm.models.device import autocast
from rasa_llm.models.encoder_classifier import EncoderClassifier
from rasa_llm.models.onnx_encoder_classifier import OnnxEncoderClassifier

# Python strings hold astral characters whole, so any surrogate code point is a lone one.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def tokenize(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, device: torch.device
) -> Dict[str, torch.Tensor]:
    """Tokenize a batch, padded to its longest text and cut at ``max_length``.

    A lone UTF-16 surrogate (JSON can carry one as an escape, so a webhook can too)
    makes the fast tokenizer raise; it becomes U+FFFD, as a UTF-8 decoder would make it,
    and the message is understood like any other.
    """
    batch = tokenizer(
        _cleaned(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    return {k: batch[k].to(device) for k in ("input_ids", "attention_mask")}


def _cleaned(texts: Sequence[str]) -> List[str]:
    return [_LONE_SURROGATE.sub("\ufffd", text) for text in texts]


def token_lengths(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> List[int]:
    """Tokens per text as :func:`tokenize` cuts them (what a batch pads to)."""
    if not texts:
        return []
    ids = tokenizer(_cleaned(texts), truncation=True, max_length=max_length)["input_ids"]
    return [len(row) for row in ids]


@torch.no_grad()
def predict(
    model: EncoderClassifier | OnnxEncoderClassifier,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    device: torch.device,
    *,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled vectors and logits for ``texts`` (in their order), in eval mode, in batches.

    The batches are cut from the texts sorted by length, so each pads little (random
    Banking77 batches pad to 2.8 times their real tokens); the rows come back in the
    order of ``texts``.
    """
    model.eval()
    if not len(texts):
        return np.zeros((0, model.hidden_size)), np.zeros((0, model.head.out_features))
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    pooled_parts, logit_parts = [], []
    for start in range(0, len(texts), batch_size):
        chunk = [texts[i] for i in order[start : start + batch_size]]
        inputs = tokenize(tokenizer, chunk, max_length, device)
        with autocast(device):
            pooled, logits = model(**inputs)
        pooled_parts.append(pooled.float().cpu().numpy())
        logit_parts.append(logits.float().cpu().numpy())
    restore = np.argsort(np.asarray(order))
    return np.concatenate(pooled_parts)[restore], np.concatenate(logit_parts)[restore]
