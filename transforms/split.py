"""Deterministic train/validation assignment.

The split is a function of the example's content and a seed, never of arrival order or
worker, so reruns and other runners give the same split and identical examples land on the
same side.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import apache_beam as beam
import orjson

from schemas.records import SPLITS, TRAIN, VALIDATION, Item
from transforms.dedup import normalized

_SCALE = float(1 << 64)


def split_key(example: dict[str, Any], seed: int) -> float:
    """A number in [0, 1) that depends only on the example's normalised content and the seed.

    Normalised as exact deduplication normalises, so examples that are exact duplicates always
    land on the same side: validation never holds a copy of a training example.
    """
    content = orjson.dumps(normalized(example), option=orjson.OPT_SORT_KEYS)
    digest = hashlib.blake2b(content, digest_size=8, key=str(seed).encode()).digest()
    return int.from_bytes(digest, "big") / _SCALE


def assign_split(example: dict[str, Any], *, seed: int, validation_fraction: float) -> str:
    return VALIDATION if split_key(example, seed) < validation_fraction else TRAIN


class SplitExamples(beam.PTransform):
    """Returns ``{"train": ..., "validation": ...}``; each item carries its split."""

    def __init__(self, *, validation_fraction: float, seed: int = 0):
        super().__init__()
        if not 0.0 <= validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
        self._fraction = validation_fraction
        self._seed = seed

    def expand(self, pcoll):
        fraction, seed = self._fraction, self._seed

        def tag(item: Item) -> Item:
            split = assign_split(item.example, seed=seed, validation_fraction=fraction)
            return dataclasses.replace(item, split=split)

        tagged = pcoll | "AssignSplit" >> beam.Map(tag)
        parts = tagged | "Partition" >> beam.Partition(lambda item, _n: SPLITS.index(item.split), len(SPLITS))
        return dict(zip(SPLITS, parts))
