"""``ftprep inspect``: what is in the input files, before writing a recipe for them.

For each file: its format, row count (Parquet: from the footer, without reading the data;
CSV/JSONL: counted, up to COUNT_LIMIT_BYTES of file), and per column its type, nulls (a run's
``null_field``) and empty or blank strings (a run's ``missing_content``, for a message) among
the sampled rows and a few sample values; then the column names a template can use.
"""

from __future__ import annotations

import csv
import itertools
import json
from typing import Any, Iterable

import fsspec
import orjson

from schemas.recipe import CsvOptions
from transforms.readers.base import InputError, iter_lines, strip_bom, strip_bom_bytes
from transforms.readers.csv import open_text
from transforms.readers.paths import expand_paths, infer_format

# CSV and JSONL rows are counted by reading the file; past this size the count is skipped.
COUNT_LIMIT_BYTES = 256 << 20
SAMPLE_ROWS = 1000  # rows read to type the columns and count nulls
VALUE_CHARS = 40


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\n", "⏎")
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def _json_type(values: Iterable[Any]) -> str:
    kinds = {type(v).__name__ for v in values if v is not None}
    names = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "list": "list", "dict": "object"}
    return " | ".join(sorted(names.get(k, k) for k in kinds)) or "null"


def _size(url: str) -> int | None:
    try:
        fs, path = fsspec.core.url_to_fs(url)
        return fs.size(path)
    except Exception:  # noqa: BLE001 - the size only decides whether to count
        return None


def inspect_parquet(url: str, rows: int) -> dict:
    import pyarrow.parquet as pq

    with fsspec.open(url, "rb") as f:
        parquet = pq.ParquetFile(f)
        metadata, schema = parquet.metadata, parquet.schema_arrow
        sample = next(parquet.iter_batches(batch_size=SAMPLE_ROWS), None)
        records = sample.to_pylist() if sample is not None else []
    return {
        "rows": metadata.num_rows,
        "detail": f"{metadata.num_row_groups} row group(s)",
        "columns": [(field.name, str(field.type), [r.get(field.name) for r in records]) for field in schema],
        "samples": rows,
    }


def inspect_csv(url: str, rows: int, dialect: CsvOptions) -> dict:
    with open_text(url, dialect) as f:
        reader = csv.reader(f, delimiter=dialect.delimiter, quotechar=dialect.quotechar)
        header = next(reader, None) or []
        header = [strip_bom(header[0]), *header[1:]] if header else []
        records = [dict(zip(header, fields)) for fields in itertools.islice(reader, SAMPLE_ROWS)]
        count = None
        size = _size(url)
        if size is not None and size <= COUNT_LIMIT_BYTES:
            count = len(records) + sum(1 for fields in reader if fields)
    # An empty cell is an empty string, as the run reads it (its message is then missing_content),
    # not a null (null_field): inspect counts the two apart.
    columns = [(name, "string", [r.get(name) for r in records]) for name in header]
    return {"rows": count, "detail": f"header of {len(header)} column(s)", "columns": columns, "samples": rows}


def inspect_jsonl(url: str, rows: int) -> dict:
    records, broken, count = [], 0, 0
    size = _size(url)
    countable = size is not None and size <= COUNT_LIMIT_BYTES
    with fsspec.open(url, "rb", compression="infer") as f:
        for index, line in enumerate(iter_lines(f)):
            if not line.strip():
                continue
            count += 1
            if len(records) < SAMPLE_ROWS:
                try:
                    value = orjson.loads(strip_bom_bytes(line) if index == 0 else line)
                except orjson.JSONDecodeError:
                    broken += 1
                    continue
                if isinstance(value, dict):
                    records.append(value)
                else:
                    broken += 1
            elif not countable:
                break
    names = list(dict.fromkeys(key for record in records for key in record))
    columns = [(name, _json_type(r.get(name) for r in records), [r.get(name) for r in records]) for name in names]
    detail = "keys of the first objects" + (f"; {broken} of the first lines are not JSON objects" if broken else "")
    return {"rows": count if countable else None, "detail": detail, "columns": columns, "samples": rows}


def inspect_file(url: str, fmt: str, rows: int, dialect: CsvOptions) -> dict:
    if fmt == "parquet":
        return inspect_parquet(url, rows)
    if fmt == "csv":
        return inspect_csv(url, rows, dialect)
    return inspect_jsonl(url, rows)


def _usable(name: str) -> bool:
    return name.isidentifier() and name not in ("loop", "self", "range", "dict", "namespace")


def inspect_lines(patterns: list[str], *, fmt: str | None = None, rows: int = 3,
                  delimiter: str = ",") -> tuple[list[str], list[str]]:
    """What ``ftprep inspect`` prints of each file, and the files that could not be read (their
    reasons are among the lines; the command fails once it has shown the others)."""
    try:
        files = expand_paths(patterns)
    except InputError as error:
        from beam_pipeline.errors import UsageError

        raise UsageError(str(error)) from None
    dialect = CsvOptions(delimiter=delimiter)
    lines: list[str] = []
    usable: dict[str, None] = {}
    unreadable: list[str] = []
    for url in files:
        try:
            kind = fmt or infer_format(url)
            info = inspect_file(url, kind, rows, dialect)
        except Exception as error:  # noqa: BLE001 - one unreadable file is reported, the others inspected
            lines += [f"{url}: cannot be read: {type(error).__name__}: {error}", ""]
            unreadable.append(url)
            continue
        count = "rows not counted (large file)" if info["rows"] is None else f"{info['rows']:,} rows"
        lines.append(f"{url}  [{kind}; {count}; {info['detail']}]")
        width = max([len(name) for name, _, _ in info["columns"]] + [6])
        type_width = max([len(t) for _, t, _ in info["columns"]] + [4])
        lines.append(f"  {'column':<{width}}  {'type':<{type_width}}  {'nulls':>9}  {'empty':>9}  samples")
        for name, column_type, values in info["columns"]:
            nulls = sum(v is None for v in values)
            empty = sum(isinstance(v, str) and not v.strip() for v in values)
            samples = ", ".join(_short(v) for v in values[:rows] if v not in (None, "")) or "—"
            lines.append(f"  {name:<{width}}  {column_type:<{type_width}}  {nulls:>4}/{len(values):<4}  "
                         f"{empty:>4}/{len(values):<4}  {samples}")
            usable[name] = None
        lines.append("")
    names = [n for n in usable if _usable(n)]
    others = [n for n in usable if not _usable(n)]
    lines.append("Columns a template can use: " + (", ".join(f"{{{{ {n} }}}}" for n in names) or "none"))
    if others:
        lines.append("Not usable as template names (rename the column): " + ", ".join(repr(n) for n in others))
    return lines, unreadable
