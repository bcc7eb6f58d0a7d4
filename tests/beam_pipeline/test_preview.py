"""``ftprep preview``: the first rows through the same stages as the pipeline, nothing written."""

import pyarrow as pa
import pyarrow.parquet as pq

from beam_pipeline.cli import main
from tests.beam_pipeline.helpers import write_recipe

TEMPLATE = {"system": "About {{ product }}.",
            "messages": [{"role": "user", "content": "{{ q }}"}, {"role": "assistant", "content": "{{ a }}"}]}


def recipe(tmp_path, path, **extra):
    return write_recipe(tmp_path, {"input": {"paths": [str(path)]}, "template": TEMPLATE,
                                   "model": "gpt-4o-mini-2024-07-18", "output": {"path": str(tmp_path / "out")}, **extra})


def test_preview_parquet_shows_examples_tokens_and_rejections(tmp_path, capsys):
    rows = [{"product": "Acme", "q": f"Question {i}?", "a": f"Answer {i}."} for i in range(8)]
    rows[1]["a"] = None
    rows[2]["q"] = ["not", "text"]
    pq.write_table(pa.Table.from_pylist(rows[:2]), tmp_path / "a.parquet")
    pq.write_table(pa.Table.from_pylist(rows[2:3]), tmp_path / "b.parquet")
    pq.write_table(pa.Table.from_pylist(rows[3:]), tmp_path / "c.parquet")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("preview must not touch the output")
    assert main(["preview", recipe(tmp_path, tmp_path / "a.parquet"), "--input", str(tmp_path / "a.parquet"),
                 "--input", str(tmp_path / "c.parquet"), "--rows", "3"]) == 0
    out = capsys.readouterr().out
    assert f"── {tmp_path / 'a.parquet'} row 0: kept" in out
    assert "   system          │ About Acme." in out
    assert "   user            │ Question 0?" in out and "   assistant       │ Answer 0." in out
    assert "   tokens: " in out and " trained; assistant " in out
    assert (f"── {tmp_path / 'a.parquet'} row 1: REJECTED null_field: messages[1].content renders empty: "
            "column(s) a null in this row") in out
    assert f"── {tmp_path / 'c.parquet'} row 0: kept" in out and "row 1: kept" not in out.split("c.parquet")[-1]
    assert out.rstrip().endswith("2 of 3 row(s) would be kept (chat); dedup and the split are not previewed.")
    assert (tmp_path / "out" / "keep.txt").exists() and not (tmp_path / "out" / "_SUCCESS").exists()


def test_preview_csv_shows_read_side_rejections_and_drops(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("product,q,a\nAcme,Hi there?,Hello!\nAcme,too,many,fields\nAcme,same,same\n")
    path = recipe(tmp_path, tmp_path / "t.csv", filters={"drop_echoes": True})
    assert main(["preview", path]) == 0
    out = capsys.readouterr().out
    assert "row 0: kept" in out
    assert f"── {tmp_path / 't.csv'} row 1: REJECTED malformed_row: line 3: 4 fields where the header has 3" in out
    assert "row 2: DROPPED (filter_echo)" in out
    assert "1 of 3 row(s) would be kept" in out


def test_preview_usage_errors_exit_2(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("product,q,a\nAcme,x,y\n")
    assert main(["preview", recipe(tmp_path, tmp_path / "t.csv"), "--rows", "0"]) == 2
    assert "--rows must be at least 1" in capsys.readouterr().err
    bad = write_recipe(tmp_path, {"input": {"paths": [str(tmp_path / "t.csv")]}, "model": "gpt-4o-mini-2024-07-18",
                                  "template": {**TEMPLATE, "system": "{{ nope }}"}, "output": {"path": "o"}}, "bad.yaml")
    assert main(["preview", bad]) == 2
    assert "column(s) nope" in capsys.readouterr().err


def test_mask_view_marks_the_trained_runs_and_every_token_boundary():
    from beam_pipeline.preview import mask_view

    assert mask_view(["<s>", "user", "\n", "Hi", "ok", "</s>"], [0, 0, 0, 0, 1, 1]) == "<s>|user|\\n|Hi⟦ok|</s>⟧"
    assert mask_view(["a", "b", "c"], [1, 0, 1]) == "⟦a⟧b⟦c⟧"


def test_preview_mask_prints_the_tokens_the_trainer_trains_on(capsys):
    from pathlib import Path

    from tests.real_tokenizers import folder

    repo = Path(__file__).resolve().parents[2]
    assert main(["preview", str(repo / "examples/recipes/parquet_chat_hf.yaml"), "--rows", "1", "--mask",
                 "--input", str(repo / "examples/data/qa-00000.parquet"), "--tokenizer", str(folder("qwen2_5"))]) == 0
    printed = capsys.readouterr().out
    (mask,) = [line for line in printed.splitlines() if line.strip().startswith("mask (")]
    assert "20 of 47 tokens trained" in mask
    # TRL's Qwen2.5 training mask: after the assistant header, through the end of the turn.
    assert mask.endswith('<|im_start|>|assistant⟦\\n|Open| Settings| →| Security|,| choose| "|Reset| password|"| and| '
                         'follow| the| e|-mail| link|.|<|im_end|>|\\n⟧')
