"""What every format's reader shares: the read unit, the reader interface and the row checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator

from schemas.recipe import LimitsSpec
from schemas.records import FIELD_TOO_LARGE, Item, Rejected, Rejection, Source
from transforms.pii import QUOTE_MARGIN, quoted_names, redacted_quote

# limits.max_field_chars when a caller has no recipe (inspect, tests).
DEFAULT_MAX_FIELD_CHARS = LimitsSpec().max_field_chars
# Rejected rows keep this much of a value over the limit (rejected/ must not hold 50 MB cells).
PREVIEW_CHARS = 200


class InputError(ValueError):
    """The inputs cannot be read as asked; the message says what to fix."""


class MissingColumns(ValueError):
    pass


class BadInputFile(RuntimeError):
    """Raised on a worker under ``on_bad_file: fail``; the CLI shows its message as the run's error."""


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
    # ... and this many rows of the first batch read (a slice of a small row group starts mid-batch).
    rows_to_skip: int = 0
    rows: int | None = None
    # A byte range of an uncompressed JSONL file, starting at a line start ([start, end)).
    byte_start: int = 0
    byte_end: int | None = None
    # Set when the file could not even be planned: the reader reports it as a failed file, so
    # that every failure leaves from the read stage (see registry.read_unit).
    error: str | None = None


class Reader:
    """One input format. ``columns``: the column names, from the file's head or footer (cheap);
    ``plan``: the file's read units (``required``: columns the recipe uses, that a file with a
    header must have); ``read``: one unit's rows, kept (``Item``) or rejected one by one."""

    format: ClassVar[str]

    def columns(self, url: str) -> list[str]:
        raise NotImplementedError

    def plan(self, url: str, required: frozenset[str] | None = None) -> list[ReadUnit]:
        return [ReadUnit(url, self.format)]

    def read(self, unit: ReadUnit, columns: frozenset[str] | None) -> Iterator[Item | Rejected]:
        raise NotImplementedError


def require_columns(present: list[str], required: frozenset[str] | None) -> None:
    missing = sorted((required or frozenset()) - set(present))
    if missing:
        raise MissingColumns(f"it has no column(s) {quoted_names(missing)} (its columns: {quoted_names(present)})")


def project(row: dict, columns: frozenset[str] | None) -> dict:
    if columns is None:
        return row
    return {k: v for k, v in row.items() if k in columns}


def strip_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def strip_bom_bytes(line: bytes) -> bytes:
    return line[3:] if line.startswith(b"\xef\xbb\xbf") else line


def iter_lines(f, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Lines of a binary stream, read in chunks: decompressing streams (zstd) cannot readline().
    ``read1`` where the stream has it: a buffered ``read`` that meets the break of a cut gzip
    raises and loses everything it had decompressed for the call, up to a megabyte of rows."""
    pending = b""
    read = getattr(f, "read1", f.read)
    while chunk := read(chunk_size):
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        yield from (line + b"\n" for line in lines)
    if pending:
        yield pending


def preview(value: str | bytes, unit: str = "characters") -> str:
    """An over-long value as rejected/ keeps it: its start, redacted before it is cut, and its size."""
    # Bytes: enough of them for the characters the redaction looks at, however they are encoded.
    text = value if isinstance(value, str) else value[: (PREVIEW_CHARS + QUOTE_MARGIN) * 4].decode(
        "utf-8", errors="replace")
    return f"{redacted_quote(text, PREVIEW_CHARS)} [{len(value):,} {unit}]"


def oversized(source: Source, row: dict, limit: int) -> Rejected | None:
    """A ``field_too_large`` rejection if a value of ``row`` is longer than ``limit``."""
    big = [name for name, value in row.items() if isinstance(value, (str, bytes)) and len(value) > limit]
    if not big:
        return None
    sizes = ", ".join(f"{name} has {len(row[name]):,}" for name in big)
    return Rejected(source, [Rejection(FIELD_TOO_LARGE, f"{sizes} characters; limits.max_field_chars is {limit:,}")],
                    {name: preview(value) if isinstance(value, (str, bytes)) and len(value) > PREVIEW_CHARS else value
                     for name, value in row.items()})
