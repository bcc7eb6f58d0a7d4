"""A run's dedup index, and deduplication against earlier runs' (``dedup.against``).

Every run that deduplicates writes ``dedup_index/`` beside its outputs: the digest of every
example it kept (``exact-<p>.npy``: ``EXACT_RECORD``s sorted by digest, partitioned as pass 1
partitions them), and when near dedup ran, every kept example's MinHash signature
(``signatures.bin``: ``reference_signature`` records in (file, row) order), with ``index.json``
naming the source files and the settings the keys were made with. About 30 bytes an example,
and 540 more with near dedup, where the examples themselves take kilobytes.

A later run with ``dedup.against`` reads only those indexes. Its examples whose digest an index
holds, or (near dedup on) whose signature is verified near one an index holds, are dropped as
duplicates of the earlier run's example (``duplicate_of`` names the earlier run's source row
and the index). The earlier runs' files are numbered after the run's own (``Reference.first_file``),
so that a decision names them like any survivor.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import apache_beam as beam
import numpy as np

from apache_beam.io.filesystems import FileSystems

from schemas.layout import DEDUP_INDEX_DIR
from schemas.recipe import DedupSpec, NearDedupSpec
from transforms.dedup import (
    CANDIDATE_PAIR,
    DECISION_RECORD,
    DUPLICATE_EXACT,
    DUPLICATE_NEAR,
    EXACT_RECORD,
    GROUP_PAIRS,
    NEAR_PAIR,
    NEAR_RECORD,
    PARTITIONS,
    ROW_BITS,
    SIGNATURE_SECTION,
    UnitSignatures,
    all_decisions,
    exact_section,
    in_sorted,
    near_section,
    pair_decisions,
    read_block,
    read_decisions,
    read_section,
    signature_record,
    slots_of,
    source_numbers,
    unique_pairs,
    verified_pairs,
    write_block,
)
from transforms.files import created_whole, join, write_bytes
from transforms.minhash import MinHasher, band_hashes, near_plan

INDEX_VERSION = 1
INDEX_FILE = "index.json"
SIGNATURES_FILE = "signatures.bin"
# Signatures are copied and banded this many at a time: memory stays flat in the index's size.
CHUNK_RECORDS = 1 << 14


def exact_file(partition: int) -> str:
    return f"exact-{partition}.npy"


def reference_signature(num_perm: int) -> np.dtype:
    return np.dtype([("file", "<u4"), ("row", "<u8"), ("signature", "<u4", (num_perm,))])


def _near_settings(near: NearDedupSpec) -> dict:
    # The seed is MinHasher's: signatures are comparable only under the same functions.
    return {"shingle": near.shingle, "num_perm": near.num_perm, "seed": MinHasher().seed}


# --- Writing the run's index ------------------------------------------------------------------


def _dropped_numbers(decisions: list[str]) -> np.ndarray:
    gone = all_decisions(read_decisions(decisions))
    return np.sort(source_numbers(gone["file"], gone["row"]))


def _kept(records: np.ndarray, dropped: np.ndarray, files: np.ndarray | None = None) -> np.ndarray:
    numbers = source_numbers(records["file"] if files is None else files, records["row"])
    return records[~in_sorted(numbers, dropped)] if len(dropped) else records


class _IndexExactFn(beam.DoFn):
    def __init__(self, index_dir: str):
        self._index_dir = index_dir

    def process(self, partition: int, units: list, decisions: list):
        dropped = _dropped_numbers(decisions)
        parts = [_kept(read_section(unit, exact_section(partition), EXACT_RECORD), dropped) for unit in units]
        records = np.concatenate([np.zeros(0, dtype=EXACT_RECORD), *parts])
        records = records[np.lexsort((records["row"], records["file"], records["k1"], records["k0"]))]
        if len(records):  # one entry per digest: the lowest example that has it
            first = np.concatenate(([True], (records["k0"][1:] != records["k0"][:-1]) | (records["k1"][1:] != records["k1"][:-1])))
            records = records[first]
        yield partition, int(len(records)), write_block(join(self._index_dir, exact_file(partition)), records)


class _IndexSignaturesFn(beam.DoFn):
    def __init__(self, index_dir: str, num_perm: int):
        self._index_dir = index_dir
        self._num_perm = num_perm

    def process(self, _, units: list, decisions: list):
        dropped = _dropped_numbers(decisions)
        held, out_type = signature_record(self._num_perm), reference_signature(self._num_perm)
        written = 0
        path = join(self._index_dir, SIGNATURES_FILE)
        with created_whole(path) as out:
            for unit in sorted(units, key=lambda u: u.key):
                section = unit.sections.get(SIGNATURE_SECTION)
                if section is None:
                    continue
                with FileSystems.open(unit.path) as f:
                    f.seek(section.start)
                    left = section.records
                    while left:
                        count = min(left, CHUNK_RECORDS)
                        chunk = np.frombuffer(f.read(count * held.itemsize), dtype=held)
                        left -= count
                        copied = np.zeros(len(chunk), dtype=out_type)
                        copied["file"], copied["row"], copied["signature"] = unit.file, chunk["row"], chunk["signature"]
                        copied = _kept(copied, dropped)
                        out.write(copied.tobytes())
                        written += len(copied)
        yield written, path


def _write_meta(_, exact: list, signatures: list, index_dir: str, files: Sequence[str], spec: DedupSpec) -> Iterable[str]:
    meta = {
        "version": INDEX_VERSION,
        "files": list(files),
        "fields": spec.fields,
        "partitions": PARTITIONS,
        "examples": sum(count for _, count, _ in exact),
        "near": ({**_near_settings(spec.near), "signatures": sum(count for count, _ in signatures)}
                 if spec.near is not None else None),
    }
    path = join(index_dir, INDEX_FILE)
    write_bytes(path, json.dumps(meta, indent=1).encode() + b"\n")
    yield from (path for _, _, path in exact)
    yield from (path for _, path in signatures)
    yield path


class WriteDedupIndex(beam.PTransform):
    """Units' layouts in (their key sections), with the paths of the run's decisions (``decisions``,
    a PCollection): the kept examples' digests and signatures written to ``<output>/dedup_index/``;
    out, the paths written (``index.json`` last)."""

    def __init__(self, *, spec: DedupSpec, output_dir: str, files: Sequence[str], decisions):
        super().__init__()
        self._spec = spec
        self._index_dir = join(output_dir, DEDUP_INDEX_DIR)
        self._files = tuple(files)
        self._decisions = decisions

    def expand(self, units):
        pipeline = units.pipeline
        every_unit, decisions = beam.pvalue.AsList(units), beam.pvalue.AsList(self._decisions)
        exact = (
            pipeline
            | "IndexPartitions" >> beam.Create(range(PARTITIONS))
            # Load-bearing: without it one worker writes every partition.
            | "SpreadIndex" >> beam.Reshuffle()
            | "IndexDigests" >> beam.ParDo(_IndexExactFn(self._index_dir), every_unit, decisions)
        )
        if self._spec.near is not None:
            signatures = (pipeline | "StartSignatures" >> beam.Create([None])
                          | "IndexSignatures" >> beam.ParDo(_IndexSignaturesFn(self._index_dir, self._spec.near.num_perm),
                                                            every_unit, decisions))
        else:
            signatures = pipeline | "NoSignatures" >> beam.Create([])
        return (
            pipeline
            | "StartMeta" >> beam.Create([None])
            | "IndexMeta" >> beam.FlatMap(_write_meta, beam.pvalue.AsList(exact), beam.pvalue.AsList(signatures),
                                          self._index_dir, self._files, self._spec)
        )


# --- Reading earlier runs' indexes ------------------------------------------------------------


class ReferenceError(ValueError):
    """An earlier run's index cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Reference:
    """An earlier run's dedup index, as this run uses it."""

    path: str  # the index directory
    files: tuple[str, ...]
    first_file: int  # the number of its first file among the run's (after the run's own)
    signatures: int  # how many (0: near dedup did not run there)
    num_perm: int | None


def index_directory(path: str) -> str:
    """An earlier output directory or its ``dedup_index`` directory: the index directory."""
    path = path.rstrip("/")
    return path if path.endswith(DEDUP_INDEX_DIR) else join(path, DEDUP_INDEX_DIR)


def open_references(paths: Sequence[str], spec: DedupSpec, run_files: int) -> list[Reference]:
    """The indexes at ``paths`` checked against this run's dedup settings; their files are
    numbered from ``run_files`` on. ``ReferenceError`` names what does not fit."""
    references, first = [], run_files
    for given in paths:
        directory = index_directory(given)
        meta_path = join(directory, INDEX_FILE)
        try:
            with FileSystems.open(meta_path) as f:
                meta = json.loads(f.read())
        except Exception as error:  # noqa: BLE001 - missing, unreadable or not JSON: one message
            raise ReferenceError(f"dedup.against: {given} has no readable dedup index ({meta_path}: "
                                 f"{type(error).__name__}); give the output directory of an ftprep run that "
                                 "deduplicated (runs with dedup write dedup_index/)") from None
        if meta.get("version") != INDEX_VERSION:
            raise ReferenceError(f"dedup.against: {meta_path} is index version {meta.get('version')}, this ftprep "
                                 f"reads version {INDEX_VERSION}; run the earlier data through this version once")
        if meta.get("fields") != spec.fields or meta.get("partitions") != PARTITIONS:
            raise ReferenceError(f"dedup.against: {given} compared {'fields ' + ', '.join(meta['fields']) if meta.get('fields') else 'whole examples'}"
                                 f", this run compares {'fields ' + ', '.join(spec.fields) if spec.fields else 'whole examples'}: "
                                 "the digests cannot match; set dedup.fields alike")
        near = meta.get("near")
        if spec.near is not None:
            wanted = _near_settings(spec.near)
            if near is None:
                raise ReferenceError(f"dedup.against: {given} ran without near dedup, so its index has no signatures "
                                     "to compare near duplicates with; run it again with dedup.near, or drop "
                                     "dedup.near here")
            if {key: near.get(key) for key in wanted} != wanted:
                raise ReferenceError(f"dedup.against: {given} made signatures with shingle {near.get('shingle')}, "
                                     f"num_perm {near.get('num_perm')}; this run uses shingle {wanted['shingle']}, "
                                     f"num_perm {wanted['num_perm']}: set dedup.near alike")
        files = tuple(meta["files"])
        references.append(Reference(directory, files, first, int(near["signatures"]) if near and spec.near else 0,
                                    int(near["num_perm"]) if near and spec.near else None))
        first += len(files)
    return references


def reference_files(references: Sequence[Reference]) -> tuple[str, ...]:
    return tuple(name for reference in references for name in reference.files)


def reference_of(references: Sequence[Reference], file: int) -> Reference | None:
    for reference in references:
        if reference.first_file <= file < reference.first_file + len(reference.files):
            return reference
    return None


def exact_reference_keys(references: Sequence[Reference], partition: int) -> np.ndarray:
    """Every reference's digests of ``partition``, their files renumbered, sorted by digest."""
    parts = []
    for reference in references:
        keys = read_block(join(reference.path, exact_file(partition)), EXACT_RECORD).copy()
        keys["file"] += np.uint32(reference.first_file)
        parts.append(keys)
    keys = np.concatenate([np.zeros(0, dtype=EXACT_RECORD), *parts])
    return keys[np.lexsort((keys["row"], keys["file"], keys["k1"], keys["k0"]))]


def exact_against(records: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``records`` (this run's) whose digest ``keys`` (a reference's, sorted) holds: their
    decisions (duplicates of the lowest reference example with the digest), and a mask of them."""
    if not len(keys) or not len(records):
        return np.zeros(0, dtype=DECISION_RECORD), np.zeros(len(records), dtype=bool)
    at = np.minimum(np.searchsorted(keys["k0"], records["k0"]), len(keys) - 1)
    # The first entry with the record's k0; equal k0 with another k1 (2**-64) is no match.
    found = (keys["k0"][at] == records["k0"]) & (keys["k1"][at] == records["k1"])
    hits, survivors = records[found], keys[at[found]]
    return pair_decisions(source_numbers(hits["file"], hits["row"]), source_numbers(survivors["file"], survivors["row"]),
                          hits["split"], DUPLICATE_EXACT), found


class ReferenceSignatures:
    """Reads reference examples' signatures by (number, slot): the slot is the record's place
    in its index's ``signatures.bin``; adjacent ones in one read."""

    def __init__(self, references: Sequence[Reference], num_perm: int):
        self._references = [r for r in references if r.signatures]
        self._dtype = reference_signature(num_perm)

    def __call__(self, numbers: np.ndarray, slots: np.ndarray) -> np.ndarray:
        out = np.zeros(len(numbers), dtype=self._dtype)
        files = (numbers >> np.uint64(ROW_BITS)).astype(np.int64)
        for reference in self._references:
            mine = np.flatnonzero((files >= reference.first_file) & (files < reference.first_file + len(reference.files)))
            if not len(mine):
                continue
            found = slots_of(join(reference.path, SIGNATURES_FILE), 0, self._dtype, slots[mine])
            found["file"] += np.uint32(reference.first_file)
            out[mine] = found
        if not np.array_equal(source_numbers(out["file"], out["row"]), numbers):
            raise ValueError("a reference's signatures.bin does not match its slots")
        return out["signature"]


def reference_band_chunks(references: Sequence[Reference], near: NearDedupSpec) -> Iterator[np.ndarray]:
    """``NEAR_RECORD``s of every reference example's bands (banded with this run's plan), a
    chunk of examples at a time; ``slot``: the example's place in its index's ``signatures.bin``."""
    plan = near_plan(near.threshold, near.num_perm)
    dtype = reference_signature(near.num_perm)
    for reference in references:
        if not reference.signatures:
            continue
        with FileSystems.open(join(reference.path, SIGNATURES_FILE)) as f:
            for first in range(0, reference.signatures, CHUNK_RECORDS):
                count = min(CHUNK_RECORDS, reference.signatures - first)
                chunk = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
                bands = np.array([band_hashes(s, plan.bands, plan.rows) for s in chunk["signature"]],
                                 dtype=np.uint64).reshape(-1)
                which = np.repeat(np.arange(len(chunk)), plan.bands)
                records = np.zeros(len(bands), dtype=NEAR_RECORD)
                records["band"] = bands
                records["file"] = chunk["file"][which] + np.uint32(reference.first_file)
                records["row"], records["slot"] = chunk["row"][which], first + which
                yield records


BANDS_HEADER = b"FTPBAND1"  # before a partition's reference band records


def reference_bands_file(dedup_dir: str, partition: int) -> str:
    return join(dedup_dir, f"reference-bands-{partition}.bin")


def near_against_pairs(records: np.ndarray, reference: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """Candidate pairs of this run's band records with the reference's that share a band: each
    record with the lowest ``GROUP_PAIRS`` reference examples of the band (``CANDIDATE_PAIR``,
    ``lower`` the reference example)."""
    numbers = source_numbers(records["file"], records["row"])
    if len(excluded):
        keep = ~in_sorted(numbers, excluded)
        records, numbers = records[keep], numbers[keep]
    theirs = source_numbers(reference["file"], reference["row"])
    order = np.lexsort((theirs, reference["band"]))
    reference, theirs = reference[order], theirs[order]
    at = np.searchsorted(reference["band"], records["band"])
    parts = []
    for k in range(GROUP_PAIRS):
        index = at + k
        ok = index < len(reference)
        ok[ok] &= reference["band"][index[ok]] == records["band"][ok]
        pairs = np.zeros(int(ok.sum()), dtype=CANDIDATE_PAIR)
        pairs["number"], pairs["slot"], pairs["split"] = numbers[ok], records["slot"][ok], records["split"][ok]
        pairs["lower"], pairs["lower_slot"] = theirs[index[ok]], reference["slot"][index[ok]]
        parts.append(pairs)
    return unique_pairs(np.concatenate(parts) if parts else np.zeros(0, dtype=CANDIDATE_PAIR))


def lowest_survivors(verified: Iterable[np.ndarray]) -> np.ndarray:
    """Verified pairs against references as decisions: each record a duplicate of the lowest
    reference example it is near (references are kept whole: no order to follow)."""
    merged = unique_pairs(np.concatenate([np.zeros(0, dtype=NEAR_PAIR), *verified]))
    if len(merged):  # sorted by (number, lower): each record's first pair names its lowest
        merged = merged[np.concatenate(([True], merged["number"][1:] != merged["number"][:-1]))]
    return pair_decisions(merged["number"], merged["lower"], merged["split"], DUPLICATE_NEAR)


class _Either:
    """Signatures of this run's records from its units, of the references' from their indexes."""

    def __init__(self, units: list, references: Sequence[Reference], num_perm: int, run_files: int):
        self._run = UnitSignatures(units, num_perm)
        self._references = ReferenceSignatures(references, num_perm)
        self._first = np.uint64(run_files) << np.uint64(ROW_BITS)

    def __call__(self, numbers: np.ndarray, slots: np.ndarray) -> np.ndarray:
        theirs = numbers >= self._first
        parts = {}
        if (~theirs).any():
            parts["run"] = self._run(numbers[~theirs], slots[~theirs])
        if theirs.any():
            parts["theirs"] = self._references(numbers[theirs], slots[theirs])
        width = next(iter(parts.values())).shape[1] if parts else 0
        out = np.zeros((len(numbers), width), dtype=np.uint32)
        if "run" in parts:
            out[~theirs] = parts["run"]
        if "theirs" in parts:
            out[theirs] = parts["theirs"]
        return out


class _NearAgainstFn(beam.DoFn):
    """One partition: this run's band records against the references', verified; the pairs
    found written as a ``NEAR_PAIR`` block."""

    def __init__(self, against: "Against"):
        self._against = against

    def process(self, partition: int, units: list, exact: list, banded: list):
        against, near = self._against, self._against.near
        excluded = _dropped_numbers(exact)
        ours = np.concatenate([np.zeros(0, dtype=NEAR_RECORD),
                               *(read_section(unit, near_section(partition), NEAR_RECORD) for unit in units)])
        with FileSystems.open(banded[0][partition]) as f:
            theirs = np.frombuffer(f.read()[len(BANDS_HEADER):], dtype=NEAR_RECORD)
        pairs = near_against_pairs(ours, theirs, excluded)
        signatures = _Either(units, against.references, near.num_perm, against.run_files)
        verified = verified_pairs(pairs, signatures, near_plan(near.threshold, near.num_perm).cutoff)
        if len(verified):
            yield write_block(join(against.dedup_dir, f"against-{partition}.npy"), verified)


def _band_references(_, against: "Against", partitions: int) -> Iterable[list[str]]:
    """Every reference example banded once, its band records written to one file per partition
    as they are made (the partitions' steps read theirs): the list of the files."""
    paths = [reference_bands_file(against.dedup_dir, p) for p in range(partitions)]
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context(created_whole(path)) for path in paths]
        for out in outs:  # never an empty object: object stores refuse some zero-byte uploads
            out.write(BANDS_HEADER)
        for records in reference_band_chunks(against.references, against.near):
            partition_of = (records["band"] % np.uint64(partitions)).astype(np.int64)
            for partition, out in enumerate(outs):
                out.write(records[partition_of == partition].tobytes())
    yield paths


def _near_against_file(verified: list[str], dedup_dir: str) -> Iterable[str]:
    block = lowest_survivors(read_block(path, NEAR_PAIR) for path in sorted(verified))
    if len(block):
        yield write_block(join(dedup_dir, "against.npy"), block)


@dataclass(frozen=True)
class Against:
    """Deduplication against earlier runs' indexes, as ``DecideDuplicates`` asks for it:
    ``exact_checker`` for its exact partitions, ``near_decisions`` for a step before its near
    partitions. ``dedup_dir``: where the blocks go (the run's temporary dedup directory)."""

    references: tuple[Reference, ...]
    run_files: int
    near: NearDedupSpec | None
    dedup_dir: str

    def exact_checker(self, partition: int):
        """``part -> (decisions, found)`` for this run's exact records of ``partition``."""
        keys = exact_reference_keys(self.references, partition)
        return lambda part: exact_against(part, keys)

    def near_decisions(self, pipeline, units, exact, partitions: int = PARTITIONS):
        """The step that finds this run's near duplicates of reference examples (``units``,
        ``exact``: side inputs of the units and the exact decisions' paths); its output, the
        path of one block of decisions (or none)."""
        banded = (pipeline | "StartReferenceBands" >> beam.Create([None])
                  | "BandReferences" >> beam.FlatMap(_band_references, self, partitions))
        return (
            pipeline
            | "AgainstPartitions" >> beam.Create(range(partitions))
            # Load-bearing: without it one worker compares every partition.
            | "SpreadAgainst" >> beam.Reshuffle()
            | "NearAgainst" >> beam.ParDo(_NearAgainstFn(self), units, exact, beam.pvalue.AsList(banded))
            | "AgainstBlocks" >> beam.combiners.ToList()
            | "AgainstDecisions" >> beam.FlatMap(_near_against_file, self.dedup_dir)
        )
