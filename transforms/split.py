"""Deterministic train/validation assignment.

The split is a function of the example's content and a seed, never of arrival order or
worker, so reruns and other runners give the same split and identical examples land on the
same side.
"""

from __future__ import annotations

import hashlib
from typing import Any

from schemas.recipe import SplitSpec
from schemas.records import KEPT, TRAIN, VALIDATION, Item
from transforms.stage import BatchDoFn, BatchStage
from transforms.text import content_key

_SCALE = float(1 << 64)


def split_key(example: dict[str, Any], seed: int, key: bytes | None = None) -> float:
    """A number in [0, 1) that depends only on the example's normalised content and the seed.

    Normalised as exact deduplication normalises (``key`` is that digest when already known),
    so examples that are exact duplicates always land on the same side: validation never holds
    a copy of a training example.
    """
    digest = hashlib.blake2b(key or content_key(example), digest_size=8, key=str(seed).encode()).digest()
    return int.from_bytes(digest, "big") / _SCALE


def assign_split(example: dict[str, Any], *, seed: int, validation_fraction: float, key: bytes | None = None) -> str:
    return VALIDATION if split_key(example, seed, key) < validation_fraction else TRAIN


class _SplitFn(BatchDoFn):
    STAGE = "SplitTrainValidation"

    def __init__(self, validation_fraction: float, seed: int):
        super().__init__()
        self._fraction = validation_fraction
        self._seed = seed

    def handle(self, item: Item, emit) -> None:
        if self._fraction == 0:  # no digest to compute: everything trains
            split = TRAIN
        else:
            split = assign_split(item.example, seed=self._seed, validation_fraction=self._fraction, key=item.content_key)
        item.split = split
        emit(KEPT, item)


class AssignSplit(BatchStage):
    """Mark each record's split (``item.split``); a record the split fails on is rejected as
    ``internal_error``."""

    def __init__(self, *, spec: SplitSpec = SplitSpec()):
        super().__init__(_SplitFn(spec.validation_fraction, spec.seed))
