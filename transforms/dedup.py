"""Exact and near-duplicate removal as Beam stages.

Both keep one survivor per duplicate set, chosen deterministically: the record with the lowest
(source file, row). Every run and every runner, with any number of workers, keeps the same
records. Memory is bounded per key: exact duplicates are grouped by content digest; near
duplicates shuffle only (band key, source) pairs, then join the verdict back to the records by
source.

Near duplicates: MinHash signatures over word shingles of the normalised text, split into LSH
bands (``optimal_bands`` picks bands x rows for the threshold). Records that share a band are
candidates; in each candidate group every record but the lowest is dropped, as a duplicate of
the lowest record of any group it shares. Candidates are not re-verified against the exact
Jaccard similarity: banding is tuned so that pairs far below the threshold rarely collide.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import unicodedata
import zlib
from dataclasses import dataclass
from typing import Any, Iterable, Sequence, Tuple

import apache_beam as beam
import numpy as np
import orjson

from schemas.formats import example_texts
from schemas.records import Dropped, Item, Source, decode_item, encode_item
from transforms.stage import KEPT, BatchDoFn, BatchStage, Rebatch

LOGGER = logging.getLogger(__name__)

DUPLICATE_EXACT = "duplicate_exact"
DUPLICATE_NEAR = "duplicate_near"

_PRIME = (1 << 61) - 1
_MAX_32 = np.uint64(0xFFFFFFFF)
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 names it trapz


def normalize_text(text: str) -> str:
    """What makes two texts "the same": NFKC, case-folded, whitespace runs as one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def normalized(value: Any) -> Any:
    """``value`` with every string normalised (keys stay)."""
    if isinstance(value, str):
        return normalize_text(value)
    if isinstance(value, list):
        return [normalized(v) for v in value]
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()}
    return value


def digest(value: Any) -> bytes:
    return hashlib.blake2b(orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str),
                           digest_size=16).digest()


def _dedup_value(item: Item, fields: Sequence[str] | None) -> Any:
    if fields:
        source = item.fields if item.fields is not None else item.row
        return [source.get(name) for name in fields]
    return item.example


def content_key(example: Any) -> bytes:
    """Digest of the normalised example: equal for examples that differ only in case and spacing."""
    return digest(normalized(example))


def exact_key(item: Item, fields: Sequence[str] | None = None) -> bytes:
    """Digest of the normalised example, or of the normalised values of ``fields``."""
    if fields:
        return digest(normalized(_dedup_value(item, fields)))
    return item.content_key or content_key(item.example)


def _keyed(item: Item, fields: tuple[str, ...] | None) -> tuple[bytes, bytes]:
    key = exact_key(item, fields)
    if not fields:
        # Only what later stages need crosses the shuffle: the example (a duplicate's record in
        # dropped/ is its example; its source points at the row) and the digest, which the
        # split hashes again. The row and cleaned fields would double the shuffled bytes.
        item = dataclasses.replace(item, row=None, fields=None, content_key=key)
    return key, encode_item(item)


def _record(item: Item) -> Any:
    """What dropped/ shows of a duplicate: its row, or its example once the row was shed."""
    return item.row if item.row is not None else item.example


def dedup_text(item: Item, fields: Sequence[str] | None = None) -> str:
    if fields:
        return normalize_text(" ".join(str(v) for v in _dedup_value(item, fields) if v is not None))
    return normalize_text(" ".join(example_texts(item.example)))


def source_key(source: Source) -> tuple[str, int]:
    return (source.file, source.row)


# --- MinHash and LSH banding -------------------------------------------------------------


def shingles(text: str, size: int) -> list[str]:
    words = text.split()
    if len(words) <= size:
        return [" ".join(words)]
    return [" ".join(words[i : i + size]) for i in range(len(words) - size + 1)]


def shingle_hashes(text: str, size: int) -> np.ndarray:
    """32-bit hashes of the word shingles of ``text`` (the same set ``shingles`` lists).

    Each word is hashed once (crc32) and shingles combine their words' hashes with a
    vectorised polynomial; hashing every shingle string separately was most of the cost.
    """
    words = text.split() or [""]
    word_hashes = np.array([zlib.crc32(w.encode()) for w in words], dtype=np.uint64)
    count = max(1, len(words) - size + 1)
    combined = np.zeros(count, dtype=np.uint64)
    for offset in range(min(size, len(words))):
        combined = combined * np.uint64(0x100000001B3) + word_hashes[offset : offset + count]
    # Fold 64 bits to 32 so that (a*h + b) stays below 2**64.
    return (combined ^ (combined >> np.uint64(32))) & _MAX_32


@dataclass(frozen=True)
class MinHasher:
    """MinHash with ``num_perm`` universal hash functions ((a*h + b) mod p over 32-bit shingle hashes).

    The permutations come from a fixed seed, so every worker computes the same signatures.
    Products stay below 2**64: a, b and h are all below 2**32.
    """

    num_perm: int = 128
    shingle: int = 5
    seed: int = 1

    def _permutations(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        a = rng.integers(1, 1 << 32, size=self.num_perm, dtype=np.uint64)
        b = rng.integers(0, 1 << 32, size=self.num_perm, dtype=np.uint64)
        return a, b

    def signature(self, text: str, permutations=None) -> np.ndarray:
        a, b = permutations if permutations is not None else self._permutations()
        hashes = shingle_hashes(text, self.shingle)
        values = (np.outer(hashes, a) + b) % np.uint64(_PRIME) & _MAX_32
        return values.min(axis=0).astype(np.uint32)


def _collision_probability(similarity: np.ndarray, bands: int, rows: int) -> np.ndarray:
    return 1.0 - (1.0 - similarity**rows) ** bands


def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands x rows (within num_perm) minimising the chance of false positives below the
    threshold plus false negatives above it, with equal weights."""
    grid = np.linspace(0.0, 1.0, 1001)
    below, above = grid[grid < threshold], grid[grid >= threshold]
    best, best_error = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            false_positive = _trapezoid(_collision_probability(below, bands, rows), below)
            false_negative = _trapezoid(1.0 - _collision_probability(above, bands, rows), above)
            if false_positive + false_negative < best_error:
                best, best_error = (bands, rows), false_positive + false_negative
    return best


def band_keys(signature: np.ndarray, bands: int, rows: int) -> list[bytes]:
    return [
        band.to_bytes(2, "big") + hashlib.blake2b(signature[band * rows : (band + 1) * rows].tobytes(), digest_size=8).digest()
        for band in range(bands)
    ]


# --- Beam stages ---------------------------------------------------------------------------


def _keep_lowest(group: tuple[bytes, Iterable[bytes]]):
    """The lowest-source item survives; the others leave as duplicates of it."""
    _, encoded = group
    items = [decode_item(data) for data in encoded]  # one duplicate set: small
    survivor = min(items, key=lambda item: source_key(item.source))
    yield survivor
    for item in items:
        if item.source != survivor.source:
            yield beam.pvalue.TaggedOutput(
                DUPLICATE_EXACT, Dropped(item.source, DUPLICATE_EXACT, _record(item), duplicate_of=survivor.source)
            )


class _KeyByContentFn(BatchDoFn):
    STAGE = "DropExactDuplicates"

    def __init__(self, fields: tuple[str, ...] | None):
        super().__init__()
        self._fields = fields

    def handle(self, item: Item, emit) -> None:
        emit(KEPT, _keyed(item, self._fields))


class DropExactDuplicates(beam.PTransform):
    """Batches in; returns ``(survivors, duplicates, rejected)`` as batches. ``fields`` compares
    those fields instead of the example."""

    def __init__(self, *, fields: Sequence[str] | None = None):
        super().__init__()
        self._fields = tuple(fields) if fields else None

    def expand(self, batches):
        keyed, rejected = batches | "KeyByContent" >> BatchStage(_KeyByContentFn(self._fields))
        results = (
            keyed
            | "KeyedPairs" >> beam.FlatMap(iter).with_output_types(Tuple[bytes, bytes])
            | "GroupByContent" >> beam.GroupByKey()
            | "KeepLowest" >> beam.FlatMap(_keep_lowest).with_outputs(DUPLICATE_EXACT, main="items")
        )
        return (
            results["items"] | "RebatchKept" >> Rebatch(),
            results[DUPLICATE_EXACT] | "RebatchDuplicates" >> Rebatch(),
            rejected,
        )


class _BandKeysFn(beam.DoFn):
    def __init__(self, hasher: MinHasher, bands: int, rows: int, fields: tuple[str, ...] | None):
        self._hasher = hasher
        self._bands = bands
        self._rows = rows
        self._fields = fields
        self._permutations = None
        self._unchecked = beam.metrics.Metrics.counter("DropNearDuplicates", "unchecked")

    def setup(self):
        self._permutations = self._hasher._permutations()

    def process(self, batch: list[Item]):
        for item in batch:
            try:
                signature = self._hasher.signature(dedup_text(item, self._fields), self._permutations)
            except Exception:  # noqa: BLE001 - the record stays, unchecked, rather than fail the run
                LOGGER.exception("near-duplicate signature failed for %s; kept unchecked", item.source)
                self._unchecked.inc()
                continue
            for key in band_keys(signature, self._bands, self._rows):
                yield key, source_key(item.source)


def _duplicates_in_band(group: tuple[bytes, Iterable[tuple[str, int]]]):
    """Every member of a candidate group but the lowest, paired with the lowest."""
    _, sources = group
    lowest = min(sources)
    for source in sources:
        if source != lowest:
            yield source, lowest


def _split_near(joined):
    _, grouped = joined
    duplicate_of = list(grouped["duplicate_of"])
    for item in map(decode_item, grouped["items"]):
        if duplicate_of:
            original = Source(*duplicate_of[0])
            yield beam.pvalue.TaggedOutput(
                DUPLICATE_NEAR, Dropped(item.source, DUPLICATE_NEAR, _record(item), duplicate_of=original)
            )
        else:
            yield item


class DropNearDuplicates(beam.PTransform):
    """MinHash/LSH near-duplicate removal; batches in, ``(survivors, duplicates)`` as batches out."""

    def __init__(self, *, threshold: float = 0.8, shingle: int = 5, num_perm: int = 128, fields: Sequence[str] | None = None):
        super().__init__()
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1), got {threshold}")
        if shingle < 1 or num_perm < 2:
            raise ValueError("shingle must be at least 1 and num_perm at least 2")
        self._hasher = MinHasher(num_perm=num_perm, shingle=shingle)
        self._bands, self._rows = optimal_bands(threshold, num_perm)
        self._fields = tuple(fields) if fields else None

    def expand(self, batches):
        duplicate_of = (
            batches
            | "BandKeys" >> beam.ParDo(_BandKeysFn(self._hasher, self._bands, self._rows, self._fields))
            | "GroupByBand" >> beam.GroupByKey()
            | "PairWithLowest" >> beam.FlatMap(_duplicates_in_band)
            # A record in several candidate groups is a duplicate of the lowest of their survivors.
            | "LowestOriginal" >> beam.CombinePerKey(min)
        )
        keyed = batches | "KeyBySource" >> beam.FlatMap(
            lambda batch: ((source_key(item.source), encode_item(item)) for item in batch)
        )
        results = (
            {"items": keyed, "duplicate_of": duplicate_of}
            | "JoinVerdicts" >> beam.CoGroupByKey()
            | "Split" >> beam.FlatMap(_split_near).with_outputs(DUPLICATE_NEAR, main="items")
        )
        return (
            results["items"] | "RebatchKept" >> Rebatch(),
            results[DUPLICATE_NEAR] | "RebatchDuplicates" >> Rebatch(),
        )
