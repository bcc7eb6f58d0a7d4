"""Exact and near-duplicate removal.

Both keep one survivor per duplicate set, chosen deterministically: the record with the lowest
(source file, row). Every run and every runner, with any number of workers, keeps the same
records. Records never move for it: pass 1 writes each kept record's digest and band hashes
into its read unit's temporary file (``DedupKeys`` computes them in the per-record chain);
``DecideDuplicates`` reads them partition by partition, sorts them, and names the duplicates
and their survivors; the step that writes the final files leaves the duplicates out.

Near duplicates: MinHash signatures over word shingles of the normalised text, split into LSH
bands (``near_plan`` picks them for the threshold). Records that share a band are candidates:
each is paired with the lowest ``GROUP_PAIRS`` records of every band group it is in, and a pair
is a near duplicate only when the two signatures agree on at least the plan's cut-off share of
their functions (the estimate of their Jaccard similarity). Only the candidates' signatures are
read back, from the units' files. Going through the records in (file, row) order, a record is
dropped when it is a near duplicate of a lower record that is kept, as a duplicate of the lowest
such record: no kept record is a verified near duplicate of another, and every dropped record's
survivor is one it was verified against.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import apache_beam as beam
import numpy as np

from apache_beam.io.filesystems import FileSystems

from schemas.formats import example_texts
from schemas.layout import DEDUP_DIR
from schemas.recipe import DedupSpec, NearDedupSpec as NearSpec
from schemas.records import DOWNSAMPLED, DUPLICATE_EXACT, DUPLICATE_NEAR, KEPT, TRAIN, VALIDATION, Item
from transforms.files import join, local_path, read_bytes, write_bytes
from transforms.minhash import MinHasher, agreement, band_hashes, near_plan
from transforms.stage import BatchDoFn, BatchStage
from transforms.text import content_key, digest, normalize_text, normalized

LOGGER = logging.getLogger(__name__)


def _dedup_value(item: Item, fields: Sequence[str] | None) -> Any:
    if fields:
        source = item.fields if item.fields is not None else item.row
        return [source.get(name) for name in fields]
    return item.example


def exact_key(item: Item, fields: Sequence[str] | None = None) -> bytes:
    """Digest of the normalised example, or of the normalised values of ``fields``."""
    if fields:
        return digest(normalized(_dedup_value(item, fields)))
    return item.content_key or content_key(item.example)


def dedup_text(item: Item, fields: Sequence[str] | None = None) -> str:
    if fields:
        return normalize_text(" ".join(str(v) for v in _dedup_value(item, fields) if v is not None))
    return normalize_text(" ".join(example_texts(item.example)))


def normalized_text_of(example: dict) -> str:
    """``dedup_text`` of an example already ``normalized``: its texts, normalised, joined."""
    return " ".join(text for text in example_texts(example) if text)


# --- Keys in pass 1, decisions from sorted arrays ------------------------------------------
#
# Pass 1 (transforms/units.py) writes, for every kept record, fixed-width key records into its
# read unit's temporary file, one section per partition. Deciding reads one partition of every
# unit, sorts it with numpy and names the duplicates: only digests and (file, row) pairs move,
# never records, and nothing is held by a shuffle. The decisions (a few dozen bytes per
# duplicate) go to the step that writes the final files, which leaves the duplicates out.

PARTITIONS = 8
EXACT_RECORD = np.dtype([("k0", "<u8"), ("k1", "<u8"), ("file", "<u4"), ("row", "<u8"), ("split", "u1")])
# A band record's slot: where its record's signature is in its unit's signature section.
NEAR_RECORD = np.dtype([("band", "<u8"), ("file", "<u4"), ("row", "<u8"), ("slot", "<u4"), ("split", "u1")])
SIGNATURE_SECTION = "keys/signatures"
SPLIT_CODES = {TRAIN: 0, VALIDATION: 1}
SPLIT_NAMES = {code: name for name, code in SPLIT_CODES.items()}
ROW_BITS = 40  # (file, row) as one integer: 2**24 files of 2**40 rows


def exact_section(partition: int) -> str:
    return f"keys/exact/{partition}"


def near_section(partition: int) -> str:
    return f"keys/near/{partition}"


def exact_records(items: list[Item], file_index: int) -> dict[int, bytes]:
    """Key records of items that have a ``dedup_key``, by partition."""
    keyed = [item for item in items if item.dedup_key is not None]
    if not keyed:
        return {}
    records = np.zeros(len(keyed), dtype=EXACT_RECORD)
    keys = np.frombuffer(b"".join(item.dedup_key for item in keyed), dtype="<u8").reshape(-1, 2)
    records["k0"], records["k1"] = keys[:, 0], keys[:, 1]
    records["file"] = file_index
    records["row"] = [item.source.row for item in keyed]
    records["split"] = [SPLIT_CODES[item.split] for item in keyed]
    return _by_partition(records, records["k0"])


def signature_record(num_perm: int) -> np.dtype:
    return np.dtype([("row", "<u8"), ("signature", "<u4", (num_perm,))])


def near_records(items: list[Item], file_index: int, first_slot: int = 0) -> tuple[dict[int, bytes], bytes]:
    """Band records (one per band) of items that have ``bands``, by partition, and their
    signature records, the first at ``first_slot`` of the unit's signature section."""
    checked = [item for item in items if item.bands and item.signature is not None]
    if not checked:
        return {}, b""
    signatures = np.zeros(len(checked), dtype=signature_record(len(checked[0].signature)))
    signatures["row"] = [item.source.row for item in checked]
    signatures["signature"] = np.stack([item.signature for item in checked])
    rows = [(band, item.source.row, first_slot + slot, SPLIT_CODES[item.split])
            for slot, item in enumerate(checked) for band in item.bands]
    records = np.zeros(len(rows), dtype=NEAR_RECORD)
    bands, row_numbers, slots, splits = zip(*rows)
    records["band"], records["row"], records["slot"], records["split"] = bands, row_numbers, slots, splits
    records["file"] = file_index
    return _by_partition(records, records["band"]), signatures.tobytes()


def _by_partition(records: np.ndarray, hashed: np.ndarray) -> dict[int, bytes]:
    partitions = (hashed % np.uint64(PARTITIONS)).astype(np.int64)
    return {int(p): records[partitions == p].tobytes() for p in np.unique(partitions)}


@dataclass(frozen=True)
class Decision:
    """(file, row) leaves as ``reason``, a duplicate of (survivor_file, survivor_row): one row of
    a block of decisions, as read back (``decisions_in``)."""

    file: int
    row: int
    reason: str
    survivor_file: int
    survivor_row: int
    split: str


# Decisions never cross the pipeline one element each: the steps that decide write blocks —
# numpy arrays of these records, sorted by (file, row) — to files under the run's temporary
# directory, and only the files' paths travel. Web-scraped or synthetic data can have hundreds
# of thousands of duplicates: as elements, each cost a couple of kilobytes in every process that
# held the side input; as blocks held by the runner, still hundreds of megabytes in the
# launcher for a million rows; as files, 26 bytes a duplicate on disk.
DECISION_RECORD = np.dtype([("file", "<u4"), ("row", "<u8"), ("survivor_file", "<u4"), ("survivor_row", "<u8"),
                            ("split", "u1"), ("reason", "u1")])
REASON_CODES = {DUPLICATE_EXACT: 0, DUPLICATE_NEAR: 1, DOWNSAMPLED: 2}
# The survivor of a decision that has none (downsampled: transforms/mixing.py).
NO_SURVIVOR = np.uint32(0xFFFFFFFF)
REASON_NAMES = {code: name for name, code in REASON_CODES.items()}


def decision_block(decisions: Iterable[Decision]) -> np.ndarray:
    """``decisions`` as one block."""
    rows = [(d.file, d.row, d.survivor_file, d.survivor_row, SPLIT_CODES[d.split], REASON_CODES[d.reason])
            for d in decisions]
    return sorted_by_source(np.array(rows, dtype=DECISION_RECORD))


def sorted_by_source(block: np.ndarray) -> np.ndarray:
    return block[np.lexsort((block["row"], block["file"]))]


def all_decisions(blocks: Iterable[np.ndarray], reason: str | None = None) -> np.ndarray:
    """Every block's decisions (of ``reason`` only, if given) in one array sorted by (file, row)."""
    blocks = [block for block in blocks if len(block)]
    merged = sorted_by_source(np.concatenate(blocks)) if blocks else np.zeros(0, dtype=DECISION_RECORD)
    return merged if reason is None else merged[merged["reason"] == REASON_CODES[reason]]


def write_block(path: str, block: np.ndarray) -> str:
    """``block`` as a .npy file: its header names the record type, and an empty block is not an
    empty object (object stores refuse some zero-byte uploads)."""
    buffer = io.BytesIO()
    np.save(buffer, block, allow_pickle=False)
    write_bytes(path, buffer.getvalue())
    return path


def read_block(path: str, dtype: np.dtype = None) -> np.ndarray:
    with FileSystems.open(path) as f:
        block = np.load(io.BytesIO(f.read()), allow_pickle=False)
    expected = DECISION_RECORD if dtype is None else dtype
    if block.dtype != expected:
        raise ValueError(f"{path} holds {block.dtype} records, not {expected}")
    return block


def read_decisions(paths: Iterable[str]) -> list[np.ndarray]:
    """The blocks of decisions the deciding steps wrote at ``paths``."""
    return [read_block(path) for path in sorted(paths)]


def decisions_in(block: np.ndarray) -> list[Decision]:
    """The block's decisions as values, to read or compare."""
    return [Decision(int(d["file"]), int(d["row"]), REASON_NAMES[int(d["reason"])], int(d["survivor_file"]),
                     int(d["survivor_row"]), SPLIT_NAMES[int(d["split"])]) for d in block]


def reason_counts(block: np.ndarray) -> dict[str, int]:
    codes, counts = np.unique(block["reason"], return_counts=True)
    return {REASON_NAMES[int(code)]: int(count) for code, count in zip(codes, counts)}


def _groups(sorted_keys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """For records sorted by ``sorted_keys``: whether each starts a group of equal keys, and the
    index of its group's first record."""
    if len(sorted_keys[0]) == 0:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
    same = np.ones(len(sorted_keys[0]) - 1, dtype=bool)
    for key in sorted_keys:
        same &= key[1:] == key[:-1]
    starts = np.concatenate(([True], ~same))
    first = np.flatnonzero(starts)[np.cumsum(starts) - 1]
    return starts, first


def exact_decisions(records: np.ndarray) -> np.ndarray:
    """Every record whose key an earlier (lower file, then row) record has: a duplicate of the
    lowest one. A block."""
    records = records[np.lexsort((records["row"], records["file"], records["k1"], records["k0"]))]
    starts, first = _groups([records["k0"], records["k1"]])
    dropped = np.flatnonzero(~starts)
    block = np.zeros(len(dropped), dtype=DECISION_RECORD)
    block["file"], block["row"], block["split"] = records["file"][dropped], records["row"][dropped], records["split"][dropped]
    block["survivor_file"], block["survivor_row"] = records["file"][first[dropped]], records["row"][first[dropped]]
    block["reason"] = REASON_CODES[DUPLICATE_EXACT]
    return sorted_by_source(block)


def in_sorted(values: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """Whether each of ``values`` is in ``sorted_values`` (sorted): a binary search each. Unlike
    ``np.isin``, which sorts both arrays on every call, it costs little when called for many
    small arrays against one large one (every unit's keys against a run's duplicates)."""
    if not len(sorted_values):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[at] == values


def source_numbers(files: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return (files.astype(np.uint64) << np.uint64(ROW_BITS)) | rows.astype(np.uint64)


# Each candidate is verified against the lowest records of its band group, at most this many:
# a group of thousands (boilerplate) costs thousands of pairs, not millions.
GROUP_PAIRS = 2
# A candidate pair, as source numbers, with where their signatures are (see NEAR_RECORD).
CANDIDATE_PAIR = np.dtype([("number", "<u8"), ("lower", "<u8"), ("slot", "<u4"), ("lower_slot", "<u4"),
                           ("split", "u1")])
# A verified near-duplicate pair: ``number`` is a near duplicate of the lower record ``lower``.
NEAR_PAIR = np.dtype([("number", "<u8"), ("lower", "<u8"), ("split", "u1")])


def candidate_pairs(records: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """Every record sharing a band with a lower one, paired with each of the lowest
    ``GROUP_PAIRS`` records of that band's group, once per pair (a ``CANDIDATE_PAIR`` block,
    sorted); records in ``excluded`` (sorted source numbers: exact duplicates, already gone) take
    no part."""
    numbers = source_numbers(records["file"], records["row"])
    if len(excluded):
        keep = ~in_sorted(numbers, excluded)
        records, numbers = records[keep], numbers[keep]
    order = np.lexsort((numbers, records["band"]))
    records, numbers = records[order], numbers[order]
    starts, first = _groups([records["band"]])
    rank = np.arange(len(records)) - first
    parts = []
    for k in range(GROUP_PAIRS):
        members = np.flatnonzero(rank > k)
        lower = first[members] + k
        members, lower = members[numbers[members] != numbers[lower]], lower[numbers[members] != numbers[lower]]
        pairs = np.zeros(len(members), dtype=CANDIDATE_PAIR)
        pairs["number"], pairs["lower"] = numbers[members], numbers[lower]
        pairs["slot"], pairs["lower_slot"] = records["slot"][members], records["slot"][lower]
        pairs["split"] = records["split"][members]
        parts.append(pairs)
    return unique_pairs(np.concatenate(parts) if parts else np.zeros(0, dtype=CANDIDATE_PAIR))


def unique_pairs(pairs: np.ndarray) -> np.ndarray:
    """``pairs`` (records with ``number`` and ``lower``) sorted by them, each pair once: a pair
    that shares several bands is found in each."""
    pairs = pairs[np.lexsort((pairs["lower"], pairs["number"]))]
    if len(pairs):
        fresh = np.concatenate(([True], (pairs["number"][1:] != pairs["number"][:-1])
                                | (pairs["lower"][1:] != pairs["lower"][:-1])))
        pairs = pairs[fresh]
    return pairs


def pair_decisions(numbers: np.ndarray, survivors: np.ndarray, splits: np.ndarray, reason: str) -> np.ndarray:
    """A block of decisions: the records ``numbers`` leave as ``reason``, each a duplicate of the
    record of ``survivors`` beside it (source numbers)."""
    numbers, survivors = numbers.astype(np.uint64), survivors.astype(np.uint64)
    mask = np.uint64((1 << ROW_BITS) - 1)
    block = np.zeros(len(numbers), dtype=DECISION_RECORD)
    block["file"], block["row"] = numbers >> np.uint64(ROW_BITS), numbers & mask
    block["survivor_file"], block["survivor_row"] = survivors >> np.uint64(ROW_BITS), survivors & mask
    block["split"], block["reason"] = splits, REASON_CODES[reason]
    return sorted_by_source(block)


def slots_of(path: str, start: int, dtype: np.dtype, slots: np.ndarray) -> np.ndarray:
    """The ``dtype`` records at ``slots`` (their places, counting from byte ``start``) of the
    file at ``path``, in the order asked. A local file is mapped and indexed (only the pages
    holding them are read, and the mapping is gone on return); an object is read in runs."""
    local = local_path(path)
    if local is None:
        with FileSystems.open(path) as f:
            return read_slots(f, start, dtype, slots)
    if not len(slots):
        return np.zeros(0, dtype=dtype)
    mapped = np.memmap(local, dtype=np.uint8, mode="r")
    try:
        count = (len(mapped) - start) // dtype.itemsize
        records = np.ndarray((count,), dtype=dtype, buffer=mapped, offset=start)
        return records[slots.astype(np.intp)]  # a copy: nothing of the mapping outlives it
    finally:
        del mapped


def read_slots(f, start: int, dtype: np.dtype, slots: np.ndarray, gap: int = 16) -> np.ndarray:
    """The ``dtype`` records at ``slots`` (their places, counting from byte ``start`` of the open
    file ``f``), in the order asked: runs of wanted slots at most ``gap`` apart in one read each."""
    order = np.argsort(slots, kind="stable")
    wanted = slots[order].astype(np.int64)
    out = np.zeros(len(slots), dtype=dtype)
    for run in np.split(np.arange(len(wanted)), np.flatnonzero(np.diff(wanted) > gap) + 1):
        if not len(run):
            continue
        low, high = int(wanted[run[0]]), int(wanted[run[-1]]) + 1
        f.seek(start + low * dtype.itemsize)
        block = np.frombuffer(f.read((high - low) * dtype.itemsize), dtype=dtype)
        out[order[run]] = block[wanted[run] - low]
    return out


# Candidate pairs verified this many at a time: their signatures in memory, 512 bytes each.
VERIFY_PAIRS = 1 << 15


def verified_pairs(pairs: np.ndarray, signatures: Callable[[np.ndarray, np.ndarray], np.ndarray],
                   cutoff: float) -> np.ndarray:
    """The candidate pairs whose signatures agree on at least ``cutoff`` of their functions, as
    a ``NEAR_PAIR`` block. ``signatures(numbers, slots)`` gives the records' signatures, one row
    each, in order."""
    found = []
    for begin in range(0, len(pairs), VERIFY_PAIRS):
        chunk = pairs[begin : begin + VERIFY_PAIRS]
        numbers = np.concatenate((chunk["number"], chunk["lower"]))
        slots = np.concatenate((chunk["slot"], chunk["lower_slot"]))
        # Each record read once, however many pairs it is in.
        unique, first, inverse = np.unique(numbers, return_index=True, return_inverse=True)
        read = signatures(unique, slots[first])[inverse]
        similar = chunk[agreement(read[: len(chunk)], read[len(chunk) :]) >= cutoff]
        block = np.zeros(len(similar), dtype=NEAR_PAIR)
        block["number"], block["lower"], block["split"] = similar["number"], similar["lower"], similar["split"]
        found.append(block)
    return np.concatenate(found) if found else np.zeros(0, dtype=NEAR_PAIR)


def near_decisions(verified: Iterable[np.ndarray]) -> np.ndarray:
    """The partitions' verified pairs as one block of decisions. In (file, row) order, a record
    that is a near duplicate of a lower record still kept is dropped, as a duplicate of the
    lowest such record."""
    # A pair verified in several partitions (it shares bands in each) counts once.
    merged = unique_pairs(np.concatenate([np.zeros(0, dtype=NEAR_PAIR), *verified]))
    dropped: dict[int, tuple[int, int]] = {}
    # Records in order, each one's lower partners in order: a partner's fate is settled before
    # the record's (it is lower), so the first partner not dropped is the survivor. A slice at a
    # time: the whole array as Python ints would take tens of bytes a pair.
    for begin in range(0, len(merged), VERIFY_PAIRS):
        chunk = merged[begin : begin + VERIFY_PAIRS]
        for number, lower, split in zip(chunk["number"].tolist(), chunk["lower"].tolist(), chunk["split"].tolist()):
            if number not in dropped and lower not in dropped:
                dropped[number] = (lower, split)
    numbers = np.fromiter(dropped, dtype=np.uint64, count=len(dropped))
    survivors = np.array(list(dropped.values()), dtype=np.uint64).reshape(-1, 2)
    return pair_decisions(numbers, survivors[:, 0], survivors[:, 1], DUPLICATE_NEAR)


class UnitSignatures:
    """Reads records' signatures from the units' signature sections by (source number, slot):
    only the records asked for (``slots_of``), each unit's file opened once per call."""

    def __init__(self, units: list, num_perm: int):
        self._dtype = signature_record(num_perm)
        held = sorted((unit.file, unit.first_row, unit.path, unit.sections[SIGNATURE_SECTION].start)
                      for unit in units if SIGNATURE_SECTION in unit.sections)
        self._starts = source_numbers(np.array([h[0] for h in held], dtype=np.uint64),
                                      np.array([h[1] for h in held], dtype=np.uint64))
        self._files = [(path, start) for _, _, path, start in held]

    def __call__(self, numbers: np.ndarray, slots: np.ndarray) -> np.ndarray:
        out = np.zeros(len(numbers), dtype=self._dtype)
        units = np.searchsorted(self._starts, numbers, side="right") - 1
        order = np.argsort(units, kind="stable")
        bounds = np.flatnonzero(np.diff(units[order])) + 1
        for mine in np.split(order, bounds) if len(order) else ():
            path, start = self._files[int(units[mine[0]])]
            out[mine] = slots_of(path, start, self._dtype, slots[mine])
        mask = np.uint64((1 << ROW_BITS) - 1)
        if not np.array_equal(out["row"], numbers & mask):
            raise ValueError("a unit's signature section does not match its band records")
        return out["signature"]


def read_section(result, name: str, dtype: np.dtype) -> np.ndarray:
    section = result.sections.get(name)
    if section is None or section.end == section.start:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(read_bytes(result.path, section.start, section.end), dtype=dtype)


def sharing(read_parts: Callable[[], Iterable[np.ndarray]], field: str, dtype: np.dtype) -> np.ndarray:
    """The records whose ``field`` another record has too, from the parts ``read_parts()`` gives
    (it is called twice). Duplicates are few: the first reading keeps only the 8-byte ``field``
    column, sorted; the second keeps the records whose value repeats. A partition's memory is
    about 10 bytes a record, where sorting whole records (and their sort order) took 15 times that."""
    columns = [part[field].copy() for part in read_parts()]
    if not columns:
        return np.zeros(0, dtype=dtype)
    values = np.concatenate(columns)
    del columns
    values.sort()
    repeated = np.unique(values[1:][values[1:] == values[:-1]])
    del values
    if not len(repeated):
        return np.zeros(0, dtype=dtype)

    def members(part: np.ndarray) -> np.ndarray:
        at = np.minimum(np.searchsorted(repeated, part[field]), len(repeated) - 1)
        return part[repeated[at] == part[field]]

    return np.concatenate([members(part) for part in read_parts()] or [np.zeros(0, dtype=dtype)])


class _ExactPartitionFn(beam.DoFn):
    def __init__(self, temp_dir: str, against=None):
        self._temp_dir = temp_dir
        self._against = against  # dedup_index.Against, or None

    def process(self, partition: int, units: list):
        check = self._against.exact_checker(partition) if self._against is not None else None
        blocks, held = [], []  # held: per unit, which records an earlier run holds (1 byte each)
        if check is not None:
            for unit in units:
                block, found = check(read_section(unit, exact_section(partition), EXACT_RECORD))
                blocks.append(block)
                held.append(found)

        def parts():
            for index, unit in enumerate(units):
                part = read_section(unit, exact_section(partition), EXACT_RECORD)
                # Records an earlier run holds are its duplicates, and take no part here.
                yield part if check is None else part[~held[index]]

        block = all_decisions([exact_decisions(sharing(parts, "k0", EXACT_RECORD)), *blocks])
        if len(block):  # no file for no duplicates: on an object store every file is requests
            yield write_block(join(self._temp_dir, DEDUP_DIR, f"exact-{partition}.npy"), block)


class _NearPartitionFn(beam.DoFn):
    def __init__(self, temp_dir: str, near: NearSpec):
        self._temp_dir = temp_dir
        self._near = near

    def process(self, partition: int, units: list, exact: list):
        gone = all_decisions(read_decisions(exact))
        excluded = np.sort(source_numbers(gone["file"], gone["row"]))
        del gone

        def parts():
            return (read_section(unit, near_section(partition), NEAR_RECORD) for unit in units)

        pairs = candidate_pairs(sharing(parts, "band", NEAR_RECORD), excluded)
        cutoff = near_plan(self._near.threshold, self._near.num_perm).cutoff
        verified = verified_pairs(pairs, UnitSignatures(units, self._near.num_perm), cutoff)
        if len(verified):  # as the exact partitions: no file for nothing
            yield write_block(join(self._temp_dir, DEDUP_DIR, f"near-{partition}.npy"), verified)


def _near_decisions_file(verified: list[str], temp_dir: str) -> Iterable[str]:
    block = near_decisions(read_block(path, NEAR_PAIR) for path in sorted(verified))
    if len(block):
        yield write_block(join(temp_dir, DEDUP_DIR, "near.npy"), block)


class DecideDuplicates(beam.PTransform):
    """Read units' key sections in, the paths of blocks of decisions (``DECISION_RECORD``
    arrays, written under ``temp_dir``: ``read_decisions``) out: exact duplicates, a block per
    partition, then near duplicates among the records exact dedup kept, in one block. Each
    survivor is the lowest (file, row) of its set. ``spec``: the recipe's ``dedup`` section
    (which keys pass 1 wrote)."""

    def __init__(self, *, spec: DedupSpec, temp_dir: str, partitions: int = PARTITIONS, against=None):
        super().__init__()
        self._exact = spec.exact
        self._near = spec.near
        self._temp_dir = temp_dir
        self._partitions = partitions
        self._against = against  # dedup_index.Against: earlier runs' indexes, or None

    def expand(self, units):
        pipeline = units.pipeline
        every_unit = beam.pvalue.AsList(units)
        exact = pipeline | "NoExactDecisions" >> beam.Create([])
        if self._exact:
            exact = (
                pipeline
                | "ExactPartitions" >> beam.Create(range(self._partitions))
                # Load-bearing: without it one worker decides every partition.
                | "SpreadExact" >> beam.Reshuffle()
                | "DecideExact" >> beam.ParDo(_ExactPartitionFn(self._temp_dir, self._against), every_unit)
            )
        if self._near is None:
            return exact
        gone = exact
        if self._against is not None:  # near duplicates of earlier runs' examples first
            against = self._against.near_decisions(pipeline, every_unit, beam.pvalue.AsList(exact), self._partitions)
            gone = (exact, against) | "GoneBeforeNear" >> beam.Flatten()
        near = (
            pipeline
            | "NearPartitions" >> beam.Create(range(self._partitions))
            | "SpreadNear" >> beam.Reshuffle()
            | "NearCandidates" >> beam.ParDo(_NearPartitionFn(self._temp_dir, self._near), every_unit,
                                             beam.pvalue.AsList(gone))
            # The partitions' verified pairs decide together: a record's fate depends on the lower ones'.
            | "LowestOriginal" >> beam.combiners.ToList()
            | "NearDecisions" >> beam.FlatMap(_near_decisions_file, self._temp_dir)
        )
        return (gone, near) | "AllDecisions" >> beam.Flatten()


class _DedupKeysFn(BatchDoFn):
    STAGE = "DedupKeys"

    def __init__(self, near: NearSpec | None, fields: tuple[str, ...] | None):
        super().__init__()
        self._near = near
        self._fields = fields
        self._hasher = MinHasher(num_perm=near.num_perm, shingle=near.shingle) if near else None
        self._plan = near_plan(near.threshold, near.num_perm) if near else None
        self._permutations = None
        self._prepared: dict[int, tuple] = {}
        self._unchecked = beam.metrics.Metrics.counter("DropNearDuplicates", "unchecked")

    def setup(self):
        if self._hasher is not None:
            self._permutations = self._hasher._permutations()

    def process(self, batch: list):
        # Near dedup: every record's text first, then the batch's signatures in one call (a
        # signature alone costs more in numpy calls than in arithmetic); the per-record pass
        # below finds them in _prepared.
        if self._near is not None:
            self._prepared = self._prepare(batch)
        try:
            yield from super().process(batch)
        finally:
            self._prepared = {}

    def _prepare(self, batch: list) -> dict[int, tuple]:
        """``id(item) -> (normalised example or None, band hashes or None, signature or None)``. An item whose
        example does not normalise is left out: ``handle`` meets the error again, as that
        record's rejection. One whose text or signature fails gets no bands: kept, unchecked."""
        prepared, texts, ready = {}, [], []
        for item in batch:
            try:
                example = normalized(item.example) if not self._fields else None
            except Exception:  # noqa: BLE001 - handle() normalises it again and rejects the record
                continue
            try:
                texts.append(dedup_text(item, self._fields) if self._fields else normalized_text_of(example))
            except Exception:  # noqa: BLE001 - the record stays, unchecked, rather than fail the run
                LOGGER.exception("near-duplicate text failed for %s; kept unchecked", item.source)
                prepared[id(item)] = (example, None, None)
                continue
            ready.append((item, example))
        bands, rows = self._plan.bands, self._plan.rows
        for (item, example), signature in zip(ready, self._signatures(texts)):
            hashes = None if signature is None else tuple(band_hashes(signature, bands, rows))
            prepared[id(item)] = (example, hashes, signature)
        return prepared

    def _signatures(self, texts: list[str]) -> list:
        """The texts' signatures in one call; if that fails, one text at a time (None for a text
        whose signature fails)."""
        try:
            return list(self._hasher.signatures(texts, self._permutations))
        except Exception:  # noqa: BLE001 - one at a time instead, each failure its own
            LOGGER.exception("near-duplicate signatures failed for a batch; computing them one by one")
        found = []
        for text in texts:
            try:
                found.append(self._hasher.signatures([text], self._permutations)[0])
            except Exception:  # noqa: BLE001 - the record stays, unchecked, rather than fail the run
                LOGGER.exception("near-duplicate signature failed; the record is kept unchecked")
                found.append(None)
        return found

    def handle(self, item: Item, emit) -> None:
        # Normalised once for both: the digest of the example and the text its shingles come from.
        example, bands, signature = self._prepared.get(id(item), (None, None, None))
        if example is None and not self._fields:
            example = normalized(item.example)  # an error here is this record's rejection
        # Always the digest, exact dedup or not: the run's dedup index holds it (dedup_index.py).
        key = exact_key(item, self._fields) if self._fields or item.content_key else digest(example)
        if self._near is not None and bands is None:
            self._unchecked.inc()
        item.dedup_key, item.bands, item.signature = key, bands, signature
        if not self._fields and key is not None:  # the digest of the example: the split reuses it
            item.content_key = key
        emit(KEPT, item)


class DedupKeys(BatchStage):
    """Compute each record's exact-dedup digest and near-dedup band hashes (``dedup_key``,
    ``bands``); the decision comes after every unit is read (``DecideDuplicates``)."""

    def __init__(self, *, spec: DedupSpec):
        near = spec.near
        if near is not None and (not 0.0 < near.threshold < 1.0 or near.shingle < 1 or near.num_perm < 2):
            raise ValueError("near-duplicate threshold must be in (0, 1), shingle at least 1 and num_perm at least 2")
        super().__init__(_DedupKeysFn(near, tuple(spec.fields) if spec.fields else None))
