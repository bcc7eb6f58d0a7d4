"""Cheap looks at a file the launcher takes before the run: its columns, whether it can be
JSONL at all, its first JSON object (to detect the example format)."""

from __future__ import annotations

import fsspec
import orjson

from schemas.recipe import CsvOptions
from transforms.pii import redacted_quote
from transforms.readers.base import iter_lines, strip_bom_bytes
from transforms.readers.registry import reader_for

# Leading bytes of formats that are sometimes handed over as JSONL by mistake.
_MAGIC = {b"PAR1": "a Parquet file", b"PK\x03\x04": "a ZIP archive (xlsx?)", b"\x1f\x8b": "gzip data with no .gz suffix",
          b"\x28\xb5\x2f\xfd": "zstd data with no .zst suffix", b"SQLite format 3": "an SQLite database"}


def peek_columns(url: str, fmt: str, csv: CsvOptions = CsvOptions()) -> list[str]:
    """The column names a template can use, read cheaply from the file's head or footer."""
    return reader_for(fmt, csv=csv).columns(url)


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
        quote = redacted_quote(first_line[:4096].decode("utf-8", errors="replace"), 40)
        return f"its first line starts with {quote!r}, not a JSON value"
    if first_line in (b"[", b"{"):
        return "it looks like one pretty-printed JSON document, not one JSON object per line"
    return None


def json_objects(url: str, max_lines: int = 100):
    """The lines among the first ``max_lines`` of a JSONL file that parse as JSON, parsed (a
    broken line is skipped: the run rejects it as invalid_json)."""
    with fsspec.open(url, "rb", compression="infer") as f:
        for index, line in enumerate(iter_lines(f)):
            if index >= max_lines:
                break
            try:
                yield orjson.loads(strip_bom_bytes(line) if index == 0 else line)
            except orjson.JSONDecodeError:
                continue


def first_json_object(url: str, max_lines: int = 100):
    """The first line of a JSONL file that parses as JSON, or None."""
    return next(json_objects(url, max_lines), None)
