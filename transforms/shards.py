"""Pass 2: the final files, cut from the units' sections in input order.

``plan_shards`` decides, from the units' results and the dedup decisions alone, every file each
output gets and which pieces of which units go into it, in (file, row) order: the same plan,
hence the same bytes, for every run, runner and number of workers. ``WriteShards`` writes each
planned shard (one element each, spread over the workers), leaving out the duplicates, and
counts the kept examples' statistics as it goes. No shard is ever empty.

Outputs: ``train``, ``validation`` (the examples), ``rejected``, ``dropped/<reason>`` (filters:
as pass 1 wrote them; duplicates: made here from the kept sections and the decisions),
``provenance/<split>`` (with ``output.provenance``: the source of every kept example).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Iterator

import apache_beam as beam
import numpy as np
import orjson
from apache_beam.io.filesystems import FileSystems

from schemas.records import DROPPED_DIR, REJECTED_DIR, SPLITS, TokenCount
from transforms.dedup import DUPLICATE_EXACT, DUPLICATE_NEAR, Decision
from transforms.stats import KEPT, StatsAccumulator
from transforms.units import Section, UnitResult, dropped_section, index_section
from transforms.write import PROVENANCE_DIR

# Without output.num_shards, a shard holds about this much (cut between units).
DEFAULT_SHARD_BYTES = 64 << 20
SHARD_NAME = "part-{index:05d}-of-{count:05d}.jsonl"
COPY_CHUNK = 1 << 20
_DUPLICATE_REASONS = (DUPLICATE_EXACT, DUPLICATE_NEAR)


@dataclass(frozen=True)
class Piece:
    """Records [first, first + count) of one unit's output section, with the unit's index of
    them for the examples: what a shard takes from that unit. ``dropped`` rows (duplicates) are
    left out of the examples; for a duplicates output they are the records taken."""

    path: str
    file: int
    section: Section | None
    index: Section | None
    first: int
    count: int


@dataclass(frozen=True)
class ShardSpec:
    output: str  # "train", "rejected", "dropped/filter_echo", "provenance/train", ...
    index: int
    count: int
    pieces: tuple[Piece, ...]

    @property
    def name(self) -> str:
        return f"{self.output}/{SHARD_NAME.format(index=self.index, count=self.count)}"


def _dropped_rows(decisions: Iterable[Decision]) -> dict[tuple[int, str], set[int]]:
    """(file, split) -> rows that leave as duplicates."""
    rows: dict[tuple[int, str], set[int]] = defaultdict(set)
    for decision in decisions:
        rows[(decision.file, decision.split)].add(decision.row)
    return rows


def _in_unit(unit: UnitResult, rows: set[int]) -> int:
    return sum(1 for row in rows if unit.first_row <= row < unit.end_row)


def _sub_piece(piece: Piece, lines: np.ndarray, start: int, count: int) -> Piece:
    if start == 0 and count == len(lines):
        return piece
    offset = piece.section.start + int(lines[:start].sum())
    end = offset + int(lines[start : start + count].sum())
    return Piece(piece.path, piece.file, Section(offset, end, count), piece.index, piece.first + start, count)


def _cut(candidates: list[tuple[Piece, float, np.ndarray | None]], count: int, limit: int | None) -> list[list[Piece]]:
    """The candidates' records, in order, in at most ``count`` shards balanced by bytes, each cut
    further to at most ``limit`` bytes (a record larger than that stands alone). A candidate with
    line sizes can be cut between any two records; one without is one indivisible atom."""
    lengths = [sizes.astype(np.float64) if sizes is not None else np.array([max(weight, 1.0)])
               for _, weight, sizes in candidates]
    owner = np.repeat(np.arange(len(candidates)), [len(x) for x in lengths])
    local = np.concatenate([np.arange(len(x)) for x in lengths])
    cum = np.cumsum(np.concatenate(lengths))
    total, atoms = float(cum[-1]), len(cum)
    starts = {0}
    for k in range(1, count):  # balanced: a shard starts where the cumulative bytes pass k/count
        starts.add(min(atoms - 1, int(np.searchsorted(cum, total * k / count, side="left")) + 1))
    bounds = sorted(starts) + [atoms]
    if limit is not None:
        cut = []
        for begin, end in zip(bounds, bounds[1:]):
            while begin < end:
                base = cum[begin - 1] if begin else 0.0
                fits = int(np.searchsorted(cum[begin:end] - base, limit, side="right"))
                cut.append(begin)
                begin += max(fits, 1)
        bounds = cut + [atoms]
    shards = []
    for begin, end in zip(bounds, bounds[1:]):
        if begin >= end:
            continue
        pieces = []
        for candidate in np.unique(owner[begin:end]):
            piece, _, sizes = candidates[candidate]
            mine = np.flatnonzero(owner[begin:end] == candidate)
            first, number = int(local[begin + mine[0]]), len(mine)
            pieces.append(piece if sizes is None else _sub_piece(piece, sizes.astype(np.int64), first, number))
        shards.append(pieces)
    return shards


def plan_shards(
    units: list[UnitResult],
    decisions: list[Decision],
    *,
    num_shards: int | None = None,
    max_shard_bytes: int | None = None,
    provenance: bool = False,
    default_shard_bytes: int = DEFAULT_SHARD_BYTES,
) -> list[ShardSpec]:
    """Every shard of every output, in order. Each output's records are cut, in (file, row)
    order, into ``num_shards`` shards (at most: never an empty one; else one per
    ``default_shard_bytes``) balanced by bytes, each cut further to ``max_shard_bytes``. Units
    pass 1 kept line sizes for (``UnitSettings.keep_sizes``) can be cut between any two records,
    the others only between units."""
    units = sorted((u for u in units if u.path is not None), key=lambda u: u.key)
    dropped = _dropped_rows(decisions)
    plans: list[ShardSpec] = []

    def add(output: str, candidates: list[tuple[Piece, float, np.ndarray | None]]) -> None:
        candidates = [c for c in candidates if c[0].count > 0]
        if not candidates:
            return
        count = num_shards or max(1, math.ceil(sum(weight for _, weight, _ in candidates) / default_shard_bytes))
        shards = _cut(candidates, count, max_shard_bytes)
        for index, shard in enumerate(shards):
            plans.append(ShardSpec(output, index, len(shards), tuple(shard)))

    def sizes_of(unit: UnitResult, name: str) -> np.ndarray | None:
        return np.frombuffer(unit.sizes[name], dtype=np.uint32) if name in unit.sizes else None

    for split in SPLITS:
        examples, sources = [], []
        for unit in units:
            section, index = unit.sections.get(split), unit.sections.get(index_section(split))
            if section is None:
                continue
            gone = _in_unit(unit, dropped.get((unit.file, split), set()))
            kept = section.records - gone
            weight = (section.end - section.start) * kept / section.records
            examples.append((Piece(unit.path, unit.file, section, index, 0, kept), weight,
                             None if gone else sizes_of(unit, split)))
            sources.append((Piece(unit.path, unit.file, None, index, 0, kept), 40.0 * kept, None))
        add(split, examples)
        if provenance:
            add(f"{PROVENANCE_DIR}/{split}", sources)
    filtered = sorted({name for u in units for name in u.sections if name.startswith(f"{DROPPED_DIR}/")})
    for output in (REJECTED_DIR, *filtered):
        add(output, [(Piece(unit.path, unit.file, unit.sections[output], None, 0, unit.sections[output].records),
                      float(unit.sections[output].end - unit.sections[output].start), sizes_of(unit, output))
                     for unit in units if output in unit.sections])
    for reason in _DUPLICATE_REASONS:
        by_split = _dropped_rows(d for d in decisions if d.reason == reason)
        candidates = []
        for unit in units:
            for split in SPLITS:
                count = _in_unit(unit, by_split.get((unit.file, split), set()))
                if count:
                    candidates.append((Piece(unit.path, unit.file, unit.sections[split],
                                             unit.sections[index_section(split)], 0, count), 500.0 * count, None))
        add(dropped_section(reason), candidates)
    return plans


# --- Writing one shard ---------------------------------------------------------------------


def _read(path: str, section: Section) -> bytes:
    with FileSystems.open(path) as f:
        f.seek(section.start)
        return f.read(section.end - section.start)


def _copy(path: str, section: Section, out) -> None:
    with FileSystems.open(path) as f:
        f.seek(section.start)
        left = section.end - section.start
        while left:
            chunk = f.read(min(COPY_CHUNK, left))
            if not chunk:
                raise OSError(f"{path} ends before byte {section.end}")
            out.write(chunk)
            left -= len(chunk)


def index_entries(path: str, index: Section) -> list[list]:
    return [orjson.loads(line) for line in _read(path, index).splitlines()]


def _lines(path: str, section: Section) -> list[bytes]:
    return _read(path, section).split(b"\n")[:-1]


@dataclass(frozen=True)
class ShardContext:
    """What writing a shard needs besides its spec."""

    output_dir: str
    files: tuple[str, ...]
    max_tokens: int  # the model's per-example limit: billed tokens are capped at it


class _WriteShardFn(beam.DoFn):
    STATS = "stats"

    def __init__(self, context: ShardContext):
        self._context = context

    def process(self, spec: ShardSpec, decisions: list[Decision]):
        dropped = _dropped_rows(decisions)
        split = reason = spec.output.rpartition("/")[2]
        duplicates = {(d.file, d.row): d for d in decisions if d.reason == reason}
        stats = StatsAccumulator()
        path = FileSystems.join(self._context.output_dir, spec.name)
        with FileSystems.create(path) as out:
            for piece in spec.pieces:
                gone = dropped.get((piece.file, split), set())
                if spec.output in SPLITS:
                    self._examples(piece, split, gone, out, stats)
                elif spec.output.startswith(PROVENANCE_DIR + "/"):
                    self._sources(piece, gone, out)
                elif reason in _DUPLICATE_REASONS:
                    self._duplicates(piece, duplicates, out)
                else:
                    _copy(piece.path, piece.section, out)
        yield spec.output, path
        if spec.output in SPLITS:
            yield beam.pvalue.TaggedOutput(self.STATS, stats)

    def _examples(self, piece: Piece, split: str, gone: set[int], out, stats: StatsAccumulator) -> None:
        entries = index_entries(piece.path, piece.index)
        if gone:  # the plan never cuts a unit whose records leave: the whole section, filtered
            keep = [entry[0] not in gone for entry in entries]
            out.write(b"".join(line + b"\n" for line, kept in zip(_lines(piece.path, piece.section), keep) if kept))
            entries = [entry for entry, kept in zip(entries, keep) if kept]
        else:
            entries = entries[piece.first : piece.first + piece.count]
            _copy(piece.path, piece.section, out)
        limit = self._context.max_tokens
        for _, _, total, context, trained, by_role, estimated, warnings, messages in entries:
            tokens = TokenCount(total, context, trained, tuple(tuple(pair) for pair in by_role), bool(estimated))
            stats.add((KEPT, split, tokens, tuple(warnings), messages, min(limit, total)))

    def _sources(self, piece: Piece, gone: set[int], out) -> None:
        file = self._context.files[piece.file]
        rows = [entry[0] for entry in index_entries(piece.path, piece.index) if entry[0] not in gone]
        out.write(b"".join(orjson.dumps({"file": file, "row": row}) + b"\n" for row in rows))

    def _duplicates(self, piece: Piece, duplicates: dict, out) -> None:
        """The unit's kept records that are duplicates, as dropped/ shows them: source, reason, the
        survivor, and the example as it would have been written."""
        files = self._context.files
        for line, entry in zip(_lines(piece.path, piece.section), index_entries(piece.path, piece.index)):
            decision = duplicates.get((piece.file, entry[0]))
            if decision is None:
                continue
            head = orjson.dumps({"source": {"file": files[decision.file], "row": decision.row},
                                 "reason": decision.reason,
                                 "duplicate_of": {"file": files[decision.survivor_file], "row": decision.survivor_row}})
            out.write(head[:-1] + b',"record":' + line + b"}\n")


class WriteShards(beam.PTransform):
    """``ShardSpec``s in; ``(output, path)`` of every file written, and the kept examples'
    ``StatsAccumulator``s, out."""

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
