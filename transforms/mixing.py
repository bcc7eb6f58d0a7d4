"""Weighted source mixing (``input.sources``): each source's share of the kept train split
follows its weight.

Sources are mixed by deterministic down-sampling; no example is ever repeated. With K_s train
examples kept of source s (after filters, decontamination and dedup) and shares
p_s = w_s / sum(w), the mixture is the largest one the data allows: T = min over sources of
K_s / p_s examples in all, n_s = round(p_s * T) of source s — the source that limits keeps all
of its examples, the others keep the n_s of theirs that rank first by a hash of their
normalised content (salted: independent of the split's), ties by (file, row). The rest are
dropped as ``downsampled``, with their provenance, like any drop. A source with no kept train
example cannot be given its share; the others keep their relative weights, and stats.json shows
the shares achieved beside the requested ones. The validation split keeps the same share of each
source's validation examples as of its train ones (ranked the same way), so that it has the
mixture's make-up and stays the recipe's fraction of the whole.

Pass 1 writes, for every kept example, ``(row, hash, tokens)`` into its unit's file (one
section per split); ``MixSources`` reads them after dedup, decides, and writes the decisions as
a block like dedup's: the shards leave the downsampled examples out and write them to
``dropped/downsampled/``, and the statistics take them back.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import apache_beam as beam
import numpy as np

from schemas.layout import DEDUP_DIR
from schemas.records import DOWNSAMPLED, SPLITS, TRAIN, Item
from transforms.dedup import (
    DECISION_RECORD,
    NO_SURVIVOR,
    REASON_CODES,
    SPLIT_CODES,
    read_section,
    all_decisions,
    in_sorted,
    reason_counts,
    read_decisions,
    sorted_by_source,
    source_numbers,
    write_block,
)
from transforms.files import join
from transforms.text import content_key

MIX_RECORD = np.dtype([("row", "<u8"), ("hash", "<u8"), ("tokens", "<u4")])
_SALT = b"ftprep-mix"


def mix_section(split: str) -> str:
    return f"mix/{split}"


def mix_records(items: list[Item]) -> bytes:
    """Each item's mix record: its row, the hash it ranks by, its tokens."""
    records = np.zeros(len(items), dtype=MIX_RECORD)
    records["row"] = [item.source.row for item in items]
    records["hash"] = [int.from_bytes(hashlib.blake2b(item.content_key or content_key(item.example), digest_size=8,
                                                      key=_SALT).digest(), "big") for item in items]
    records["tokens"] = [item.tokens.total if item.tokens is not None else 0 for item in items]
    return records.tobytes()


def mixture_sizes(kept: Sequence[int], weights: Sequence[float]) -> list[int]:
    """How many train examples each source keeps: the largest mixture in the weights' shares
    that the kept counts allow (sources with none kept left out of it)."""
    present = [i for i, count in enumerate(kept) if count > 0]
    if not present:
        return [0] * len(kept)
    total_weight = sum(weights[i] for i in present)
    shares = {i: weights[i] / total_weight for i in present}
    limit = min(kept[i] / shares[i] for i in present)
    return [min(kept[i], int(shares[i] * limit + 0.5)) if i in shares else 0 for i in range(len(kept))]


def plan_mix(units: list, decisions: list[np.ndarray], source_of_file: Sequence[int], names: Sequence[str],
             weights: Sequence[float]) -> tuple[np.ndarray, dict]:
    """The downsampled examples (a block of decisions) and, per source, what it kept: train and
    validation examples, train tokens, examples kept before mixing, downsampled."""
    gone = all_decisions(decisions)
    gone_numbers = np.sort(source_numbers(gone["file"], gone["row"]))
    of_file = np.asarray(source_of_file, dtype=np.int64)
    figures = {name: {"kept_before_mixing": 0, "downsampled": 0, "train": 0, "validation": 0, "train_tokens": 0,
                      "duplicates": {}} for name in names}
    # Dedup's drops, by source (the others, by unit: ComputeStats).
    gone_source = of_file[gone["file"].astype(np.int64)] if len(gone) else np.zeros(0, dtype=np.int64)
    for index, name in enumerate(names):
        for reason, count in reason_counts(gone[gone_source == index]).items():
            figures[name]["duplicates"][reason] = count
    dropped = []
    for split in SPLITS:
        parts, files = [], []
        for unit in units:
            part = read_section(unit, mix_section(split), MIX_RECORD)
            parts.append(part)
            files.append(np.full(len(part), unit.file, dtype=np.uint64))
        records = np.concatenate([np.zeros(0, dtype=MIX_RECORD), *parts])
        file = np.concatenate([np.zeros(0, dtype=np.uint64), *files])
        if len(gone_numbers):
            keep = ~in_sorted(source_numbers(file, records["row"]), gone_numbers)
            records, file = records[keep], file[keep]
        source = of_file[file.astype(np.int64)]
        counts = [int((source == index).sum()) for index in range(len(names))]
        if split == TRAIN:
            sizes = mixture_sizes(counts, weights)
            rates = [size / count if count else 1.0 for size, count in zip(sizes, counts)]
        else:  # the validation split keeps each source's train rate: its mix and fraction stay the train's
            sizes = [int(count * rate + 0.5) for count, rate in zip(counts, rates)]
        for index, name in enumerate(names):
            mine = np.flatnonzero(source == index)
            ranked = mine[np.lexsort((records["row"][mine], file[mine], records["hash"][mine]))]
            kept, left = ranked[: sizes[index]], ranked[sizes[index] :]
            figures[name][split] = len(kept)
            figures[name]["downsampled"] += len(left)
            if split == TRAIN:
                figures[name].update(kept_before_mixing=counts[index], train_tokens=int(records["tokens"][kept].sum()))
            block = np.zeros(len(left), dtype=DECISION_RECORD)
            block["file"], block["row"] = file[left], records["row"][left]
            block["survivor_file"], block["split"] = NO_SURVIVOR, SPLIT_CODES[split]
            block["reason"] = REASON_CODES[DOWNSAMPLED]
            dropped.append(block)
    block = sorted_by_source(np.concatenate([np.zeros(0, dtype=DECISION_RECORD), *dropped]))
    return block, figures


class _MixFn(beam.DoFn):
    FIGURES = "figures"

    def __init__(self, temp_dir: str, source_of_file: tuple[int, ...], names: tuple[str, ...], weights: tuple[float, ...]):
        self._temp_dir = temp_dir
        self._source_of_file = source_of_file
        self._names = names
        self._weights = weights

    def process(self, _, units: list, decisions: list):
        block, figures = plan_mix(units, read_decisions(decisions), self._source_of_file, self._names, self._weights)
        yield beam.pvalue.TaggedOutput(self.FIGURES, figures)
        if len(block):
            yield write_block(join(self._temp_dir, DEDUP_DIR, "downsampled.npy"), block)


class MixSources(beam.PTransform):
    """Units' layouts in, with the paths of dedup's decisions (``decisions``); out, the paths of
    the downsampled examples' decisions (``decisions``) and each source's figures (``figures``:
    one dict). ``source_of_file``: each run file's source, by index in ``names``/``weights``."""

    def __init__(self, *, temp_dir: str, source_of_file: Sequence[int], names: Sequence[str], weights: Sequence[float],
                 decisions):
        super().__init__()
        if len(names) != len(weights) or not names:
            raise ValueError("one weight per source")
        if any(index < 0 or index >= len(names) for index in source_of_file):
            raise ValueError("every file needs its source")
        self._fn = _MixFn(temp_dir, tuple(source_of_file), tuple(names), tuple(float(w) for w in weights))
        self._decisions = decisions

    def expand(self, units):
        return (
            units.pipeline
            | "StartMix" >> beam.Create([None])
            | "DecideMix" >> beam.ParDo(self._fn, beam.pvalue.AsList(units), beam.pvalue.AsList(self._decisions))
            .with_outputs(_MixFn.FIGURES, main="decisions")
        )
