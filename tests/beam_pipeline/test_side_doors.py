"""Issue 24: personal data cannot leave through a side door — a row's extra keys, a headerless
CSV's first row, a file's first line quoted in an error, bytes columns — and errors stay one line."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.beam_pipeline.helpers import IN_MEMORY, assert_conserved, read_output, run, write_recipe

EMAIL = "jane.roe@example.org"
KEY = "sk-proj-" + "K" * 30
PHONE = "+1 415 555 2671"
MODEL = "gpt-4o-mini-2024-07-18"
CHAT = {"messages": [{"role": "user", "content": "{{ question }}"}, {"role": "assistant", "content": "{{ answer }}"}]}


def every_byte_written(output: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(output.rglob("*")) if p.is_file())


def assert_absent(haystack: bytes | str, *values: str) -> None:
    data = haystack.encode() if isinstance(haystack, str) else haystack
    for value in values:
        assert value.encode() not in data, value
        assert value.replace("+", "&#43;").encode() not in data, value


def test_extra_keys_of_example_rows_are_not_written(tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
             EMAIL: "x", "customer_phone": PHONE} for i in range(5)]
    path = tmp_path / "examples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = {"input": {"paths": [str(path)], "examples": "chat"}, "model": MODEL, "pii": {},
              "split": {"validation_fraction": 0}, "output": {"path": str(tmp_path / "out")}}
    assert run(write_recipe(tmp_path, recipe), IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    assert_conserved(out)
    assert [set(example) for example in out["train"]] == [{"messages"}] * 5
    assert out["stats"]["warnings"]["unrecognized_example_key"] == 5
    assert_absent(every_byte_written(tmp_path / "out"), EMAIL, PHONE)


def test_a_headerless_csv_and_a_broken_first_line_are_quoted_redacted(tmp_path, capsys):
    good = tmp_path / "a.csv"
    good.write_text("question,answer\nWhat?,That.\n")
    headerless = tmp_path / "b.csv"
    headerless.write_text(f"{EMAIL},{KEY},{PHONE}\nbob@example.com,x,y\n")
    broken = tmp_path / "c.jsonl"
    broken.write_text(f"{EMAIL} {KEY}\n")
    recipe = {"input": {"paths": [str(good), str(headerless)], "on_bad_file": "skip"}, "model": MODEL,
              "template": CHAT, "split": {"validation_fraction": 0}, "output": {"path": str(tmp_path / "out")}}
    assert run(write_recipe(tmp_path, recipe), IN_MEMORY) == 0
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert [f["path"] for f in stats["files"]["failed"]] == [str(headerless)]
    assert "[EMAIL]" in stats["files"]["failed"][0]["error"]
    written = every_byte_written(tmp_path / "out") + capsys.readouterr().err.encode()
    assert_absent(written, EMAIL, KEY, PHONE)

    recipe["input"] = {"paths": [str(broken)]}
    recipe["output"]["path"] = str(tmp_path / "out2")
    code = run(write_recipe(tmp_path, recipe), IN_MEMORY)
    err = capsys.readouterr().err
    assert code == 2 and "not JSONL" in err and "[EMAIL]" in err, err
    assert_absent(err, EMAIL, KEY)
    # The first file of a run is checked before it starts: the same error names its columns redacted.
    recipe["input"]["paths"] = [str(headerless)]
    assert run(write_recipe(tmp_path, recipe), IN_MEMORY) == 2
    err = capsys.readouterr().err
    assert "[EMAIL]" in err and "[SECRET]" in err
    assert_absent(err, EMAIL, KEY, PHONE)


def test_bytes_columns_are_scanned_when_a_template_decodes_them(tmp_path):
    path = tmp_path / "blobs.parquet"
    pq.write_table(pa.table({"question": ["q1", "q2"],
                             "blob": pa.array([f"write to {EMAIL}, key {KEY}".encode(), b"plain"], pa.binary())}), path)
    template = {"messages": [{"role": "user", "content": "{{ question }}"},
                             {"role": "assistant", "content": "{{ blob.decode('utf-8') }}"}]}
    recipe = {"input": {"paths": [str(path)]}, "model": MODEL, "template": template, "pii": {},
              "split": {"validation_fraction": 0.5}, "output": {"path": str(tmp_path / "out")}}
    assert run(write_recipe(tmp_path, recipe), IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    assert_conserved(out)
    assert out["stats"]["pii"] == {"email": 1, "secret": 1}
    assert_absent(every_byte_written(tmp_path / "out"), EMAIL, KEY)


def test_an_over_long_cell_s_preview_is_redacted_before_it_is_cut(tmp_path):
    path = tmp_path / "big.csv"
    cell = "x" * 190 + " " + KEY + " " + "y" * 2000
    path.write_text(f"question,answer\nq,{cell}\nq2,fine\n")
    recipe = {"input": {"paths": [str(path)]}, "model": MODEL, "template": CHAT, "pii": {},
              "limits": {"max_field_chars": 1000}, "split": {"validation_fraction": 0},
              "output": {"path": str(tmp_path / "out")}}
    assert run(write_recipe(tmp_path, recipe), IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    (rejected,) = out["rejected"]
    assert rejected["errors"][0]["code"] == "field_too_large" and "[SECRET]" in rejected["record"]["answer"]
    assert_absent(every_byte_written(tmp_path / "out"), KEY, KEY[:16])


def test_an_error_about_a_wide_file_stays_one_short_line(tmp_path, capsys):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"column_{i:05d}" for i in range(10_000)) + "\n" + ",".join("v" * 10_000) + "\n")
    recipe = {"input": {"paths": [str(path)]}, "model": MODEL, "template": CHAT, "output": {"path": str(tmp_path / "out")}}
    assert run(write_recipe(tmp_path, recipe), IN_MEMORY) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(err) < 2_500, len(err)
    assert "question" in err and "9,980 more" in err
