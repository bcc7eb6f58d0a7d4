"""One schema for every Parquet shard, found from the rows; the card's features as datasets writes them."""

import json

import pyarrow as pa
import pytest

from transforms.row_types import arrow_schema, features_yaml, merge, merge_all, row_type, table


def test_a_message_gets_the_keys_some_message_has_and_no_others():
    plain = row_type([{"messages": [{"role": "user", "content": "hi"}]}])
    with_calls = row_type([{"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}])
    merged = merge_all([plain, None, with_calls])
    message = merged["struct"]["messages"]["list"]["struct"]
    assert list(message) == ["role", "content", "tool_calls"]
    assert message["content"] == "string"  # a null merged with text is text
    rows = table([{"messages": [{"role": "user", "content": "hi"}]}], merged)
    assert rows.to_pylist() == [{"messages": [{"role": "user", "content": "hi", "tool_calls": None}]}]


def test_values_of_no_single_type_and_tools_are_json_text():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {}}}}}]
    kind = row_type([{"messages": [{"role": "user", "content": "text"}], "tools": tools},
                     {"messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}]}]}])
    assert kind["struct"]["tools"] == "json"
    assert kind["struct"]["messages"]["list"]["struct"]["content"] == "json"
    rows = table([{"messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}]}], "tools": tools}], kind)
    (row,) = rows.to_pylist()
    assert json.loads(row["tools"]) == tools
    assert json.loads(row["messages"][0]["content"]) == [{"type": "text", "text": "parts"}]


def test_numbers_widen_and_lists_merge():
    assert merge("int64", "double") == "double"
    assert merge({"list": "null"}, {"list": "string"}) == {"list": "string"}
    assert merge({"list": "string"}, {"struct": {}}) == "json"
    assert arrow_schema(row_type([{"w": 1}, {"w": 0.5}])) == pa.schema([pa.field("w", pa.float64())])


def test_features_yaml_is_what_datasets_writes():
    datasets = pytest.importorskip("datasets")
    kind = merge_all([row_type([{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
                                 "weights": [1, 2], "nested": [["x"]], "meta": {"ok": True}, "tools": []}])])
    expected = datasets.Features.from_arrow_schema(arrow_schema(kind))._to_yaml_list()
    assert features_yaml(kind) == expected
