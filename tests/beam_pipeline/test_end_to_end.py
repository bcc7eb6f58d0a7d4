import json
from collections import Counter
from pathlib import Path

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.stats import stats_schema
from tests.beam_pipeline.helpers import (
    IN_MEMORY,
    assert_counts_add_up,
    read_output,
    run,
    snapshot,
    write_recipe,
)

REPO = Path(__file__).resolve().parents[2]

CHAT_TEMPLATE = {
    "format": "chat",
    "system": "You answer questions about {{ product }}.",
    "messages": [
        {"role": "user", "content": "{{ instruction }}{% if input %}\n\n{{ input }}{% endif %}"},
        {"role": "assistant", "content": "{{ output }}"},
    ],
}


def qa_rows(n):
    return [
        {"product": "Acme", "instruction": f"Question {i}?", "input": None if i % 2 else f"context {i}",
         "output": f"Answer  number {i}.", "unused": i}
        for i in range(n)
    ]


def recipe(tmp_path, paths, **changes):
    doc = {
        "input": {"paths": paths},
        "template": CHAT_TEMPLATE,
        "model": "gpt-4o-mini-2024-07-18",
        "split": {"validation_fraction": 0.25},
        "output": {"path": str(tmp_path / "out")},
    }
    doc.update(changes)
    return write_recipe(tmp_path, doc)


def test_parquet_to_chat(tmp_path):
    rows = qa_rows(40)
    rows[5]["output"] = ""  # missing_content
    rows[7]["instruction"] = None  # with no input either, the user content renders empty: null_field
    pq.write_table(pa.Table.from_pylist(rows[:20]), tmp_path / "a.parquet", row_group_size=7)
    pq.write_table(pa.Table.from_pylist(rows[20:]), tmp_path / "b.parquet", row_group_size=7)

    assert run(recipe(tmp_path, [str(tmp_path / "*.parquet")]), IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    assert_counts_add_up(out)
    jsonschema.validate(out["stats"], stats_schema())
    assert (tmp_path / "out" / "_SUCCESS").exists()

    kept = out["train"] + out["validation"]
    assert len(kept) == 38 and all(set(example) == {"messages"} for example in kept)
    assert out["stats"]["records"]["validation"] > 0
    assert any(m == {"role": "assistant", "content": "Answer number 0."} for e in kept for m in e["messages"])
    by_row = {(Path(r["source"]["file"]).name, r["source"]["row"]): r for r in out["rejected"]}
    assert set(by_row) == {("a.parquet", 5), ("a.parquet", 7)}
    assert by_row[("a.parquet", 5)]["errors"][0] == {"code": "missing_content", "message": "messages[2].content is empty"}
    assert by_row[("a.parquet", 5)]["record"]["output"] == ""
    assert "unused" not in by_row[("a.parquet", 5)]["record"]  # only the columns the recipe uses are read
    assert out["stats"]["rejections"] == {"missing_content": 1, "null_field": 1}
    assert by_row[("a.parquet", 7)]["errors"][0] == {
        "code": "null_field", "message": "messages[0].content renders empty: column(s) input, instruction null in this row"}
    assert out["stats"]["files"]["read"] == [{"path": str(tmp_path / "a.parquet"), "rows": 20}, {"path": str(tmp_path / "b.parquet"), "rows": 20}]
    assert out["stats"]["tokens"]["per_example"]["count"] == 38


def test_csv_to_chat_with_ragged_rows(tmp_path):
    (tmp_path / "t.csv").write_text(
        'product,instruction,input,output\n'
        'Acme,"multi\nline",,"ok"\n'
        'Acme,too,many,fields,here\n'
        'Acme,q,,a\n',
        encoding="utf-8",
    )
    assert run(recipe(tmp_path, [str(tmp_path / "t.csv")]), IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    assert_counts_add_up(out)
    assert out["stats"]["records"] == {"read": 3, "train": out["stats"]["records"]["train"],
                                       "validation": out["stats"]["records"]["validation"], "rejected": 1, "dropped": {}}
    (bad,) = out["rejected"]
    assert bad["source"]["row"] == 1 and bad["errors"][0]["code"] == "malformed_row"
    contents = [m["content"] for e in out["train"] + out["validation"] for m in e["messages"]]
    assert "multi\nline" in contents


def test_jsonl_to_completion(tmp_path):
    lines = [json.dumps({"q": f"q{i}", "a": f"a{i}"}) for i in range(10)] + ["{broken", "[1]", json.dumps({"q": "x", "a": ""})]
    (tmp_path / "x.jsonl").write_text("\n".join(lines) + "\n")
    path = recipe(tmp_path, [str(tmp_path / "x.jsonl")], model="babbage-002",
                  template={"format": "completion", "prompt": "{{ q }}\n\n###\n\n", "completion": " {{ a }}"})
    assert run(path, IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    assert_counts_add_up(out)
    assert all(set(e) == {"prompt", "completion"} for e in out["train"] + out["validation"])
    assert Counter(r["errors"][0]["code"] for r in out["rejected"]) == {"invalid_json": 1, "data_type": 1, "invalid_completion": 1}
    assert out["stats"]["tokens"]["encoding"] == "cl100k_base"


def test_multiturn_from_a_column(tmp_path):
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    conversations = [[{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": f"hello {i}"}] for i in range(6)]
    conversations[2] = [{"role": "user", "content": "no answer"}]
    table = pa.table({"conv": pa.array(conversations, type=pa.list_(message))})
    pq.write_table(table, tmp_path / "c.parquet")
    path = recipe(tmp_path, [str(tmp_path / "c.parquet")], template={"messages_column": "conv", "system": "sys"})
    assert run(path, IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    assert_counts_add_up(out)
    assert [r["errors"][0]["code"] for r in out["rejected"]] == ["example_missing_assistant_message"]
    assert all(e["messages"][0] == {"role": "system", "content": "sys"} for e in out["train"] + out["validation"])


def test_too_many_tokens_is_rejected(tmp_path):
    rows = qa_rows(3)
    rows[1]["output"] = "word " * 200
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    custom = {"name": "small-model", "encoding": "o200k_base", "max_tokens_per_example": 100}
    assert run(recipe(tmp_path, [str(tmp_path / "a.parquet")], model=custom), IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    assert_counts_add_up(out)
    (bad,) = out["rejected"]
    assert bad["errors"][0]["code"] == "too_many_tokens"
    assert "small-model allows 100" in bad["errors"][0]["message"]
    assert bad["example"]["messages"][2]["content"].startswith("word word")


def test_runners_agree_and_reruns_are_identical(tmp_path):
    """The default local run (one process per core) gives the same lines per split as in-memory."""
    pq.write_table(pa.Table.from_pylist(qa_rows(60)), tmp_path / "a.parquet", row_group_size=10)
    path = recipe(tmp_path, [str(tmp_path / "a.parquet")])
    assert run(path, "--output", str(tmp_path / "mp")) == 0
    assert run(path, "--output", str(tmp_path / "mem"), IN_MEMORY) == 0
    assert run(path, "--output", str(tmp_path / "again"), IN_MEMORY) == 0
    assert_counts_add_up(read_output(tmp_path / "mp"))
    assert snapshot(tmp_path / "mp") == snapshot(tmp_path / "mem") == snapshot(tmp_path / "again")


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "examples" / "recipes").glob("*.yaml")))
def test_example_recipes(name, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    assert run(f"examples/recipes/{name}", "--output", str(tmp_path / "out"), IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    assert_counts_add_up(out)
    assert out["stats"]["records"]["rejected"] > 0, "each example ships rows that must be rejected"
    assert all(r["source"]["file"].startswith(str(REPO / "examples" / "data")) and r["errors"] for r in out["rejected"])


def test_shard_count_and_size(tmp_path):
    pq.write_table(pa.Table.from_pylist(qa_rows(40)), tmp_path / "a.parquet")
    path = recipe(tmp_path, [str(tmp_path / "a.parquet")], output={"path": str(tmp_path / "out"), "num_shards": 3})
    assert run(path, IN_MEMORY) == 0
    assert sorted(p.name for p in (tmp_path / "out" / "train").iterdir()) == [f"part-0000{i}-of-00003.jsonl" for i in range(3)]

    by_size = recipe(tmp_path, [str(tmp_path / "a.parquet")], output={"path": str(tmp_path / "small"), "max_shard_bytes": 1024})
    assert run(by_size, IN_MEMORY) == 0
    shards = list((tmp_path / "small" / "train").iterdir())
    assert len(shards) > 3
    assert all(p.stat().st_size < 1024 + 400 for p in shards)  # one record may overshoot
    assert_counts_add_up(read_output(tmp_path / "small"))


def test_a_file_without_a_used_column_fails_the_run_or_is_skipped(tmp_path, capsys):
    pq.write_table(pa.Table.from_pylist(qa_rows(3)), tmp_path / "a.parquet")
    pq.write_table(pa.table({"instruction": ["q"], "product": ["p"]}), tmp_path / "b.parquet")  # no output column
    path = recipe(tmp_path, [str(tmp_path / "*.parquet")])
    assert run(path, IN_MEMORY) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"ftprep: error: cannot read {tmp_path / 'b.parquet'}: it has no column(s) input, output "
                            "(its columns: instruction, product) (--on-bad-file=skip")
    assert not (tmp_path / "out" / "_SUCCESS").exists()

    assert run(path, IN_MEMORY, "--on-bad-file=skip", "--overwrite") == 0
    out = read_output(tmp_path / "out")
    assert out["stats"]["files"]["failed"] == [
        {"path": str(tmp_path / "b.parquet"), "error": "it has no column(s) input, output (its columns: instruction, product)"}]
    assert {"path": str(tmp_path / "b.parquet"), "rows": 0} in out["stats"]["files"]["read"]
    assert_counts_add_up(out)
    assert out["stats"]["records"]["read"] == 3


def test_mixed_formats_and_memory_filesystem(tmp_path):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/e2e/a.jsonl", b'{"product": "p", "instruction": "q1", "input": null, "output": "a1"}\n')
    fs.pipe("/e2e/b.csv", b"product,instruction,input,output\np,q2,,a2\n")
    assert run(recipe(tmp_path, ["memory://e2e/*"]), IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    assert_counts_add_up(out)
    assert out["stats"]["records"]["read"] == 2 and out["stats"]["records"]["rejected"] == 0
    assert [f["path"] for f in out["stats"]["files"]["read"]] == ["memory:///e2e/a.jsonl", "memory:///e2e/b.csv"]


def test_header_only_input_is_a_failed_run_that_still_explains_itself(tmp_path, capsys):
    """A run that read nothing has nothing to train on: exit 1 and no _SUCCESS (a scheduler must
    not go on), but stats.json and the report are written to say why."""
    (tmp_path / "h.csv").write_text("product,instruction,input,output\n")
    assert run(recipe(tmp_path, [str(tmp_path / "h.csv")]), IN_MEMORY) == 1
    assert "stopped: the run read no rows: the 1 input file(s) hold no rows" in capsys.readouterr().err
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["records"] == {"read": 0, "train": 0, "validation": 0, "rejected": 0, "dropped": {}}
    assert stats["tokens"]["per_example"]["p50"] is None
    assert (tmp_path / "out" / "report.html").exists() and not (tmp_path / "out" / "_SUCCESS").exists()
    jsonschema.validate(stats, stats_schema())


def test_a_row_over_the_template_budget_is_rejected_and_the_run_goes_on(tmp_path):
    """Per-row budgets: a row whose values make the template loop for ever or build a huge value
    is a template_error naming the budget; the other rows are rendered by the same worker."""
    rows = [{"q": f"question {i}", "times": 1, "loops": 1} for i in range(6)]
    rows[1]["times"] = 10**8  # {{ q * times }}: 1 GB if it were built
    rows[4]["loops"] = 99_999  # three nested loops of 99,999: hours of CPU
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    path = write_recipe(tmp_path, {
        "input": {"paths": [str(tmp_path / "a.parquet")]},
        "template": {"messages": [
            {"role": "user", "content": "{{ q * times }}"},
            {"role": "assistant", "content": "{% for i in range(loops) %}{% for j in range(loops) %}"
                                             "{% for k in range(loops) %}{% endfor %}{% endfor %}{% endfor %}ok"},
        ]},
        "model": "gpt-4o-mini-2024-07-18",
        "limits": {"max_render_seconds": 0.5},
        "split": {"validation_fraction": 0},
        "output": {"path": str(tmp_path / "out")},
    })
    assert run(path, IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    assert_counts_add_up(out)
    assert len(out["train"]) == 4
    messages = {r["source"]["row"]: r["errors"][0]["message"] for r in out["rejected"]}
    assert {r["errors"][0]["code"] for r in out["rejected"]} == {"template_error"}
    assert "limits.max_example_chars" in messages[1] and "limits.max_render_seconds" in messages[4]
