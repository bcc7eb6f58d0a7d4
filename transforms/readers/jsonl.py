"""JSONL: one read unit per byte range of an uncompressed file (cut at line starts), or per
compressed file. Each line is parsed on its own: a line that is not a JSON object is rejected
with its line number, and reading goes on."""

from __future__ import annotations

from typing import Iterator

import fsspec
import orjson

from schemas.records import DATA_TYPE, DECODE_ERROR, FIELD_TOO_LARGE, INVALID_JSON, Item, Rejected, Rejection, Source
from transforms.readers.base import DEFAULT_MAX_FIELD_CHARS, ReadUnit, Reader, iter_lines, preview, strip_bom_bytes
from transforms.readers.paths import is_compressed

# Bytes per read unit: one large file is read by every worker.
RANGE_BYTES = 32 << 20
# A file of fewer than this many ranges' bytes is still cut into this many (of at least
# MIN_RANGE_BYTES), so that a small input keeps every worker busy (as Parquet files are).
SMALL_FILE_UNITS = 8
MIN_RANGE_BYTES = 64 << 10


def range_bytes_for(size: int) -> int:
    return min(RANGE_BYTES, max(MIN_RANGE_BYTES, -(-size // SMALL_FILE_UNITS)))


def plan_ranges(url: str, range_bytes: int | None = None) -> list[ReadUnit]:
    """Cut an uncompressed JSONL file into byte ranges of about ``range_bytes`` (default: by the
    file's size, ``range_bytes_for``) that start at line starts, each with the index of its first
    line (one scan counting newlines: cheap next to parsing)."""
    fs, path = fsspec.core.url_to_fs(url)
    size = fs.size(path)
    range_bytes = range_bytes or range_bytes_for(size)
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


def _with_nulls(row: dict, columns: frozenset[str]) -> dict:
    """``row`` limited to ``columns``, a key it leaves out null (as in Parquet and CSV). Keys keep
    the row's order, absent ones follow sorted: never a set's order, which differs by process."""
    projected = {k: v for k, v in row.items() if k in columns}
    for name in sorted(columns - projected.keys()):
        projected[name] = None
    return projected


def _range_lines(f, start: int, end: int | None) -> Iterator[bytes]:
    f.seek(start)
    remaining = None if end is None else end - start
    for line in iter_lines(f):
        if remaining is not None:
            if remaining <= 0:
                return
            remaining -= len(line)
        yield line


def first_object(url: str) -> dict | None:
    """The first line that is a JSON object, if the first non-blank line is one."""
    with fsspec.open(url, "rb", compression="infer") as f:
        for line in iter_lines(f):
            if line.strip():
                try:
                    first = orjson.loads(strip_bom_bytes(line))
                except orjson.JSONDecodeError:
                    return None
                return first if isinstance(first, dict) else None
    return None


class JsonlReader(Reader):
    format = "jsonl"

    def __init__(self, max_field_chars: int = DEFAULT_MAX_FIELD_CHARS):
        self._max_field_chars = max_field_chars

    def columns(self, url: str) -> list[str]:
        first = first_object(url)
        return list(first) if first is not None else []

    def plan(self, url: str, required: frozenset[str] | None = None) -> list[ReadUnit]:
        # Rows are checked for the required columns one by one (a key a line leaves out is null).
        return [ReadUnit(url, self.format)] if is_compressed(url) else plan_ranges(url)

    def read(self, unit: ReadUnit, columns: frozenset[str] | None) -> Iterator[Item | Rejected]:
        limit = self._max_field_chars
        with fsspec.open(unit.url, "rb", compression="infer") as f:
            lines = _range_lines(f, unit.byte_start, unit.byte_end) if unit.byte_start or unit.byte_end else iter_lines(f)
            for row, line in enumerate(lines, start=unit.first_row):
                if row == 0:
                    line = strip_bom_bytes(line)
                if not line.strip():
                    continue
                source = Source(unit.url, row)
                if len(line) > limit:  # not parsed: a 50 MB line would cost more than it is worth
                    message = f"line {row + 1} has {len(line):,} bytes; limits.max_field_chars is {limit:,}"
                    yield Rejected(source, [Rejection(FIELD_TOO_LARGE, message)], preview(line, "bytes"))
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
