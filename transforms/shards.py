"""Pass 2: the final files, cut from the units' sections in input order.

``plan_shards`` decides, from the units' results and the dedup decisions alone, every file each
output gets and which pieces of which units go into it, in (file, row) order: the same plan,
hence the same bytes, for every run, runner and number of workers. ``WriteShards`` writes each
planned shard (one element each, spread over the workers): mostly byte copies of pass 1's
sections, the duplicates left out and written to dropped/ (and taken back from the statistics
pass 1 counted them in). No shard is ever empty.

Outputs: ``train``, ``validation`` (the examples), ``rejected``, ``dropped/<reason>`` (filters:
as pass 1 wrote them; duplicates: made here from the kept sections and the decisions),
``provenance/<split>`` (with ``output.provenance``: the source of every kept example).
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import apache_beam as beam
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from schemas.layout import DATASET_PROVENANCE_DIR, PACK_DIR, PROVENANCE_DIR
from schemas.records import DECIDED_REASONS, DROPPED_DIR, REJECTED_DIR, SPLITS, TokenCount
from transforms.dedup import NO_SURVIVOR, SPLIT_NAMES, all_decisions, in_sorted, read_decisions, source_numbers
from transforms.files import created_whole, join, read_bytes, write_bytes
from transforms.packing import pack_order, packed_table, packed_type
from transforms.row_types import arrow_schema, has_json, merge_all, table
from transforms.stats import KeptExample, StatsAccumulator
from transforms.units import (
    Section, UnitResult, dropped_section, index_section, lengths_section, rows_section, sizes_section,
)

# Without output.num_shards, a shard holds about this much (cut between units).
DEFAULT_SHARD_BYTES = 64 << 20
SHARD_NAME = "part-{index:05d}-of-{count:05d}.{extension}"
COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class Piece:
    """A run of consecutive records of one unit's output: their lines (``section``) and, for the
    examples, their index lines (``index``), as byte ranges of the unit's file. ``count``
    records of it are written: for the examples and their provenance, those that are not
    duplicates; for a duplicates output, the duplicates."""

    path: str
    file: int
    section: Section | None
    index: Section | None
    count: int
    rows: Section | None = None  # the records' rows (uint64 each), for the examples and their sources


@dataclass(frozen=True)
class ShardSpec:
    output: str  # "train", "rejected", "dropped/filter_echo", "provenance/train", ...
    index: int
    count: int
    pieces: tuple[Piece, ...]
    # The examples as Parquet of this type (``transforms/row_types.py``), the run's one; None: JSONL.
    row_type: Any = None
    # Packed rows (a split's, or their provenance): its part of the packing plan; no pieces then.
    packed: "PackedPart | None" = None

    @property
    def name(self) -> str:
        extension = "jsonl" if self.row_type is None else "parquet"
        return f"{self.output}/{SHARD_NAME.format(index=self.index, count=self.count, extension=extension)}"


# The packing plan's record for one example, in packed order: where its line is in pass 1's
# files, and its source row (the unit gives the file).
PLAN_RECORD = np.dtype([("unit", "<u4"), ("size", "<u4"), ("start", "<u8"), ("row", "<u8")])


@dataclass(frozen=True)
class PackedPart:
    """A shard of packed rows: its part of its split's packing plan (files ``PlanShards`` wrote)."""

    plan: str  # per example, in packed order: a PLAN_RECORD
    per_row: str  # per packed row: how many examples it takes (uint32)
    paths: tuple[str, ...]  # the unit files the plan's records point into
    files: tuple[int, ...]  # each unit's source file (index into the run's files)
    rows: tuple[int, int]  # the shard's packed rows [first, end) of the split
    examples: tuple[int, int]  # their examples [first, end) in the plan
    examples_type: Any = None  # the examples' row type, as pass 1 wrote them (before packing)

    def load(self) -> "PackedRows":
        first, end = self.examples
        records = np.frombuffer(read_bytes(self.plan, first * PLAN_RECORD.itemsize, end * PLAN_RECORD.itemsize),
                                dtype=PLAN_RECORD)
        per_row = np.frombuffer(read_bytes(self.per_row, self.rows[0] * 4, self.rows[1] * 4), dtype=np.uint32)
        return PackedRows(self.paths, records, per_row)


@dataclass(frozen=True)
class PackedRows:
    """Packed rows being written: their examples' plan records and how many each row takes."""

    paths: tuple[str, ...]
    records: np.ndarray  # PLAN_RECORD per example, in packed order
    per_row: np.ndarray  # uint32 per packed row

    def part(self, first: int, end: int) -> "PackedRows":
        """Packed rows [first, end) of these."""
        bounds = np.concatenate(([0], np.cumsum(self.per_row, dtype=np.int64)))
        return PackedRows(self.paths, self.records[int(bounds[first]):int(bounds[end])], self.per_row[first:end])

    def row_bytes(self) -> np.ndarray:
        """Each packed row's bytes of JSON lines."""
        return _sums(self.records["size"], self.per_row)


def _sums(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sums of consecutive runs of ``values``, ``counts[i]`` long each (all at least 1)."""
    if not len(counts):
        return np.zeros(0, dtype=np.int64)
    return np.add.reduceat(values.astype(np.int64), np.concatenate(([0], np.cumsum(counts[:-1], dtype=np.int64))))


class DroppedRows:
    """The rows that leave as duplicates, by (file, split), as sorted arrays: a unit's share is
    two binary searches, and tens of thousands of duplicates cost a few arrays, not a Python
    set (and its objects) on every shard."""

    _NONE = np.zeros(0, dtype=np.uint64)

    def __init__(self, decisions: Iterable[np.ndarray], reason: str | None = None):
        """``decisions``: blocks of decisions (``transforms/dedup.py``)."""
        block = all_decisions(decisions, reason)
        block = block[np.lexsort((block["row"], block["split"], block["file"]))]
        ends = np.flatnonzero((block["file"][1:] != block["file"][:-1]) | (block["split"][1:] != block["split"][:-1])) + 1
        self._rows = {(int(group["file"][0]), SPLIT_NAMES[int(group["split"][0])]): np.unique(group["row"])
                      for group in np.split(block, ends) if len(group)}

    def of(self, file: int, split: str) -> np.ndarray:
        return self._rows.get((file, split), self._NONE)

    def in_unit(self, unit: UnitResult, split: str) -> int:
        rows = self.of(unit.file, split)
        return int(np.searchsorted(rows, unit.end_row) - np.searchsorted(rows, unit.first_row))


@dataclass
class _Candidate:
    """One unit's share of an output, as the plan cuts it. Without line sizes it is one atom;
    with them, one atom per record written (``keep``: which of the section's records those are)."""

    piece: Piece
    weight: float
    lines: np.ndarray | None = None  # the section's line sizes (every record)
    index_lines: np.ndarray | None = None  # the index's line sizes
    keep: np.ndarray | None = None  # bool per record: written

    def atoms(self) -> np.ndarray:
        if self.lines is None:
            return np.array([max(self.weight, 1.0)])
        return self.lines[self.keep].astype(np.float64) if self.keep is not None else self.lines.astype(np.float64)

    def part(self, first: int, count: int) -> Piece:
        """Atoms [first, first + count) as a piece: the records from the first to the last of
        them (the duplicates among them are left out when written)."""
        if self.lines is None or (first == 0 and count == len(self.atoms())):
            return self.piece
        records = np.flatnonzero(self.keep) if self.keep is not None else np.arange(len(self.lines))
        begin, end = int(records[first]), int(records[first + count - 1]) + 1

        def sub(section: Section | None, sizes: np.ndarray | None) -> Section | None:
            if section is None or sizes is None:
                return section
            start = section.start + int(sizes[:begin].sum(dtype=np.int64))
            return Section(start, start + int(sizes[begin:end].sum(dtype=np.int64)), end - begin)

        rows = self.piece.rows
        if rows is not None:
            rows = Section(rows.start + 8 * begin, rows.start + 8 * end, end - begin)
        return Piece(self.piece.path, self.piece.file, sub(self.piece.section, self.lines),
                     sub(self.piece.index, self.index_lines), count, rows)


def _bounds(cum: np.ndarray, count: int, limit: int | None) -> list[tuple[int, int]]:
    """Atoms of cumulative bytes ``cum`` in at most ``count`` runs balanced by bytes, each cut
    further to at most ``limit`` bytes (an atom larger than that stands alone): each run's
    ``[begin, end)``, none empty."""
    total, n = float(cum[-1]), len(cum)
    starts = {0}
    for k in range(1, count):  # balanced: a shard starts where the cumulative bytes pass k/count
        starts.add(min(n - 1, int(np.searchsorted(cum, total * k / count, side="left")) + 1))
    bounds = sorted(starts) + [n]
    if limit is not None:
        cut = []
        for begin, end in zip(bounds, bounds[1:]):
            while begin < end:
                base = cum[begin - 1] if begin else 0.0
                cut.append(begin)
                begin += max(1, int(np.searchsorted(cum[begin:end] - base, limit, side="right")))
        bounds = cut + [n]
    return [(begin, end) for begin, end in zip(bounds, bounds[1:]) if begin < end]


def _cut(candidates: list[_Candidate], count: int, limit: int | None) -> list[list[Piece]]:
    """The candidates' records, in order, in at most ``count`` shards balanced by bytes, each cut
    further to at most ``limit`` bytes (a record larger than that stands alone)."""
    atoms = [candidate.atoms() for candidate in candidates]
    owner = np.repeat(np.arange(len(candidates)), [len(a) for a in atoms])
    local = np.concatenate([np.arange(len(a)) for a in atoms])
    shards = []
    for begin, end in _bounds(np.cumsum(np.concatenate(atoms)), count, limit):
        pieces = []
        for candidate in np.unique(owner[begin:end]):
            mine = np.flatnonzero(owner[begin:end] == candidate)
            pieces.append(candidates[candidate].part(int(local[begin + mine[0]]), len(mine)))
        shards.append(pieces)
    return shards


def plan_shards(
    units: list[UnitResult],
    decisions: list[np.ndarray],
    *,
    num_shards: int | None = None,
    max_shard_bytes: int | None = None,
    provenance: bool = False,
    provenance_dir: str = PROVENANCE_DIR,
    parquet: bool = False,
    pack_length: int | None = None,
    temp_dir: str | None = None,
    default_shard_bytes: int = DEFAULT_SHARD_BYTES,
) -> list[ShardSpec]:
    """Every shard of every output, in order. Each output's records are cut, in (file, row)
    order, into ``num_shards`` shards (at most: never an empty one; else one per
    ``default_shard_bytes``) balanced by bytes, each cut further to ``max_shard_bytes``. Units
    pass 1 kept line sizes for (``UnitSettings.keep_sizes``) can be cut between any two records,
    the others only between units. ``parquet``: the splits' shards are Parquet, all of the type
    merged from the units' row types. ``pack_length``: the splits are tokenized rows packed into
    sequences of that many tokens (``_packed_split``; its plan is written under ``temp_dir``)."""
    units = sorted((u for u in units if u.path is not None), key=lambda u: u.key)
    dropped = DroppedRows(decisions)
    plans: list[ShardSpec] = []
    examples_type = merge_all(u.row_type for u in units) if parquet else None

    def add(output: str, candidates: list[_Candidate]) -> None:
        candidates = [c for c in candidates if c.piece.count > 0]
        if not candidates:
            return
        count = num_shards or max(1, math.ceil(sum(c.weight for c in candidates) / default_shard_bytes))
        shards = _cut(candidates, count, max_shard_bytes)
        kind = examples_type if output in SPLITS else None
        for index, shard in enumerate(shards):
            plans.append(ShardSpec(output, index, len(shards), tuple(shard), kind))

    def sizes(unit: UnitResult, name: str) -> np.ndarray | None:
        return np.frombuffer(unit.sizes[name], dtype=np.uint32) if name in unit.sizes else None

    for split in SPLITS:
        if pack_length is not None:
            plans.extend(_packed_split(
                units, split, dropped, max_length=pack_length, examples_type=examples_type,
                count=num_shards, limit=max_shard_bytes, default_shard_bytes=default_shard_bytes,
                provenance=f"{provenance_dir}/{split}" if provenance else None, temp_dir=temp_dir))
            continue
        examples, sources = [], []
        for unit in units:
            section, index = unit.sections.get(split), unit.sections.get(index_section(split))
            if section is None:
                continue
            gone = dropped.of(unit.file, split)
            keep = None
            if split in unit.rows and len(gone):
                keep = ~in_sorted(np.frombuffer(unit.rows[split], dtype=np.uint64), gone)
            written = section.records - dropped.in_unit(unit, split)
            lines, index_lines = sizes(unit, split), sizes(unit, index_section(split))
            if lines is None or index_lines is None:  # a unit cut needs both: else it stays whole
                lines = index_lines = keep = None
            rows = unit.sections.get(rows_section(split))
            examples.append(_Candidate(Piece(unit.path, unit.file, section, index, written, rows),
                                       (section.end - section.start) * written / section.records, lines, index_lines, keep))
            sources.append(_Candidate(Piece(unit.path, unit.file, None, index, written, rows), 40.0 * written,
                                      index_lines, index_lines, keep))
        add(split, examples)
        if provenance:
            add(f"{provenance_dir}/{split}", sources)
    filtered = sorted({name for u in units for name in u.sections if name.startswith(f"{DROPPED_DIR}/")})
    for output in (REJECTED_DIR, *filtered):
        add(output, [_Candidate(Piece(unit.path, unit.file, unit.sections[output], None, unit.sections[output].records),
                                float(unit.sections[output].end - unit.sections[output].start), sizes(unit, output))
                     for unit in units if output in unit.sections])
    for reason in DECIDED_REASONS:
        by_split = DroppedRows(decisions, reason)
        candidates = []
        for unit in units:
            for split in SPLITS:
                count = by_split.in_unit(unit, split)
                if count:
                    candidates.append(_Candidate(Piece(unit.path, unit.file, unit.sections[split],
                                                       unit.sections[index_section(split)], count,
                                                       unit.sections.get(rows_section(split))), 500.0 * count))
        add(dropped_section(reason), candidates)
    return plans


def _packed_split(units: list[UnitResult], split: str, dropped: DroppedRows, *, max_length: int, examples_type: Any,
                  count: int | None, limit: int | None, default_shard_bytes: int, provenance: str | None,
                  temp_dir: str) -> list[ShardSpec]:
    """A split's shards of packed rows: its examples (duplicates left out), in (file, row) order,
    placed by best-fit decreasing over the whole split from their lengths alone
    (``transforms/packing.py``), the packed rows cut into shards balanced by bytes. The plan —
    each example's place in its unit's file, in packed order, and each row's count — is written
    under ``temp_dir``; a shard's spec names its part of it, so that only small specs cross the
    pipeline. With ``provenance``, a provenance shard beside each one lists the sources of its
    examples in the same order."""
    paths, files, parts = [], [], []
    for unit in units:
        if unit.sections.get(split) is None:
            continue
        rows = np.frombuffer(_read(unit.path, unit.sections[rows_section(split)]), dtype=np.uint64)
        sizes = np.frombuffer(_read(unit.path, unit.sections[sizes_section(split)]), dtype=np.uint32)
        lengths = np.frombuffer(_read(unit.path, unit.sections[lengths_section(split)]), dtype=np.uint32)
        keep = ~in_sorted(rows, dropped.of(unit.file, split))
        records = np.empty(int(keep.sum()), dtype=PLAN_RECORD)
        records["unit"], records["size"], records["row"] = len(paths), sizes[keep], rows[keep]
        records["start"] = (unit.sections[split].start
                            + np.concatenate(([0], np.cumsum(sizes[:-1], dtype=np.int64))))[keep]
        parts.append((records, lengths[keep]))
        paths.append(unit.path)
        files.append(unit.file)
    if not sum(len(lengths) for _, lengths in parts):
        return []
    records = np.concatenate([records for records, _ in parts])
    lengths = np.concatenate([lengths for _, lengths in parts])
    del parts  # before the plan's own arrays: at 2M examples, each of these is tens of MB
    order, per_row = pack_order(lengths, max_length)
    del lengths
    plan, counts = join(temp_dir, PACK_DIR, f"{split}.plan"), join(temp_dir, PACK_DIR, f"{split}.rows")
    with created_whole(plan) as out:
        for at in range(0, len(order), PLAN_CHUNK):  # in chunks: one copy of the records at a time is enough
            out.write(records[order[at:at + PLAN_CHUNK]].tobytes())
    per_row = per_row.astype(np.uint32)
    write_bytes(counts, per_row.tobytes())
    row_bytes = _sums(records["size"][order], per_row)
    del records, order
    first_example = np.concatenate(([0], np.cumsum(per_row, dtype=np.int64)))
    shards = _bounds(np.cumsum(row_bytes), count or max(1, math.ceil(row_bytes.sum() / default_shard_bytes)), limit)
    specs = []
    for index, (begin, end) in enumerate(shards):
        part = PackedPart(plan, counts, tuple(paths), tuple(files), (begin, end),
                          (int(first_example[begin]), int(first_example[end])), examples_type)
        specs.append(ShardSpec(split, index, len(shards), (), packed_type(examples_type), part))
        if provenance is not None:
            specs.append(ShardSpec(provenance, index, len(shards), (), None, part))
    return specs


# Plan records are written this many at a time.
PLAN_CHUNK = 1 << 18


# --- Writing one shard ---------------------------------------------------------------------


def _read(path: str, section: Section) -> bytes:
    return read_bytes(path, section.start, section.end)


def _chunks(path: str, section: Section, size: int) -> Iterator[bytes]:
    """The section's bytes, ``size`` at a time."""
    with FileSystems.open(path) as f:
        f.seek(section.start)
        left = section.end - section.start
        while left:
            chunk = f.read(min(size, left))
            if not chunk:
                raise OSError(f"{path} ends before byte {section.end}")
            left -= len(chunk)
            yield chunk


def _copy(path: str, section: Section, out) -> None:
    for chunk in _chunks(path, section, COPY_CHUNK):
        out.write(chunk)


def index_entries(path: str, index: Section) -> list[list]:
    return [orjson.loads(line) for line in _read(path, index).splitlines()]


def _rows(piece: Piece) -> np.ndarray:
    """The piece's rows, in order: from its rows section, else from its index."""
    if piece.rows is not None:
        return np.frombuffer(_read(piece.path, piece.rows), dtype=np.uint64)
    return np.array([entry[0] for entry in index_entries(piece.path, piece.index)], dtype=np.uint64)


def _lines(path: str, section: Section) -> list[bytes]:
    return _read(path, section).split(b"\n")[:-1]


def _streamed_lines(path: str, section: Section, chunk: int) -> Iterator[bytes]:
    """The section's lines (newlines cut), read ``chunk`` bytes at a time: a unit's section of
    token rows is tens of MB, held whole by no one."""
    rest = b""
    for data in _chunks(path, section, chunk):
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        yield from lines


@dataclass(frozen=True)
class ShardContext:
    """What writing a shard needs besides its spec."""

    output_dir: str
    # The run's files, then those of the earlier runs deduplicated against (dedup.against): a
    # duplicate's survivor may be one of theirs.
    files: tuple[str, ...]
    max_tokens: int  # the model's per-example limit: billed tokens are capped at it
    run_files: int | None = None  # how many of ``files`` are the run's (None: all)
    reference_dirs: tuple[str, ...] = ()  # the index each later file is from, one per file
    source_names: tuple[str, ...] | None = None  # each run file's source (input.sources): provenance names it


# At most this much JSON a Parquet row group is built from (see _WriteShardFn._parquet).
PARQUET_GROUP_BYTES = 2 << 20


def _groups(lines: list[bytes], limit: int) -> Iterator[list[bytes]]:
    """``lines`` in runs of at most ``limit`` bytes (at least one line each)."""
    group, size = [], 0
    for line in lines:
        if group and size + len(line) > limit:
            yield group
            group, size = [], 0
        group.append(line)
        size += len(line)
    if group:
        yield group


def _group_table(lines: list[bytes], kind: Any, schema: pa.Schema) -> pa.Table:
    """JSON lines as an Arrow table of ``schema``: parsed by Arrow itself where no value is JSON
    text (token ids go from JSON to Arrow without becoming Python ints), else through Python."""
    if has_json(kind):
        return table([orjson.loads(line) for line in lines], kind)
    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    read = pa_json.ReadOptions(block_size=max(1 << 20, sum(len(line) + 1 for line in lines) + 1))
    return pa_json.read_json(io.BytesIO(b"\n".join(lines)), read_options=read, parse_options=options).combine_chunks()


class _OpenFiles:
    """Pass 1's files held open while a shard of packed rows reads from them (at most ``LIMIT``
    at once, the longest unused closed first): every row group reads a few lines of most units."""

    LIMIT = 64

    def __init__(self):
        self._open: dict[str, Any] = {}

    def __enter__(self) -> "_OpenFiles":
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._open.values():
            handle.close()
        self._open.clear()

    def get(self, path: str):
        handle = self._open.pop(path, None)
        if handle is None:
            if len(self._open) >= self.LIMIT:
                self._open.pop(next(iter(self._open))).close()
            handle = FileSystems.open(path)
        self._open[path] = handle  # most recently used last
        return handle


def _packed_lines(packed: PackedRows, files: _OpenFiles) -> list[bytes]:
    """The lines of ``packed``'s examples (newlines cut), in packed order: each unit's read in
    file order, a run of adjacent lines in one read."""
    records = packed.records
    lines: list[bytes] = [b""] * len(records)
    for unit in np.unique(records["unit"]).tolist():
        mine = np.flatnonzero(records["unit"] == unit)
        mine = mine[np.argsort(records["start"][mine], kind="stable")]
        starts, sizes = records["start"][mine].astype(np.int64), records["size"][mine].astype(np.int64)
        ends = starts + sizes
        handle = files.get(packed.paths[unit])
        for run in np.split(np.arange(len(mine)), np.flatnonzero(starts[1:] != ends[:-1]) + 1):
            first = int(starts[run[0]])
            handle.seek(first)
            data = handle.read(int(ends[run[-1]]) - first)
            for k in run.tolist():
                at = int(starts[k]) - first
                lines[mine[k]] = data[at:at + int(sizes[k]) - 1]
    return lines


class _WriteShardFn(beam.DoFn):
    STATS = "stats"

    def __init__(self, context: ShardContext):
        self._context = context
        self._paths = None  # the side input (paths of blocks of decisions) the lookups below were built from
        self._decisions: list[np.ndarray] = []
        self._dropped: DroppedRows | None = None
        self._duplicates: dict[str, dict] = {}

    def _lookups(self, decisions: list[str]) -> DroppedRows:
        # Built once per side input, not per shard: a run has many shards and may have many duplicates.
        if decisions != self._paths:
            self._paths = decisions
            self._decisions = read_decisions(decisions)
            self._dropped, self._duplicates = DroppedRows(self._decisions), {}
        return self._dropped

    def _duplicates_of(self, reason: str) -> np.ndarray:
        """The decisions of ``reason``, sorted by (file, row)."""
        if reason not in self._duplicates:
            self._duplicates[reason] = all_decisions(self._decisions, reason)
        return self._duplicates[reason]

    def process(self, spec: ShardSpec, decisions: list[str]):
        dropped = self._lookups(decisions)
        split = reason = spec.output.rpartition("/")[2]
        stats = StatsAccumulator()
        path = FileSystems.join(self._context.output_dir, spec.name)
        if spec.packed is not None:
            if spec.row_type is not None:
                self._packed(spec, path)
            else:
                with created_whole(path) as out:
                    self._packed_sources(spec.packed, out)
            yield spec.output, path
            return
        if spec.row_type is not None:
            self._parquet(spec, dropped, path)
            yield spec.output, path
            return
        with created_whole(path) as out:
            for piece in spec.pieces:
                gone = dropped.of(piece.file, split)
                if spec.output in SPLITS:
                    self._examples(piece, split, gone, out, stats)
                elif spec.output.rpartition("/")[0] in (PROVENANCE_DIR, DATASET_PROVENANCE_DIR):
                    self._sources(piece, gone, out)
                elif reason in DECIDED_REASONS:
                    self._write_duplicates(piece, self._duplicates_of(reason), reason, out, stats)
                else:
                    _copy(piece.path, piece.section, out)
        yield spec.output, path
        if reason in DECIDED_REASONS:
            yield beam.pvalue.TaggedOutput(self.STATS, stats)

    def _examples(self, piece: Piece, split: str, gone: np.ndarray, out, stats: StatsAccumulator) -> None:
        """The piece's lines as pass 1 wrote them (pass 1 counted them too), the duplicates left out."""
        if not len(gone):
            _copy(piece.path, piece.section, out)
            return
        keep = ~in_sorted(_rows(piece), gone)
        if keep.all():
            _copy(piece.path, piece.section, out)
        else:
            out.write(b"".join(line + b"\n" for line, kept in zip(_lines(piece.path, piece.section), keep) if kept))

    def _parquet(self, spec: ShardSpec, dropped: DroppedRows, path: str) -> None:
        """The examples as Parquet, a row group per ``PARQUET_GROUP_BYTES`` of a piece's JSON at
        most, the piece read as it is written (a unit's share of tokenized rows held whole took a
        worker from about 490 to 630 MB on the benchmark; in 2 MB groups 520)."""
        schema = arrow_schema(spec.row_type)
        with created_whole(path) as out, pq.ParquetWriter(out, schema, compression="zstd") as writer:
            for piece in spec.pieces:
                lines = _streamed_lines(piece.path, piece.section, PARQUET_GROUP_BYTES)
                gone = dropped.of(piece.file, spec.output)
                if len(gone):
                    lines = (line for line, kept in zip(lines, ~in_sorted(_rows(piece), gone)) if kept)
                for group in _groups(lines, PARQUET_GROUP_BYTES):
                    writer.write_table(_group_table(group, spec.row_type, schema))

    def _packed(self, spec: ShardSpec, path: str) -> None:
        """Packed rows, a row group per ``PARQUET_GROUP_BYTES`` of their examples' JSON at most
        (a packed row larger than that is a group of its own): each group's examples read from
        pass 1's files, parsed in packed order and concatenated row by row."""
        packed, examples_type = spec.packed.load(), spec.packed.examples_type
        schema, examples_schema = arrow_schema(spec.row_type), arrow_schema(examples_type)
        with created_whole(path) as out, pq.ParquetWriter(out, schema, compression="zstd") as writer, \
                _OpenFiles() as files:
            for begin, end in _bounds(np.cumsum(packed.row_bytes()), 1, PARQUET_GROUP_BYTES):
                group = packed.part(begin, end)
                examples = _group_table(_packed_lines(group, files), examples_type, examples_schema)
                writer.write_table(packed_table(examples, group.per_row, schema))

    def _packed_sources(self, part: PackedPart, out) -> None:
        """Each example's source, in packed order, with the number of the packed row it is in."""
        packed, names = part.load(), self._context.files
        sequence = part.rows[0] + np.repeat(np.arange(len(packed.per_row)), packed.per_row)
        files = np.array(part.files, dtype=np.int64)[packed.records["unit"]]
        sources = self._context.source_names
        out.write(b"".join(orjson.dumps({"file": names[f], "row": r, "sequence": q,
                                         **({"name": sources[f]} if sources else {})}) + b"\n"
                           for f, r, q in zip(files.tolist(), packed.records["row"].tolist(), sequence.tolist())))

    def _sources(self, piece: Piece, gone: np.ndarray, out) -> None:
        file = self._context.files[piece.file]
        rows = _rows(piece)
        rows = rows[~in_sorted(rows, gone)].tolist()
        named = {"name": self._context.source_names[piece.file]} if self._context.source_names else {}
        out.write(b"".join(orjson.dumps({"file": file, "row": row, **named}) + b"\n" for row in rows))

    def _write_duplicates(self, piece: Piece, duplicates: np.ndarray, reason: str, out, stats: StatsAccumulator) -> None:
        """The unit's kept records that are duplicates (``duplicates``: the decisions of
        ``reason``, sorted), as dropped/ shows them: source, reason, the survivor, and the
        example as it would have been written; pass 1 counted them as kept, so they are taken
        back from the statistics here."""
        files, limit = self._context.files, self._context.max_tokens
        rows = _rows(piece)
        known = source_numbers(duplicates["file"], duplicates["row"])
        wanted = source_numbers(np.full(len(rows), piece.file, dtype=np.uint64), rows)
        at = np.minimum(np.searchsorted(known, wanted), max(len(known) - 1, 0))
        found = (known[at] == wanted) if len(known) else np.zeros(len(rows), dtype=bool)
        if not found.any():
            return
        lines, index = _lines(piece.path, piece.section), _read(piece.path, piece.index).splitlines()
        for i in np.flatnonzero(found).tolist():
            decision = duplicates[at[i]]
            _, _, total, context, trained, by_role, estimated, warnings, messages, content = orjson.loads(index[i])
            tokens = TokenCount(total, context, trained, tuple(tuple(pair) for pair in by_role), bool(estimated), content)
            split = SPLIT_NAMES[int(decision["split"])]
            stats.take_back(KeptExample.of(split, tokens, warnings, messages, limit))
            doc = {"source": {"file": files[piece.file], "row": int(rows[i])}, "reason": reason}
            if self._context.source_names:
                doc["source"]["name"] = self._context.source_names[piece.file]
            survivor = int(decision["survivor_file"])
            if survivor != NO_SURVIVOR:
                doc["duplicate_of"] = {"file": files[survivor], "row": int(decision["survivor_row"])}
                if self._context.run_files is not None and survivor >= self._context.run_files:
                    doc["duplicate_of"]["in"] = self._context.reference_dirs[survivor - self._context.run_files]
            head = orjson.dumps(doc)
            out.write(head[:-1] + b',"record":' + lines[i] + b"}\n")


class WriteShards(beam.PTransform):
    """``ShardSpec``s in; ``(output, path)`` of every file written, and the statistics of the
    duplicates dropped (``StatsAccumulator``s to take back), out."""

    def __init__(self, *, context: ShardContext, decisions):
        super().__init__()
        self._context = context
        self._decisions = decisions

    def expand(self, specs):
        results = (
            specs
            # Load-bearing: without it one worker writes every shard.
            | "SpreadShards" >> beam.Reshuffle()
            | "Write" >> beam.ParDo(_WriteShardFn(self._context), beam.pvalue.AsList(self._decisions))
            .with_outputs(_WriteShardFn.STATS, main="files")
        )
        return results["files"], results[_WriteShardFn.STATS]
