"""Seeded, stratified train/validation splits on label ids."""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

# A label needs this many examples before any of them is held out.
MIN_EXAMPLES_TO_HOLD_OUT = 3


def stratified_split(
    label_ids: Sequence[int], fraction: float, seed: int
) -> Tuple[List[int], List[int]]:
    """Indices for training and validation, holding out ``fraction`` of each label.

    Every label with at least ``MIN_EXAMPLES_TO_HOLD_OUT`` examples gives at least one
    to validation and keeps at least two for training; rarer labels train on all.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(label_ids)
    train: List[int] = []
    validation: List[int] = []
    for label in sorted(set(labels.tolist())):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_val = 0
        if fraction > 0 and len(members) >= MIN_EXAMPLES_TO_HOLD_OUT:
            n_val = min(max(1, round(fraction * len(members))), len(members) - 2)
        validation.extend(members[:n_val].tolist())
        train.extend(members[n_val:].tolist())
    return sorted(train), sorted(validation)
