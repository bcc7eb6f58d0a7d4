"""Pass 1: each read unit is read, run through the whole per-record chain and written, in input
order, to one temporary file beside the output. Only small results leave the step.

A unit's file holds one section per output (``train``, ``validation``, ``rejected``,
``dropped/<reason>``: final JSON lines), an index of its kept records (``index/<split>``: row,
size, tokens, warnings) and, when the recipe deduplicates, the records' keys
(``keys/exact/<p>``, ``keys/near/<p>``: fixed-width, see ``transforms/dedup.py``). What leaves
the step is a ``UnitResult``: where each section is, the unit's statistics (rows read,
rejections, drops, PII, failed files) and a sample of its rejected records. The final files
are cut from these sections (``transforms/shards.py``): records wait on disk, in order, never in
a shuffle, and every run writes the same bytes.
"""

from __future__ import annotations

import base64
import logging
import re
import tempfile
from array import array
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterator

import apache_beam as beam
import numpy as np
import orjson
from apache_beam.io.filesystems import FileSystems

from schemas.formats import message_count
from schemas.layout import UNIT_DONE_SUFFIX
from schemas.recipe import CsvOptions, DedupSpec, LimitsSpec, PiiSpec
from schemas.records import REJECTED, REJECTED_DIR, SPLITS, Dropped, FailedFile, Item, Rejected, dumps_line
from transforms.mixing import mix_records, mix_section
from transforms.dedup import (
    EXACT_RECORD,
    NEAR_RECORD,
    SIGNATURE_SECTION,
    exact_records,
    exact_section,
    near_records,
    near_section,
)
from transforms.files import created_whole, write_bytes
from transforms.pii import PII_OUTPUT, redact_document, redacted_quote, scanner_for
from transforms.readers.base import BadInputFile, ReadUnit
from transforms.readers.registry import read_unit
from transforms.row_types import merge, row_type
from transforms.stage import BATCH_ROWS, RecordChain, StageCounters
from transforms.stats import KeptExample, StatsAccumulator

LOGGER = logging.getLogger(__name__)

# A section spools in memory up to this size, then on the worker's local disk.
SPOOL_BYTES = 4 << 20
# The report shows the first few rejected records of each code, each cut to this many characters.
SAMPLES_PER_CODE = 5
RECORD_PREVIEW_CHARS = 400


def index_section(split: str) -> str:
    return f"index/{split}"


def rows_section(split: str) -> str:
    """The rows of a split's records, uint64 each: what pass 2 filters duplicates by."""
    return f"rows/{split}"


def lengths_section(split: str) -> str:
    """The tokens of a split's records (uint32 each, their input_ids): what packing places them by."""
    return f"lengths/{split}"


def sizes_section(split: str) -> str:
    """The bytes of a split's lines (uint32 each): where a packed row's examples are in the file."""
    return f"sizes/{split}"


def dropped_section(reason: str) -> str:
    return f"dropped/{reason}"


@dataclass(frozen=True)
class Section:
    """Bytes [start, end) of a unit's file, holding ``records`` lines (or key records)."""

    start: int
    end: int
    records: int


@dataclass
class UnitResult:
    """What pass 1 says of one read unit (small: no records)."""

    file: int  # the file's index in the run's sorted list of files
    first_row: int
    end_row: int  # one past the last row the unit read
    path: str | None  # the unit's temporary file; None when it holds nothing
    sections: dict[str, Section]
    stats: StatsAccumulator
    samples: list[tuple[str, dict]] = field(default_factory=list)
    # With UnitSettings.keep_sizes (a shard count or byte limit to honour): each section's line
    # sizes (uint32 bytes), and each split's rows (uint64 bytes), so that a shard can end
    # between any two records of a unit, duplicates left out.
    sizes: dict[str, bytes] = field(default_factory=dict)
    rows: dict[str, bytes] = field(default_factory=dict)
    # With UnitSettings.row_types (Parquet output): the type of the unit's examples
    # (``transforms/row_types.py``), merged over the run into the shards' one schema.
    row_type: Any = None
    # The file that says the unit is complete (its result, for --resume).
    done: str | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.file, self.first_row)

    def temporary_files(self) -> list[str]:
        return [path for path in (self.path, self.done) if path is not None]

    def to_json(self, unit: ReadUnit) -> bytes:
        """The result and the unit it is of, as plain JSON (no pickle: a file in the output
        directory is never code to run)."""
        return orjson.dumps({
            "unit": asdict(unit), "file": self.file, "first_row": self.first_row, "end_row": self.end_row,
            "path": self.path, "sections": {name: [s.start, s.end, s.records] for name, s in self.sections.items()},
            "stats": self.stats.to_json(), "samples": self.samples,
            "sizes": {name: base64.b64encode(data).decode() for name, data in self.sizes.items()},
            "rows": {name: base64.b64encode(data).decode() for name, data in self.rows.items()},
            "row_type": self.row_type,
        })

    @classmethod
    def from_json(cls, data: bytes, done: str) -> tuple[dict, "UnitResult"]:
        """``(the unit it is of, as a dict, the result)``."""
        doc = orjson.loads(data)
        return doc["unit"], cls(
            doc["file"], doc["first_row"], doc["end_row"], doc["path"],
            {name: Section(*bounds) for name, bounds in doc["sections"].items()},
            StatsAccumulator.from_json(doc["stats"]), [tuple(pair) for pair in doc["samples"]],
            {name: base64.b64decode(text) for name, text in doc["sizes"].items()},
            {name: base64.b64decode(text) for name, text in doc["rows"].items()},
            doc["row_type"], done)

    def layout(self) -> "UnitResult":
        """The unit without its stats and samples: what the steps that read its file need. They
        take every unit as a side input, and a unit's stats are most of its size."""
        return replace(self, stats=StatsAccumulator(), samples=[])


def unit_file_name(file: int, first_row: int) -> str:
    return f"{file:05d}-{first_row:012d}.unit"


def reusable_result(unit: ReadUnit, done: str) -> "UnitResult | None":
    """The result an earlier run saved for this very unit at ``done``, or None (none saved, a
    different unit there, or a file that does not read)."""
    try:
        with FileSystems.open(done) as f:
            saved, result = UnitResult.from_json(f.read(), done)
    except Exception:  # noqa: BLE001 - absent, cut or foreign: the unit is processed again
        return None
    if saved != orjson.loads(orjson.dumps(asdict(unit))) or (result.path is not None and not FileSystems.exists(result.path)):
        return None
    return result


def index_entry(item: Item, size: int, messages: int) -> bytes:
    """One kept record in the unit's index: row, line size, tokens, warnings, messages."""
    tokens = item.tokens
    return orjson.dumps([item.source.row, size, tokens.total, tokens.context, tokens.trained,
                         tokens.by_role, tokens.estimated, item.warnings, messages, tokens.assistant_content]) + b"\n"


_MESSAGE_PATH = re.compile(r"\bmessages\[(\d+)\]")
FOCUS_VALUE_CHARS = 160


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > FOCUS_VALUE_CHARS:
        return value[:FOCUS_VALUE_CHARS] + f"… [{len(value):,} characters]"
    if isinstance(value, dict):
        return {k: _cut(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(v) for v in value[:10]]
    return value


def _focus(doc: dict) -> dict:
    """The messages the errors name (``messages[2]...``), each value cut: the part of a long
    example an error is about, which a cut of the whole would hide."""
    example = doc.get("example")
    holder = example.get("input", example) if isinstance(example, dict) else None
    messages = holder.get("messages") if isinstance(holder, dict) else None
    if not isinstance(messages, list):
        return {}
    named = sorted({int(i) for e in doc.get("errors", ()) for i in _MESSAGE_PATH.findall(e.get("message", ""))})
    return {f"messages[{i}]": _cut(messages[i]) for i in named[:3] if i < len(messages)}


def small_rejected(doc: dict) -> dict:
    """A rejected document cut to what the report shows (rows can be large), with the messages
    its errors name shown whole enough to see the problem (``focus``)."""
    record = {k: v for k, v in doc.items() if k not in ("source", "errors")}
    text = orjson.dumps(record, default=str).decode()
    if len(text) > RECORD_PREVIEW_CHARS:
        record = {"record": text[:RECORD_PREVIEW_CHARS] + f"… [{len(text):,} characters]"}
        focus = _focus(doc)
        if focus:
            record["focus"] = focus
    return {"source": doc["source"], "errors": doc["errors"], **record}


class _Spools:
    """Sections being written: in memory, spilling to local disk; copied into one file at the end."""

    def __init__(self, keep_sizes: bool):
        self._files: dict[str, tempfile.SpooledTemporaryFile] = {}
        self._records: dict[str, int] = defaultdict(int)
        # Compact arrays, not lists: a whole CSV file is one unit, of any number of records.
        self._sizes: dict[str, array] = defaultdict(lambda: array("I")) if keep_sizes else None
        self.rows: dict[str, array] = defaultdict(lambda: array("Q"))
        self.keep_sizes = keep_sizes
        self.row_type: Any = None  # of the examples written, when asked for

    def write(self, name: str, data: bytes, records: int = 1, sizes: list[int] | None = None) -> None:
        if not data:
            return
        spool = self._files.get(name)
        if spool is None:
            spool = self._files[name] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
        spool.write(data)
        self._records[name] += records
        if self._sizes is not None and sizes is not None:
            self._sizes[name].extend(sizes)

    def records(self, name: str) -> int:
        """How many records the section holds so far."""
        return self._records.get(name, 0)

    def lines(self, name: str, lines: list[bytes]) -> None:
        """``lines`` (without newlines) as one block of JSON lines."""
        if lines:
            self.write(name, b"\n".join(lines) + b"\n", len(lines), [len(line) + 1 for line in lines])

    def save(self, path: str) -> tuple[str | None, dict[str, Section], dict[str, bytes]]:
        if not self._files:
            return None, {}, {}
        sections, position = {}, 0
        with created_whole(path) as out:
            for name in sorted(self._files):
                spool = self._files[name]
                spool.seek(0)
                while chunk := spool.read(1 << 20):
                    out.write(chunk)
                size = spool.tell()
                sections[name] = Section(position, position + size, self._records[name])
                position += size
                spool.close()
        sizes = {name: values.tobytes() for name, values in (self._sizes or {}).items()}
        return path, sections, sizes

    def row_numbers(self) -> dict[str, bytes]:
        return {name: rows.tobytes() for name, rows in self.rows.items()}


@dataclass(frozen=True)
class UnitSettings:
    """How pass 1 reads, writes and keys a unit (everything but the per-record chain)."""

    columns: frozenset[str] | None
    csv: CsvOptions
    on_bad_file: str
    format: str  # the example format
    max_tokens: int  # the model's per-example limit: billed tokens are capped at it
    temp_dir: str
    files: tuple[str, ...]  # the run's files, sorted: a record's file is its index here
    limits: LimitsSpec = LimitsSpec()  # the recipe's (max_field_chars applies while reading)
    dedup: DedupSpec = DedupSpec()  # the recipe's: which key records to write (exact, near bands)
    keep_sizes: bool = False  # record line sizes and rows (to honour output.num_shards, max_shard_bytes)
    resume: bool = False  # reuse the units an interrupted run completed (their .done files)
    row_types: bool = False  # note the examples' type (for the open-weights targets' card and Parquet schema)
    # Write each split's token counts and line sizes as sections (tokenized rows, to pack them).
    pack_sections: bool = False
    # Write each kept example's mix record (input.sources: transforms/mixing.py).
    mix_sections: bool = False
    # Each file's source name (input.sources), by index in ``files``: rejected and dropped records carry it.
    source_names: tuple[str, ...] | None = None
    batch_rows: int = BATCH_ROWS


class RunStopped(RuntimeError):
    """Raised on a worker when the rows it reads fail as ``FailFast`` watches for; the CLI shows
    its message as the run's error."""


class FailFast:
    """Watches the rows one worker reads: the first ``limits.fail_fast_rows`` all rejected with
    one code, or more than ``limits.max_rejected_fraction`` rejected once that many are read,
    stop the run (``RunStopped``) naming the code and a redacted sample row."""

    def __init__(self, limits: LimitsSpec):
        self.rows = limits.fail_fast_rows
        self._fraction = limits.max_rejected_fraction
        self._seen = 0
        self._rejected = 0
        self._common: set[str] | None = None  # codes every row so far was rejected with
        self._sample: dict | None = None
        self._decided = False

    @property
    def deciding(self) -> bool:
        """Still within the first rows: the caller processes them in small batches."""
        return bool(self.rows) and self._seen < self.rows

    def kept(self, count: int) -> None:
        self._seen += count
        if count:
            self._common = set()

    def rejected(self, codes: tuple[str, ...], doc: dict) -> None:
        self._seen += 1
        self._rejected += 1
        if self._sample is None:
            self._sample = doc
        self._common = set(codes) if self._common is None else self._common & set(codes)

    def check(self) -> None:
        if not self.rows or self._seen < self.rows:
            return
        if not self._decided and self._common and self._rejected == self._seen:
            code = sorted(self._common)[0]
            self._stop(f"stopped: the first {self._seen} rows read were all rejected with {code}", code,
                       "fix the recipe, or set limits.fail_fast_rows (0: never stop)")
        self._decided = True
        if self._fraction is not None and self._rejected > self._fraction * self._seen:
            self._stop(f"stopped: {self._rejected:,} of the first {self._seen:,} rows read were rejected, over "
                       f"limits.max_rejected_fraction ({self._fraction:g})", None, "rejected/ holds them all once fixed")

    def _stop(self, what: str, code: str | None, fix: str) -> None:
        sample = self._sample or {}
        error = next((e for e in sample.get("errors", ()) if code is None or e.get("code") == code), None)
        source = sample.get("source", {})
        record = orjson.dumps(sample.get("record"), default=str).decode()
        why = f" ({redacted_quote(error['message'], 300)})" if error else ""
        raise RunStopped(f"{what}{why}; e.g. {source.get('file')} row {source.get('row')}: "
                         f"{redacted_quote(record, 200)} — {fix}")


class UnitProcessor:
    """Pass 1 for one unit at a time; ``process(unit)`` writes the unit's file and returns its result."""

    def __init__(self, settings: UnitSettings, chain: RecordChain, redact=None, progress=None):
        self._settings = settings
        self._chain = chain
        self._redact = redact  # PiiScanner for rejected records, or None
        self._progress = progress  # a local run's ProgressWriter, or None
        self._file_index = {url: index for index, url in enumerate(settings.files)}
        self._counters = StageCounters("ProcessUnits")
        self._watch = FailFast(settings.limits)
        self._source_name: str | None = None  # the unit being read's source (input.sources)

    def _unit_file(self, unit: ReadUnit) -> str:
        return FileSystems.join(self._settings.temp_dir, unit_file_name(self._file_index[unit.url], unit.first_row))

    def reused(self, unit: ReadUnit) -> UnitResult | None:
        """The result an interrupted run saved for this very unit (``--resume``), or None."""
        result = reusable_result(unit, self._unit_file(unit) + UNIT_DONE_SUFFIX)
        if result is not None:
            LOGGER.info("reusing %s, completed by the interrupted run", result.done)
            if self._progress is not None:
                self._progress.done(unit.url, sum(result.stats.rows_per_file.values()))
        return result

    def process(self, unit: ReadUnit) -> UnitResult:
        settings = self._settings
        file = self._file_index[unit.url]
        self._source_name = settings.source_names[file] if settings.source_names else None
        spools = _Spools(settings.keep_sizes)
        stats = StatsAccumulator()
        samples: dict[str, list[dict]] = defaultdict(list)
        batch: list[Item] = []
        end_row = unit.first_row
        reported = 0  # rows of this unit reported to the progress line so far
        read = rejected = 0  # rows read (and rejected by the reader) since the counts were last added

        def count() -> None:
            # Counted a batch at a time: a metric or counter update per row is a cost per row.
            nonlocal read, rejected
            if read:
                stats.add_read(unit.url, read)
                self._counters.total.inc(read)
                self._counters.rejected.inc(rejected)
                self._counters.kept.inc(read - rejected)
            read = rejected = 0

        for record in read_unit(unit, settings.columns, settings.csv, settings.limits.max_field_chars):
            if isinstance(record, FailedFile):
                if settings.on_bad_file == "fail":
                    raise BadInputFile(f"cannot read {record.path}: {record.error}")
                LOGGER.warning("skipping the rest of %s: %s", record.path, record.error)
                stats.add_failed(record.path, record.error)
                continue
            read += 1
            end_row = record.source.row + 1
            if isinstance(record, Rejected):
                rejected += 1
                self._rejected([record], spools, stats, samples)
                continue
            batch.append(record)
            # While the first rows decide whether the run goes on, they are processed a few at a
            # time: a batch of 1,024 rows that each take the render budget would take half an hour.
            if len(batch) >= (min(self._watch.rows, settings.batch_rows) if self._watch.deciding else settings.batch_rows):
                count()
                self._batch(batch, file, spools, stats, samples)
                batch = []
                if self._progress is not None:
                    total = sum(stats.rows_per_file.values())
                    self._progress.reading(unit.url, total - reported)
                    reported = total
        count()
        if batch:
            self._batch(batch, file, spools, stats, samples)
        name = self._unit_file(unit)
        path, sections, sizes = spools.save(name)
        # As JSON would give them back: a resumed unit's samples are the same as a fresh one's.
        chosen = [(code, orjson.loads(dumps_line(doc))) for code, docs in sorted(samples.items()) for doc in docs]
        if self._progress is not None:
            self._progress.done(unit.url, sum(stats.rows_per_file.values()) - reported)
        result = UnitResult(file, unit.first_row, end_row, path, sections, stats, chosen, sizes, spools.row_numbers(),
                            spools.row_type, name + UNIT_DONE_SUFFIX)
        # Written last, once the unit's file is whole: what --resume trusts.
        write_bytes(result.done, result.to_json(unit))
        return result

    def _batch(self, batch: list[Item], file: int, spools: _Spools, stats: StatsAccumulator, samples) -> None:
        kept, left = self._chain.run(batch)
        self._watch.kept(len(batch) - len(left.get(REJECTED, ())))
        self._rejected(left.pop(REJECTED, []), spools, stats, samples)
        for found in left.pop(PII_OUTPUT, []):
            stats.add_pii(found)
        for reason in sorted(left):
            dropped: list[Dropped] = left[reason]
            spools.lines(dropped_section(reason), [dumps_line(self._named(d.to_json())) for d in dropped])
            stats.add_dropped(reason, len(dropped))
            for d in dropped:
                if d.contaminated_by is not None:
                    stats.add_contaminated(d.contaminated_by["eval"])
        settings = self._settings
        for split in SPLITS:
            items = [item for item in kept if item.split == split]
            if not items:
                continue
            examples = [item.example if item.target_row is None else item.target_row for item in items]
            if settings.row_types:
                spools.row_type = merge(spools.row_type or "null", row_type(examples))
            lines = [dumps_line(example) for example in examples]
            spools.lines(split, lines)
            messages = [message_count(item.example, settings.format) for item in items]
            entries = [index_entry(item, len(line) + 1, n) for item, line, n in zip(items, lines, messages)]
            for item, n in zip(items, messages):  # counted now; dedup takes back the ones it drops (shards.py)
                stats.add_kept(KeptExample.of(item.split, item.tokens, item.warnings, n, settings.max_tokens))
            spools.write(rows_section(split), np.array([item.source.row for item in items], dtype=np.uint64).tobytes(),
                         len(items))
            spools.write(index_section(split), b"".join(entries), len(items), [len(entry) for entry in entries])
            if spools.keep_sizes:
                spools.rows[split].extend(item.source.row for item in items)
            if settings.mix_sections:
                spools.write(mix_section(split), mix_records(items), len(items))
            if settings.pack_sections:
                spools.write(lengths_section(split), np.array([len(example["input_ids"]) for example in examples],
                                                              dtype=np.uint32).tobytes(), len(items))
                spools.write(sizes_section(split), np.array([len(line) + 1 for line in lines],
                                                            dtype=np.uint32).tobytes(), len(items))
        if settings.dedup.enabled:  # exact dedup's keys, and the run's dedup index's
            for partition, data in exact_records(kept, file).items():
                spools.write(exact_section(partition), data, len(data) // EXACT_RECORD.itemsize)
        if settings.dedup.near is not None:
            first_slot = spools.records(SIGNATURE_SECTION)
            by_partition, signatures = near_records(kept, file, first_slot)
            for partition, data in by_partition.items():
                spools.write(near_section(partition), data, len(data) // NEAR_RECORD.itemsize)
            checked = sum(1 for item in kept if item.bands and item.signature is not None)
            spools.write(SIGNATURE_SECTION, signatures, checked)

    def _named(self, doc: dict) -> dict:
        """``doc`` with its source's name (input.sources) in its ``source``."""
        if self._source_name is not None:
            doc["source"]["name"] = self._source_name
        return doc

    def _rejected(self, rejected: list[Rejected], spools: _Spools, stats: StatsAccumulator, samples) -> None:
        lines = []
        for record in rejected:
            doc = self._named(record.to_json())
            if self._redact is not None:
                # Rows rejected before the PII step (a ragged CSV row, a broken line) still hold their values.
                doc, found = redact_document(self._redact, doc)
                if found:
                    stats.add_pii(found)
            stats.add_rejected(record.codes)
            for code in record.codes:
                if len(samples[code]) < SAMPLES_PER_CODE:
                    samples[code].append(small_rejected(doc))
            lines.append(dumps_line(doc))
            self._watch.rejected(record.codes, doc)
        spools.lines(REJECTED_DIR, lines)
        self._watch.check()


class _ProcessUnitFn(beam.DoFn):
    def __init__(self, settings: UnitSettings, stages: list, pii: PiiSpec | None = None, progress=None):
        self._settings = settings
        self._stages = stages  # BatchDoFns, in order
        self._pii = pii
        self._progress = progress
        self._chain: RecordChain | None = None
        self._processor: UnitProcessor | None = None

    def setup(self):
        chain = RecordChain(self._stages)
        chain.setup()
        redact = scanner_for(self._pii, self._settings.limits) if self._pii is not None else None
        self._chain = chain
        self._processor = UnitProcessor(self._settings, chain, redact, self._progress)

    def teardown(self):
        if self._chain is not None:
            self._chain.teardown()

    def process(self, unit: ReadUnit) -> Iterator[UnitResult]:
        reused = self._processor.reused(unit) if self._settings.resume else None
        if reused is not None:
            yield reused
            return
        if unit.error is None:
            LOGGER.info("reading %s%s", unit.url, "" if unit.row_group is None else f" row group {unit.row_group}")
        yield self._processor.process(unit)


class ProcessUnits(beam.PTransform):
    """Read units in, ``UnitResult``s out (see the module docstring). ``stages`` are the
    per-record chain's ``BatchDoFn``s, in order; ``pii`` (the recipe's) redacts rejected records;
    ``progress``: where a local run's workers report (``done(url, rows)``), or None."""

    def __init__(self, *, settings: UnitSettings, stages: list, pii: PiiSpec | None = None, progress=None):
        super().__init__()
        if settings.on_bad_file not in ("fail", "skip"):
            raise ValueError(f"on_bad_file must be fail or skip, got {settings.on_bad_file!r}")
        self._fn = _ProcessUnitFn(settings, stages, pii, progress)

    def expand(self, units):
        return units | "Process" >> beam.ParDo(self._fn)
