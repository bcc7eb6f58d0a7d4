"""PII planted in every nested shape a row can hold never reaches any output file, and is counted.

Each planted value is unique, so "not in any byte ftprep wrote" is a precise check: train,
validation, rejected, dropped, provenance, stats.json, report.html, the job file and the marker.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from tests.beam_pipeline.helpers import IN_MEMORY, assert_conserved, read_output, run, write_recipe

SECRET = "sk-proj-" + "Q" * 24 + "7"
PHONE = "+44 20 7946 0958"
IMAGE = "data:image/png;base64," + "4111111111111111" * 3 + "QUJD"  # card-like digits: an image, not a card
MODEL = "gpt-4o-mini-2024-07-18"


def every_byte_written(output: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(output.rglob("*")) if p.is_file())


def assert_nothing_leaks(output: Path, planted: list[str]) -> None:
    written = every_byte_written(output)
    for value in planted:
        # JSON escapes nothing in these values, but report.html may HTML-escape: check both.
        assert value.encode() not in written, value
        assert value.replace("+", "&#43;").encode() not in written, value


def run_with_pii(tmp_path: Path, paths: list[Path], **sections) -> dict:
    """Run a recipe with PII on (``pii: {}`` unless given), nothing held out; its conserved output."""
    recipe = {"input": {"paths": [str(p) for p in paths]}, "model": MODEL, "pii": {},
              "split": {"validation_fraction": 0}, "output": {"path": str(tmp_path / "out")}}
    for name, section in sections.items():
        recipe[name] = {**recipe.get(name, {}), **section} if name == "input" else section
    assert run(write_recipe(tmp_path, recipe), IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    assert_conserved(out)
    return out


def test_struct_list_map_and_json_columns(tmp_path):
    rows = [
        {"question": "Where is my order?", "meta": {"answer": "Mail ada@example.com for it.", "note": "n"},
         "tags": ["billing", f"call {PHONE}"], "attrs": [("token", f"key {SECRET}")],
         "json_col": json.dumps({"answer": "or bob@example.org"})},
        # rejected later (the answer renders empty): its row still leaves redacted
        {"question": "And mine?", "meta": {"answer": "", "note": None},
         "tags": ["carol@example.net"], "attrs": [], "json_col": "{}"},
        # dropped by the blocklist: the dropped record is redacted too
        {"question": "dropme please", "meta": {"answer": "Ask dave@example.io", "note": None},
         "tags": ["x"], "attrs": [("dave@example.io", "key")], "json_col": "{}"},
    ]
    schema = pa.schema([
        ("question", pa.string()),
        ("meta", pa.struct([("answer", pa.string()), ("note", pa.string())])),
        ("tags", pa.list_(pa.string())),
        ("attrs", pa.map_(pa.string(), pa.string())),
        ("json_col", pa.string()),
    ])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp_path / "t.parquet")
    out = run_with_pii(tmp_path, [tmp_path / "t.parquet"], template={"messages": [
        {"role": "user", "content": "{{ question }} {{ tags | join(', ') }} {{ attrs | tojson }} {{ json_col }}"},
        {"role": "assistant", "content": "{{ meta.answer }}"},
    ]}, filters={"blocklist": ["dropme"]})
    assert out["stats"]["pii"] == {"email": 5, "phone": 1, "secret": 1}
    assert [len(out[k]) for k in ("train", "rejected")] == [1, 1] and len(out["dropped"]["filter_blocklist"]) == 1
    assert_nothing_leaks(tmp_path / "out", ["ada@example.com", "bob@example.org", "carol@example.net",
                                            "dave@example.io", PHONE, SECRET])
    user, assistant = (m["content"] for m in out["train"][0]["messages"])
    assert "[PHONE]" in user and "[SECRET]" in user and "[EMAIL]" in user and "[EMAIL]" in assistant


def test_conversations_in_a_column(tmp_path):
    conversation = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    rows = [
        {"conversation": [{"role": "user", "content": "I am erin@example.co.uk"},
                          {"role": "assistant", "content": f"We will call {PHONE}"}]},
        {"conversation": [{"role": "user", "content": "My key is " + SECRET},
                          {"role": "assistant", "content": "Please rotate it."}]},
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema([("conversation", conversation)])), tmp_path / "c.parquet")
    (tmp_path / "c.jsonl").write_text(orjson.dumps({"conversation": json.dumps([
        {"role": "user", "content": "frank@example.com here"}, {"role": "assistant", "content": "Hello."}])}).decode() + "\n")
    out = run_with_pii(tmp_path, [tmp_path / "c.parquet", tmp_path / "c.jsonl"],
                       template={"messages_column": "conversation"}, pii={"action": {"secret": "reject"}})
    assert out["stats"]["pii"] == {"email": 2, "phone": 1, "secret": 1}
    assert [e["errors"][0]["message"] for e in out["rejected"]] == ["field 'conversation[0].content' contains secret"]
    assert_nothing_leaks(tmp_path / "out", ["erin@example.co.uk", "frank@example.com", PHONE, SECRET])


def test_rows_that_already_are_examples(tmp_path):
    examples = [
        {"messages": [
            {"role": "user", "content": [{"type": "text", "text": "Reach me at gina@example.com"},
                                         {"type": "image_url", "image_url": {"url": IMAGE}}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
                "name": "send_mail", "arguments": json.dumps({"to": "hank@example.org", "body": f"call {PHONE}"})}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sent to hank@example.org"},
            {"role": "assistant", "content": "Done.", "name": "agent"},
        ]},
        # rejected (no assistant message): its line is redacted in rejected/
        {"messages": [{"role": "user", "content": "My key " + SECRET}]},
    ]
    (tmp_path / "e.jsonl").write_text("".join(orjson.dumps(e).decode() + "\n" for e in examples))
    out = run_with_pii(tmp_path, [tmp_path / "e.jsonl"], input={"examples": "chat"})
    assert out["stats"]["pii"] == {"email": 3, "phone": 1, "secret": 1}
    assert out["stats"]["rejections"] == {"example_missing_assistant_message": 1}
    assert_nothing_leaks(tmp_path / "out", ["gina@example.com", "hank@example.org", PHONE, SECRET])
    (kept,) = out["train"]
    assert kept["messages"][0]["content"][1]["image_url"]["url"] == IMAGE  # untouched
    arguments = json.loads(kept["messages"][1]["tool_calls"][0]["function"]["arguments"])
    assert arguments == {"to": "[EMAIL]", "body": "call [PHONE]"}
