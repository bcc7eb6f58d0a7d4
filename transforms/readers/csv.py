"""CSV: one read unit per file (a quoted field may hold newlines, so a file cannot be cut by bytes).

A row the csv module refuses, a row with the wrong number of fields and a row with bytes that
are not the file's encoding are each rejected with their line number; reading goes on after them.
"""

from __future__ import annotations

import csv
import re
from typing import Iterator

import fsspec

from schemas.recipe import CsvOptions
from schemas.records import DECODE_ERROR, MALFORMED_ROW, Item, Rejected, Rejection, Source
from transforms.readers.base import ReadUnit, Reader, project, require_columns, strip_bom

# csv refuses fields over 128 KiB by default; ftprep applies its own limit (field_too_large).
csv.field_size_limit(max(csv.field_size_limit(), (1 << 31) - 1))
# Undecodable bytes survive decoding as lone surrogates (errors="surrogateescape").
_SURROGATES = re.compile("[\udc80-\udcff]")


def open_text(url: str, options: CsvOptions):
    return fsspec.open(url, "rt", encoding=options.encoding, errors="surrogateescape", newline="", compression="infer")


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


class CsvReader(Reader):
    format = "csv"

    def __init__(self, options: CsvOptions = CsvOptions()):
        self._options = options

    def columns(self, url: str) -> list[str]:
        options = self._options
        with open_text(url, options) as f:
            header = next(csv.reader(f, delimiter=options.delimiter, quotechar=options.quotechar), [])
            return [strip_bom(name) for name in header[:1]] + header[1:]

    def plan(self, url: str, required: frozenset[str] | None = None) -> list[ReadUnit]:
        header = self.columns(url) if required else []
        if header:  # an empty file has no header and no rows: nothing is missing from it
            require_columns(header, required)
        return [ReadUnit(url, self.format)]

    def read(self, unit: ReadUnit, columns: frozenset[str] | None) -> Iterator[Item | Rejected]:
        options = self._options
        with open_text(unit.url, options) as f:
            reader = csv.reader(f, delimiter=options.delimiter, quotechar=options.quotechar, strict=True)
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
                    message = (f"line {reader.line_num}: bytes that are not {options.encoding} (shown as \ufffd); "
                               "set input.csv.encoding if the file has another")
                    yield Rejected(source, [Rejection(DECODE_ERROR, message)],
                                   [_SURROGATES.sub("\ufffd", value) for value in fields])
                    continue
                if len(fields) != len(header):
                    message = f"line {reader.line_num}: {len(fields)} fields where the header has {len(header)}"
                    yield Rejected(source, [Rejection(MALFORMED_ROW, message)], fields)
                    continue
                yield Item(source, project(dict(zip(header, fields)), columns))
