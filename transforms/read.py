"""Reading Parquet, CSV and JSONL shards through fsspec.

A file is planned into read units (one per Parquet row group, one per CSV/JSONL file) so
that one large Parquet file is spread over workers. Every record leaves the reader with
its provenance: the file's URL and the row's 0-based index within the file.
"""

from __future__ import annotations

import csv
import logging
import posixpath
import re
from dataclasses import dataclass
from typing import Iterable, Iterator

import apache_beam as beam
import fsspec
import orjson

from schemas.recipe import LimitsSpec
from schemas.records import (
    DATA_TYPE,
    DECODE_ERROR,
    FIELD_TOO_LARGE,
    INVALID_JSON,
    MALFORMED_ROW,
    FailedFile,
    Item,
    Rejected,
    Rejection,
    Source,
)
from transforms.progress import ProgressWriter


LOGGER = logging.getLogger(__name__)

COMPRESSION_SUFFIXES = (".gz", ".zst", ".bz2", ".xz")
FORMAT_BY_SUFFIX = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
PARQUET_BATCH_ROWS = 1024
# Rows per Parquet read unit; a multiple of PARQUET_BATCH_ROWS so that slices start on a batch.
UNIT_ROWS = 4 * PARQUET_BATCH_ROWS
# Bytes per JSONL read unit: one large file is read by every worker.
JSONL_RANGE_BYTES = 32 << 20
# The recipe's limits.max_field_chars when none is given.
DEFAULT_LIMITS = LimitsSpec()  # the recipe's defaults, for callers without a recipe (inspect, tests)
# Rejected rows keep this much of a value over the limit (rejected/ must not hold 50 MB cells).
PREVIEW_CHARS = 200

# csv refuses fields over 128 KiB by default; ftprep applies its own limit (field_too_large).
csv.field_size_limit(max(csv.field_size_limit(), (1 << 31) - 1))
# Undecodable bytes survive decoding as lone surrogates (errors="surrogateescape").
_SURROGATES = re.compile("[\udc80-\udcff]")


class InputError(ValueError):
    """The inputs cannot be read as asked; the message says what to fix."""


@dataclass(frozen=True)
class CsvDialect:
    delimiter: str = ","
    quotechar: str = '"'
    encoding: str = "utf-8"


@dataclass(frozen=True)
class ReadUnit:
    """A piece of one file that one worker reads: a slice of a Parquet row group, a byte range of
    an uncompressed JSONL file, or a whole text file."""

    url: str
    format: str
    row_group: int | None = None
    first_row: int = 0
    # A slice of the row group: ``batches_to_skip`` batches of PARQUET_BATCH_ROWS, then ``rows``.
    batches_to_skip: int = 0
    rows: int | None = None
    # A byte range of an uncompressed JSONL file, starting at a line start ([start, end)).
    byte_start: int = 0
    byte_end: int | None = None
    # Set when the file could not even be planned: the reader reports it as a failed file, so
    # that every failure leaves from the read stage (see UnitProcessor.process in transforms/units.py).
    error: str | None = None


def infer_format(url: str) -> str:
    name = url.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    for suffix, fmt in FORMAT_BY_SUFFIX.items():
        if name.endswith(suffix):
            return fmt
    raise InputError(
        f"cannot tell the format of {url!r} from its name; set input.format to parquet, csv or jsonl"
    )


def _is_hidden(path: str) -> bool:
    # Hadoop/Spark convention: _SUCCESS, _metadata, .part-0000.crc are not data.
    return posixpath.basename(path.rstrip("/")).startswith(("_", "."))


def expand_paths(patterns: Iterable[str]) -> list[str]:
    """Expand fsspec URLs, globs and directories into a sorted list of file URLs.

    A directory stands for every file below it. Hidden files (``_*``, ``.*``) are skipped.
    A pattern that matches no file is an error.
    """
    urls: set[str] = set()
    for pattern in patterns:
        fs, _, paths = fsspec.core.get_fs_token_paths(pattern)
        files = []
        for path in paths:
            files.extend(fs.find(path) if fs.isdir(path) else [path])
        files = [p for p in files if not _is_hidden(p)]
        if not files:
            raise InputError(f"input path {pattern!r} matches no files")
        urls.update(fs.unstrip_protocol(p) if "://" in pattern else p for p in files)
    return sorted(urls)


def open_text(url: str, dialect: CsvDialect):
    return fsspec.open(url, "rt", encoding=dialect.encoding, errors="surrogateescape", newline="", compression="infer")


def peek_columns(url: str, fmt: str, dialect: CsvDialect = CsvDialect()) -> list[str]:
    """The column names a template can use, read cheaply from the file's head or footer."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with fsspec.open(url, "rb") as f:
            return list(pq.ParquetFile(f).schema_arrow.names)
    if fmt == "csv":
        with open_text(url, dialect) as f:
            header = next(csv.reader(f, delimiter=dialect.delimiter, quotechar=dialect.quotechar), [])
            return [strip_bom(name) for name in header[:1]] + header[1:]
    with fsspec.open(url, "rb", compression="infer") as f:
        for line in iter_lines(f):
            if line.strip():
                try:
                    first = orjson.loads(strip_bom_bytes(line))
                except orjson.JSONDecodeError:
                    return []
                return list(first) if isinstance(first, dict) else []
    return []


# Leading bytes of formats that are sometimes handed over as JSONL by mistake.
_MAGIC = {b"PAR1": "a Parquet file", b"PK\x03\x04": "a ZIP archive (xlsx?)", b"\x1f\x8b": "gzip data with no .gz suffix",
          b"\x28\xb5\x2f\xfd": "zstd data with no .zst suffix", b"SQLite format 3": "an SQLite database"}


def not_jsonl_reason(url: str, head_bytes: int = 4096) -> str | None:
    """Why the file cannot be JSONL, judged from its first bytes; None if it may well be."""
    with fsspec.open(url, "rb", compression="infer") as f:
        head = f.read(head_bytes)
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            return f"it starts like {what}"
    text = strip_bom_bytes(head).lstrip()
    if not text:
        return None
    first_line = text.splitlines()[0].strip()
    if text[:1] not in b"{[\"":
        return f"its first line starts with {first_line[:40]!r}, not a JSON value"
    if first_line in (b"[", b"{"):
        return "it looks like one pretty-printed JSON document, not one JSON object per line"
    return None


def first_json_object(url: str, max_lines: int = 100):
    """The first line of a JSONL file that parses as JSON, or None."""
    with fsspec.open(url, "rb", compression="infer") as f:
        for index, line in enumerate(iter_lines(f)):
            if index >= max_lines:
                break
            try:
                return orjson.loads(strip_bom_bytes(line) if index == 0 else line)
            except orjson.JSONDecodeError:
                continue
    return None


def strip_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def strip_bom_bytes(line: bytes) -> bytes:
    return line[3:] if line.startswith(b"\xef\xbb\xbf") else line


def _is_compressed(url: str) -> bool:
    return url.lower().endswith(COMPRESSION_SUFFIXES)


def plan_jsonl_ranges(url: str, range_bytes: int) -> list[ReadUnit]:
    """Cut an uncompressed JSONL file into byte ranges of about ``range_bytes`` that start at line
    starts, each with the index of its first line (one scan counting newlines: cheap next to parsing)."""
    fs, path = fsspec.core.url_to_fs(url)
    size = fs.size(path)
    if size <= range_bytes:
        return [ReadUnit(url, "jsonl")]
    starts, rows_before = [0], [0]
    lines, position, target = 0, 0, range_bytes
    with fs.open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            while target < position + len(chunk):
                newline = chunk.find(b"\n", max(0, target - position))
                if newline < 0:
                    break
                starts.append(position + newline + 1)
                rows_before.append(lines + chunk.count(b"\n", 0, newline + 1))
                target = starts[-1] + range_bytes
            lines += chunk.count(b"\n")
            position += len(chunk)
    ends = starts[1:] + [None]
    return [
        ReadUnit(url, "jsonl", first_row=first, byte_start=start, byte_end=end)
        for start, end, first in zip(starts, ends, rows_before)
        if end is None or start < end
    ]


class MissingColumns(ValueError):
    pass


def _check_columns(present: list[str], required: frozenset[str] | None) -> None:
    missing = sorted((required or frozenset()) - set(present))
    if missing:
        raise MissingColumns(f"it has no column(s) {', '.join(missing)} (its columns: {', '.join(present)})")


def plan_units(
    url: str, fmt: str, required: frozenset[str] | None = None, dialect: CsvDialect = CsvDialect()
) -> list[ReadUnit]:
    """Read units of one file. ``required``: columns the recipe uses; a Parquet or CSV file
    without one of them cannot be read as asked (JSONL rows are checked one by one)."""
    if fmt == "jsonl" and not _is_compressed(url):
        return plan_jsonl_ranges(url, JSONL_RANGE_BYTES)
    if fmt == "csv":
        header = peek_columns(url, fmt, dialect) if required else []
        if header:  # an empty file has no header and no rows: nothing is missing from it
            _check_columns(header, required)
        return [ReadUnit(url, fmt)]
    if fmt != "parquet":
        return [ReadUnit(url, fmt)]
    import pyarrow.parquet as pq

    with fsspec.open(url, "rb") as f:
        parquet = pq.ParquetFile(f)
        metadata = parquet.metadata
        _check_columns(parquet.schema_arrow.names, required)
    units, first_row = [], 0
    for index in range(metadata.num_row_groups):
        rows = metadata.row_group(index).num_rows
        # Large row groups are cut into slices so that work spreads evenly over the workers
        # (runners hand out units by count, not by size). A slice decodes and skips the
        # batches before it: cheap next to tokenising them.
        for start in range(0, max(rows, 1), UNIT_ROWS):
            units.append(
                ReadUnit(url, fmt, row_group=index, first_row=first_row + start,
                         batches_to_skip=start // PARQUET_BATCH_ROWS, rows=min(UNIT_ROWS, rows - start))
            )
        first_row += rows
    return units


def _project(row: dict, columns: frozenset[str] | None) -> dict:
    if columns is None:
        return row
    return {k: v for k, v in row.items() if k in columns}


def _with_nulls(row: dict, columns: frozenset[str]) -> dict:
    """``row`` limited to ``columns``, a key it leaves out null (as in Parquet and CSV). Keys keep
    the row's order, absent ones follow sorted: never a set's order, which differs by process."""
    projected = {k: v for k, v in row.items() if k in columns}
    for name in sorted(columns - projected.keys()):
        projected[name] = None
    return projected


def _preview(value):
    if isinstance(value, (str, bytes)) and len(value) > PREVIEW_CHARS:
        return f"{value[:PREVIEW_CHARS]!s}… [{len(value):,} characters]"
    return value


def oversized(source: Source, row: dict, limit: int) -> Rejected | None:
    """A ``field_too_large`` rejection if a value of ``row`` is longer than ``limit``."""
    big = [name for name, value in row.items() if isinstance(value, (str, bytes)) and len(value) > limit]
    if not big:
        return None
    sizes = ", ".join(f"{name} has {len(row[name]):,}" for name in big)
    return Rejected(source, [Rejection(FIELD_TOO_LARGE, f"{sizes} characters; limits.max_field_chars is {limit:,}")],
                    {name: _preview(value) for name, value in row.items()})


def read_parquet_unit(unit: ReadUnit, columns: frozenset[str] | None) -> Iterator[Item]:
    import pyarrow.parquet as pq

    with fsspec.open(unit.url, "rb") as f:
        parquet = pq.ParquetFile(f)
        present = parquet.schema_arrow.names
        wanted = present if columns is None else [c for c in present if c in columns]
        row, end = unit.first_row, None if unit.rows is None else unit.first_row + unit.rows
        batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=[unit.row_group], columns=wanted)
        for index, batch in enumerate(batches):
            if index < unit.batches_to_skip:
                continue
            for values in batch.to_pylist():
                if end is not None and row >= end:
                    return
                yield Item(Source(unit.url, row), values)
                row += 1


def _csv_rows(reader) -> Iterator[list[str] | csv.Error]:
    """The reader's rows; a row the csv module refuses (an unterminated quote, say) comes out as
    its error, and reading goes on after it."""
    stuck_at = None
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            if reader.line_num == stuck_at:  # no progress: the rest of the file is unreadable
                raise
            stuck_at = reader.line_num
            yield error


def read_csv_unit(
    unit: ReadUnit, columns: frozenset[str] | None, dialect: CsvDialect
) -> Iterator[Item | Rejected]:
    with open_text(unit.url, dialect) as f:
        reader = csv.reader(f, delimiter=dialect.delimiter, quotechar=dialect.quotechar, strict=True)
        header = next(reader, None)
        if header is None:
            return
        header = [_SURROGATES.sub("\ufffd", name) for name in (strip_bom(header[0]), *header[1:])]
        row = 0
        for fields in _csv_rows(reader):
            if not fields:  # a blank line is not a row
                continue
            source = Source(unit.url, row)
            row += 1
            if isinstance(fields, csv.Error):
                yield Rejected(source, [Rejection(MALFORMED_ROW, f"line {reader.line_num}: {fields}")], None)
                continue
            if _SURROGATES.search("".join(fields)):
                yield Rejected(
                    source,
                    [Rejection(DECODE_ERROR, f"line {reader.line_num}: bytes that are not {dialect.encoding} "
                                             "(shown as \ufffd); set input.csv.encoding if the file has another")],
                    [_SURROGATES.sub("\ufffd", value) for value in fields],
                )
                continue
            if len(fields) != len(header):
                yield Rejected(
                    source,
                    [
                        Rejection(
                            MALFORMED_ROW,
                            f"line {reader.line_num}: {len(fields)} fields where the header has {len(header)}",
                        )
                    ],
                    fields,
                )
                continue
            yield Item(source, _project(dict(zip(header, fields)), columns))


def iter_lines(f, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Lines of a binary stream, read in chunks: decompressing streams (zstd) cannot readline()."""
    pending = b""
    while chunk := f.read(chunk_size):
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        yield from (line + b"\n" for line in lines)
    if pending:
        yield pending


def _range_lines(f, start: int, end: int | None) -> Iterator[bytes]:
    f.seek(start)
    remaining = None if end is None else end - start
    for line in iter_lines(f):
        if remaining is not None:
            if remaining <= 0:
                return
            remaining -= len(line)
        yield line


def read_jsonl_unit(
    unit: ReadUnit, columns: frozenset[str] | None, max_field_chars: int = DEFAULT_LIMITS.max_field_chars
) -> Iterator[Item | Rejected]:
    with fsspec.open(unit.url, "rb", compression="infer") as f:
        lines = _range_lines(f, unit.byte_start, unit.byte_end) if unit.byte_start or unit.byte_end else iter_lines(f)
        for row, line in enumerate(lines, start=unit.first_row):
            if row == 0:
                line = strip_bom_bytes(line)
            if not line.strip():
                continue
            source = Source(unit.url, row)
            if len(line) > max_field_chars:  # not parsed: a 50 MB line would cost more than it is worth
                text = line[:PREVIEW_CHARS].decode("utf-8", errors="replace")
                message = f"line {row + 1} has {len(line):,} bytes; limits.max_field_chars is {max_field_chars:,}"
                yield Rejected(source, [Rejection(FIELD_TOO_LARGE, message)], f"{text}… [{len(line):,} bytes]")
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as bad:
                    yield Rejected(source, [Rejection(DECODE_ERROR, f"line {row + 1}: not UTF-8: {bad}")], text)
                    continue
                yield Rejected(source, [Rejection(INVALID_JSON, f"line {row + 1}: {error}")], text)
                continue
            if not isinstance(value, dict):
                message = f"line {row + 1}: expected a JSON object, got {type(value).__name__}"
                yield Rejected(source, [Rejection(DATA_TYPE, message)], value)
                continue
            yield Item(source, value if columns is None else _with_nulls(value, columns))


def read_unit(
    unit: ReadUnit, columns: frozenset[str] | None, dialect: CsvDialect = CsvDialect(),
    max_field_chars: int = DEFAULT_LIMITS.max_field_chars,
) -> Iterator[Item | Rejected | FailedFile]:
    """Yield the unit's rows (kept or rejected one by one); a file that breaks off mid-read ends
    in a ``FailedFile`` after the rows read before the break."""
    if unit.error is not None:
        yield FailedFile(unit.url, unit.error)
        return
    last_row = unit.first_row - 1
    try:
        if unit.format == "parquet":
            rows = read_parquet_unit(unit, columns)
        elif unit.format == "csv":
            rows = read_csv_unit(unit, columns, dialect)
        else:
            rows = read_jsonl_unit(unit, columns, max_field_chars)
        for record in rows:
            last_row = record.source.row
            if isinstance(record, Item):
                record = oversized(record.source, record.row, max_field_chars) or record
            yield record
    except Exception as error:  # noqa: BLE001 - whatever breaks a read (ArrowInvalid on a truncated
        # file, EOFError from a cut gzip, a zstd error) is this file's failure, not the run's crash
        message = f"{type(error).__name__}: {error} (after row {last_row}"
        message += f", in row group {unit.row_group})" if unit.row_group is not None else ")"
        yield FailedFile(unit.url, message)


def plan_file(url: str, fmt: str, required: frozenset[str] | None, dialect: CsvDialect,
              known_bad: dict[str, str] | None = None) -> list[ReadUnit]:
    """``plan_units``, with a file that cannot be planned (or that the launcher already found bad:
    ``known_bad``, url -> cause) as one unit carrying the cause: reading it yields the
    ``FailedFile`` (see ``read_unit``)."""
    if known_bad and url in known_bad:
        return [ReadUnit(url, fmt, error=known_bad[url])]
    try:
        return plan_units(url, fmt, required, dialect)
    except Exception as error:  # noqa: BLE001 - whatever a corrupt or cut file raises
        cause = str(error) if isinstance(error, MissingColumns) else f"{type(error).__name__}: {error}"
        return [ReadUnit(url, fmt, error=cause)]


class BadInputFile(RuntimeError):
    """Raised on a worker under ``on_bad_file: fail``; the CLI shows its message as the run's error."""


class _PlanUnitsFn(beam.DoFn):
    def __init__(self, fmt: str | None, required: frozenset[str] | None, dialect: CsvDialect, progress_dir: str | None,
                 bad_files: dict[str, str]):
        self._format = fmt
        self._required = required
        self._dialect = dialect
        self._progress_dir = progress_dir
        self._bad_files = bad_files  # found before the run; read as failed files
        self._progress: ProgressWriter | None = None

    def setup(self):
        if self._progress_dir:
            self._progress = ProgressWriter(self._progress_dir)

    def process(self, url: str):
        fmt = self._format or infer_format(url)
        units = plan_file(url, fmt, self._required, self._dialect, self._bad_files)
        if self._progress is not None:
            self._progress.planned(url, len(units))
        yield from units


class PlanUnits(beam.PTransform):
    """File URLs in (from the launcher's list), read units out, spread over the workers: a file
    that cannot be planned is one unit that fails when read (``plan_file``). ``columns``
    limits what is read (None reads all) and is required of every Parquet and CSV file."""

    def __init__(
        self,
        *,
        urls: list[str],
        format: str | None = None,
        columns: Iterable[str] | None = None,
        csv_dialect: CsvDialect = CsvDialect(),
        progress_dir: str | None = None,
        bad_files: dict[str, str] | None = None,
    ):
        super().__init__()
        if not urls:
            raise InputError("no input files to read")
        if format is not None and format not in ("parquet", "csv", "jsonl"):
            raise InputError(f"unknown input format {format!r}; use parquet, csv or jsonl")
        if format is None:
            for url in urls:
                infer_format(url)  # fail now, not on a worker
        self._urls = list(urls)
        self._format = format
        self._columns = None if columns is None else frozenset(columns)
        self._dialect = csv_dialect
        self._progress_dir = progress_dir
        self._bad_files = dict(bad_files or {})

    def expand(self, pbegin):
        return (
            pbegin
            # Create reshuffles only when it holds more than one element, which would make the step
            # names depend on the number of inputs; an explicit Reshuffle keeps them stable.
            | "ListFiles" >> beam.Create(self._urls, reshuffle=False)
            | "SpreadFiles" >> beam.Reshuffle()
            # A file that cannot be planned becomes a unit that fails when read: every failure
            # leaves from one stage.
            | "PlanUnits" >> beam.ParDo(_PlanUnitsFn(self._format, self._columns, self._dialect, self._progress_dir, self._bad_files))
            # Load-bearing: without it the read fuses with Create and one worker reads every file.
            | "SpreadUnits" >> beam.Reshuffle()
        )
