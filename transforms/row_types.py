"""One Arrow schema for every Parquet shard of a run, found from the rows themselves.

Shards are written in parallel, each from its own rows; a shard whose rows happen to have no
tool calls must still have the column, or ``datasets.load_dataset`` refuses the mix. So pass 1
notes each unit's row type (``row_type``: the union of the keys every row has, down the
nesting), the types are merged over the run (``merge``) and every shard is written with the
Arrow schema of the merged type (``arrow_schema``). A message gets only the keys some message
of the run has: a chat template reading ``message.thinking`` must not find a null there unless
the data has thinking somewhere.

A type is ``"null"``, ``"string"``, ``"int64"``, ``"double"``, ``"bool"``, ``"json"`` (values
of no single type, written as JSON text), ``{"list": type}`` or ``{"struct": {key: type}}``.
``tools`` is always JSON text: function parameters are JSON Schemas of any shape, and a struct
of the union of every tool's properties would hand each tool the others' as nulls.
"""

from __future__ import annotations

from typing import Any, Iterable

import orjson
import pyarrow as pa

JSON = "json"
AS_JSON = frozenset({"tools"})  # top-level keys written as JSON text
_SCALARS = {str: "string", bool: "bool", int: "int64", float: "double"}
_ARROW = {"null": pa.string(), "string": pa.string(), "int64": pa.int64(), "double": pa.float64(),
          "bool": pa.bool_(), JSON: pa.string()}


def value_type(value: Any) -> Any:
    if value is None:
        return "null"
    scalar = _SCALARS.get(type(value))
    if scalar is not None:
        return scalar
    if isinstance(value, dict):
        return {"struct": {str(k): value_type(v) for k, v in value.items()}}
    if isinstance(value, list):
        if value and all(type(element) is int for element in value):  # token ids and masks: long, all int
            return {"list": "int64"}
        item: Any = "null"
        for element in value:
            item = merge(item, value_type(element))
        return {"list": item}
    return JSON


def merge(a: Any, b: Any) -> Any:
    if a == b or b == "null":
        return a
    if a == "null":
        return b
    if isinstance(a, str) and isinstance(b, str) and {a, b} == {"int64", "double"}:
        return "double"
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        if "list" in a:
            return {"list": merge(a["list"], b["list"])}
        fields = dict(a["struct"])
        for key, kind in b["struct"].items():
            fields[key] = merge(fields[key], kind) if key in fields else kind
        return {"struct": fields}
    return JSON


def row_type(rows: Iterable[dict]) -> Any:
    """The merged type of ``rows`` (top-level dicts)."""
    kind: Any = "null"
    for row in rows:
        kind = merge(kind, {"struct": {k: JSON if k in AS_JSON else value_type(v) for k, v in row.items()}})
    return kind


def merge_all(types: Iterable[Any]) -> Any:
    kind: Any = "null"
    for other in types:
        if other is not None:
            kind = merge(kind, other)
    return kind


def _arrow(kind: Any) -> pa.DataType:
    if isinstance(kind, str):
        return _ARROW[kind]
    if "list" in kind:
        return pa.list_(_arrow(kind["list"]))
    return pa.struct([pa.field(k, _arrow(v)) for k, v in kind["struct"].items()])


def arrow_schema(kind: Any) -> pa.Schema:
    """The schema of rows of type ``kind`` (a struct: the columns)."""
    fields = kind["struct"] if isinstance(kind, dict) and "struct" in kind else {}
    return pa.schema([pa.field(k, _arrow(v)) for k, v in fields.items()])


def has_json(kind: Any) -> bool:
    if isinstance(kind, str):
        return kind == JSON
    return has_json(kind["list"]) if "list" in kind else any(has_json(v) for v in kind["struct"].values())


def conform(value: Any, kind: Any) -> Any:
    """``value`` as the schema holds it: values at ``json`` places as JSON text."""
    if value is None:
        return None
    if kind == JSON:
        return value if isinstance(value, str) else orjson.dumps(value).decode()
    if isinstance(kind, str) or not has_json(kind):
        return value
    if "list" in kind:
        return [conform(v, kind["list"]) for v in value]
    return {k: conform(value.get(k), v) for k, v in kind["struct"].items()}


def table(rows: list[dict], kind: Any) -> pa.Table:
    """``rows`` as an Arrow table of ``kind``'s schema (keys a row lacks are null)."""
    schema = arrow_schema(kind)
    if has_json(kind):
        rows = [conform(row, kind) for row in rows]
    return pa.Table.from_pylist(rows, schema=schema)


def features_yaml(kind: Any) -> list[dict]:
    """The Hugging Face dataset card's ``dataset_info.features`` for rows of ``kind``."""

    def dtype(value: str) -> str:
        return "string" if value in ("null", JSON) else value

    def fields(struct: dict) -> list[dict]:
        return [{"name": k, **body(v)} for k, v in struct.items()]

    def item(value: Any) -> Any:  # what follows ``list:``, as datasets writes it
        if isinstance(value, str):
            return dtype(value)
        return fields(value["struct"]) if "struct" in value else {"list": item(value["list"])}

    def body(value: Any) -> dict:
        if isinstance(value, str):
            return {"dtype": dtype(value)}
        return {"list": item(value["list"])} if "list" in value else {"struct": fields(value["struct"])}

    return fields(kind["struct"]) if isinstance(kind, dict) and "struct" in kind else []
