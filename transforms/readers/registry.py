"""A format's reader, and one unit read with the checks every format shares."""

from __future__ import annotations

from typing import Iterator

from schemas.recipe import CsvOptions
from schemas.records import FailedFile, Item, Rejected
from transforms.readers.base import DEFAULT_MAX_FIELD_CHARS, MissingColumns, ReadUnit, Reader, oversized
from transforms.readers.csv import CsvReader
from transforms.readers.jsonl import JsonlReader
from transforms.readers.parquet import ParquetReader

FORMATS = ("parquet", "csv", "jsonl")


def reader_for(fmt: str, *, csv: CsvOptions = CsvOptions(), max_field_chars: int = DEFAULT_MAX_FIELD_CHARS) -> Reader:
    if fmt == "parquet":
        return ParquetReader()
    if fmt == "csv":
        return CsvReader(csv)
    if fmt == "jsonl":
        return JsonlReader(max_field_chars)
    raise ValueError(f"unknown input format {fmt!r}; use {', '.join(FORMATS)}")


def read_unit(
    unit: ReadUnit, columns: frozenset[str] | None, csv: CsvOptions = CsvOptions(),
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS,
) -> Iterator[Item | Rejected | FailedFile]:
    """Yield the unit's rows (kept or rejected one by one); a file that breaks off mid-read ends
    in a ``FailedFile`` after the rows read before the break."""
    if unit.error is not None:
        yield FailedFile(unit.url, unit.error)
        return
    last_row = unit.first_row - 1
    try:
        for record in reader_for(unit.format, csv=csv, max_field_chars=max_field_chars).read(unit, columns):
            last_row = record.source.row
            if isinstance(record, Item):
                record = oversized(record.source, record.row, max_field_chars) or record
            yield record
    except Exception as error:  # noqa: BLE001 - whatever breaks a read (ArrowInvalid on a truncated
        # file, EOFError from a cut gzip, a zstd error) is this file's failure, not the run's crash
        message = f"{type(error).__name__}: {error} (after row {last_row}"
        message += f", in row group {unit.row_group})" if unit.row_group is not None else ")"
        yield FailedFile(unit.url, message)


def plan_file(url: str, fmt: str, required: frozenset[str] | None, csv: CsvOptions = CsvOptions(),
              known_bad: dict[str, str] | None = None) -> list[ReadUnit]:
    """The file's read units, with a file that cannot be planned (or that the launcher already
    found bad: ``known_bad``, url -> cause) as one unit carrying the cause: reading it yields the
    ``FailedFile`` (see ``read_unit``)."""
    if known_bad and url in known_bad:
        return [ReadUnit(url, fmt, error=known_bad[url])]
    try:
        return reader_for(fmt, csv=csv).plan(url, required)
    except Exception as error:  # noqa: BLE001 - whatever a corrupt or cut file raises
        cause = str(error) if isinstance(error, MissingColumns) else f"{type(error).__name__}: {error}"
        return [ReadUnit(url, fmt, error=cause)]
