"""The bad-input corpus: messy exports, generated here, run end to end.

Policy (README, "Bad input"): a bad row becomes a rejected record with a code and its source;
a file that cannot be read fails the run naming it, or with --on-bad-file=skip is listed in
stats.json under files.failed; a recipe or CLI mistake exits 2 before the pipeline starts.
Every run passes the conservation check: each input row is accounted for exactly once.
"""

from __future__ import annotations

import gzip
import zlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.beam_pipeline.helpers import IN_MEMORY, assert_conserved, read_output, run, snapshot, write_recipe

BIG = 50 * 1024 * 1024  # a 50 MB cell


def write_corpus(root) -> dict[str, list[tuple[int, str]]]:
    """Write the corpus under ``root``; return, per file name, the expected ``(row, outcome)``
    of each row, where outcome is "kept" or the rejection code."""
    d = root / "in"
    d.mkdir()
    expected: dict[str, list[tuple[int, str]]] = {}

    def csv_file(name: str, data: bytes, rows: list[tuple[int, str]]):
        (d / name).write_bytes(data)
        expected[name] = rows

    csv_file("ragged.csv", b"q,a\nfine,row\ntoo,many,fields\ntoo few\nlast,one\n",
             [(0, "kept"), (1, "malformed_row"), (2, "malformed_row"), (3, "kept")])
    csv_file("bad_utf8.csv", b"q,a\nok,fine\n\xff\xfe broken,bytes\nafter,it\n",
             [(0, "kept"), (1, "decode_error"), (2, "kept")])
    csv_file("bom.csv", "\ufeffq,a\nwith,bom\n".encode(), [(0, "kept")])
    csv_file("quoted_newlines.csv", b'q,a\n"line one\nline two","an ""answer"""\n', [(0, "kept")])
    csv_file("unterminated.csv", b'q,a\nbefore,it\n"never closed,x\nswallowed,row\n', [(0, "kept"), (1, "malformed_row")])
    csv_file("header_only.csv", b"q,a\n", [])
    csv_file("empty.csv", b"", [])
    csv_file("mixed_endings.csv", b"q,a\r\nwindows,line\r\nunix,line\nlast,one", [(0, "kept"), (1, "kept"), (2, "kept")])

    lines = [
        b'\xef\xbb\xbf{"q": "bom line", "a": "x"}',   # 0 kept (BOM)
        b'{"q": "broken", "a": ',                      # 1 invalid_json
        b'[1, 2, 3]',                                  # 2 data_type
        b'"just a string"',                            # 3 data_type
        b'{"q": "null answer", "a": null}',            # 4 null_field
        b'{"q": "no answer key"}',                     # 5 null_field (an absent key is null)
        b'{"q": "bad \xff utf8", "a": "x"}',           # 6 decode_error
        b'{"q": "crlf", "a": "y"}\r',                  # 7 kept (CRLF)
        b'{"q": {"nested": 1}, "a": "struct"}',        # 8 wrong_type
        b'{"q": 42, "a": 7}',                          # 9 kept: a number is text
    ]
    (d / "lines.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    expected["lines.jsonl"] = [(0, "kept"), (1, "invalid_json"), (2, "data_type"), (3, "data_type"), (4, "null_field"),
                               (5, "null_field"), (6, "decode_error"), (7, "kept"), (8, "wrong_type"), (9, "kept")]
    (d / "empty.jsonl").write_bytes(b"")
    expected["empty.jsonl"] = []
    with gzip.open(d / "zipped.jsonl.gz", "wb") as f:
        f.write(b'{"q": "gz", "a": "ok"}\n')
    expected["zipped.jsonl.gz"] = [(0, "kept")]

    pq.write_table(pa.table({"q": ["a", None, "c", None], "a": ["x", "y", None, None]}), d / "nulls.parquet")
    expected["nulls.parquet"] = [(0, "kept"), (1, "null_field"), (2, "null_field"), (3, "null_field")]
    pq.write_table(pa.table({"q": [["a", "list"], ["b"]], "a": ["x", "y"]}), d / "list_column.parquet")
    expected["list_column.parquet"] = [(0, "wrong_type"), (1, "wrong_type")]
    pq.write_table(pa.table({"q": [{"k": 1}], "a": ["x"]}), d / "struct_column.parquet")
    expected["struct_column.parquet"] = [(0, "wrong_type")]
    pq.write_table(pa.table({"q": [1, 2], "a": [3.5, 4.5]}), d / "int_columns.parquet")
    expected["int_columns.parquet"] = [(0, "kept"), (1, "kept")]
    pq.write_table(pa.table({"q": ["x" * BIG, "small"], "a": ["y", "z"]}), d / "huge_cell.parquet")
    expected["huge_cell.parquet"] = [(0, "field_too_large"), (1, "kept")]
    return expected


BAD_FILES = {
    "missing_column.parquet": "it has no column(s) a (its columns: q)",
    "truncated.parquet": "ArrowInvalid",
    "zero_bytes.parquet": "ArrowInvalid",
    "cut.jsonl.gz": "EOFError",
}


def write_bad_files(root) -> dict[str, list[tuple[int, str]]]:
    """The files that cannot be read whole; returns the rows that are read before a break."""
    d = root / "in"
    pq.write_table(pa.table({"q": ["only q"]}), d / "missing_column.parquet")
    pq.write_table(pa.table({"q": [f"q{i}" for i in range(500)], "a": ["a" * 50] * 500}), d / "whole.parquet")
    data = (d / "whole.parquet").read_bytes()
    (d / "truncated.parquet").write_bytes(data[: len(data) // 2])
    (d / "whole.parquet").unlink()
    (d / "zero_bytes.parquet").write_bytes(b"")
    compressed = gzip.compress(b"".join(b'{"q": "row %d", "a": "x"}\n' % i for i in range(1000)))
    (d / "cut.jsonl.gz").write_bytes(compressed[: len(compressed) // 2])
    # The rows before the break are read (zlib says how many lines the cut stream still holds whole).
    readable = zlib.decompressobj(31).decompress(compressed[: len(compressed) // 2]).count(b"\n")
    assert 0 < readable < 1000
    return {"cut.jsonl.gz": [(row, "kept") for row in range(readable)]}


def corpus_recipe(root) -> str:
    return write_recipe(root, {
        "input": {"paths": [str(root / "in")]},
        "template": {"messages": [{"role": "user", "content": "{{ q }}"}, {"role": "assistant", "content": "{{ a }}"}]},
        "model": "gpt-4o-mini-2024-07-18",
        "split": {"validation_fraction": 0.3},
        "output": {"path": str(root / "out"), "provenance": True},
    })


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    expected = write_corpus(root)
    expected.update(write_bad_files(root))
    path = corpus_recipe(root)
    assert run(path, IN_MEMORY, "--on-bad-file=skip") == 0
    return root, expected, read_output(root / "out"), path


def test_every_row_is_accounted_for_exactly_once(corpus):
    root, expected, out, _ = corpus
    rows = {(str(root / "in" / name), row) for name, outcomes in expected.items() for row, _ in outcomes}
    assert out["stats"]["records"]["read"] == len(rows)
    assert_conserved(out, rows)


@pytest.mark.parametrize("name", [
    "ragged.csv", "bad_utf8.csv", "bom.csv", "quoted_newlines.csv", "unterminated.csv", "header_only.csv",
    "empty.csv", "mixed_endings.csv", "lines.jsonl", "empty.jsonl", "zipped.jsonl.gz", "nulls.parquet",
    "list_column.parquet", "struct_column.parquet", "int_columns.parquet", "huge_cell.parquet",
])
def test_each_bad_row_is_rejected_with_its_code_and_source(corpus, name):
    root, expected, out, _ = corpus
    outcomes = assert_conserved(out)
    path = str(root / "in" / name)
    got = sorted((row, "kept" if outcome in ("train", "validation") else outcome.removeprefix("rejected:"))
                 for (file, row), outcome in outcomes.items() if file == path)
    assert got == expected[name]
    read = {f["path"]: f["rows"] for f in out["stats"]["files"]["read"]}
    assert read[path] == len(expected[name])


def test_rejected_records_say_what_and_where(corpus):
    root, _, out, _ = corpus
    by_source = {(r["source"]["file"], r["source"]["row"]): r for r in out["rejected"]}
    huge = by_source[(str(root / "in" / "huge_cell.parquet"), 0)]
    assert huge["errors"][0]["message"] == "q has 52,428,800 characters; limits.max_field_chars is 1,000,000"
    assert len(json.dumps(huge)) < 2000, "rejected/ holds a preview of a giant cell, not the cell"
    ragged = by_source[(str(root / "in" / "ragged.csv"), 1)]
    assert ragged["errors"][0]["message"] == "line 3: 3 fields where the header has 2"
    assert ragged["record"] == ["too", "many", "fields"]
    decode = by_source[(str(root / "in" / "bad_utf8.csv"), 1)]
    assert decode["record"] == ["\ufffd\ufffd broken", "bytes"]
    struct = by_source[(str(root / "in" / "lines.jsonl"), 8)]
    assert struct["errors"][0]["message"].startswith("a dict where text is expected: {'nested': 1}")
    null = by_source[(str(root / "in" / "lines.jsonl"), 5)]
    assert null["errors"][0] == {"code": "null_field",
                                 "message": "messages[1].content renders empty: column(s) a null in this row"}


def test_kept_rows_keep_their_text(corpus):
    _, _, out, _ = corpus
    pairs = {tuple(m["content"] for m in e["messages"]) for e in out["train"] + out["validation"]}
    assert ("line one\nline two", 'an "answer"') in pairs  # quoted newline and escaped quotes
    assert ("with", "bom") in pairs and ("bom line", "x") in pairs  # no BOM in a column name or a value
    assert ("42", "7") in pairs and ("1", "3.5") in pairs
    assert ("crlf", "y") in pairs and ("last", "one") in pairs


def test_files_that_cannot_be_read_are_listed_under_skip(corpus):
    root, _, out, _ = corpus
    failed = {f["path"].rsplit("/", 1)[-1]: f["error"] for f in out["stats"]["files"]["failed"]}
    assert set(failed) == set(BAD_FILES)
    for name, cause in BAD_FILES.items():
        assert cause in failed[name], (name, failed[name])


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_file_that_cannot_be_read_fails_the_run_by_default(tmp_path, capsys, name):
    root = tmp_path
    (root / "in").mkdir()
    (root / "in" / "good.csv").write_text("q,a\nx,y\n")
    write_bad_files(root)  # all of them, then keep one
    for other in BAD_FILES:
        if other != name:
            (root / "in" / other).unlink()
    # A bad file found before the pipeline starts (the column check reads the first file) exits 2.
    assert run(corpus_recipe(root), IN_MEMORY) in (1, 2)
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"ftprep: error: cannot read {root / 'in' / name}: ")
    assert BAD_FILES[name] in error
    assert not (root / "out" / "_SUCCESS").exists()


def test_a_glob_matching_nothing_is_a_usage_error(tmp_path, capsys):
    path = corpus_recipe(tmp_path)
    assert run(path, IN_MEMORY, "--input", str(tmp_path / "nothing-*.parquet")) == 2
    assert capsys.readouterr().err.strip().endswith(f"input path '{tmp_path / 'nothing-*.parquet'}' matches no files")


def test_the_corpus_gives_the_same_answer_every_time(corpus, tmp_path):
    """Reruns, and 1 worker in-process against 2 worker processes, agree line for line."""
    root, _, _, path = corpus
    expected = snapshot(root / "out")
    assert run(path, IN_MEMORY, "--on-bad-file=skip", "--output", str(tmp_path / "again")) == 0
    assert snapshot(tmp_path / "again") == expected
    assert run(path, "--on-bad-file=skip", "--direct_num_workers=2", "--direct_running_mode=multi_processing",
               "--output", str(tmp_path / "two")) == 0
    assert snapshot(tmp_path / "two") == expected


def test_a_file_that_is_not_jsonl_is_a_usage_error_or_skipped(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "good.jsonl").write_text('{"q": "x", "a": "y"}\n')
    pq.write_table(pa.table({"q": ["p"]}), tmp_path / "in" / "parquet_in_disguise.jsonl")
    path = corpus_recipe(tmp_path)
    assert run(path, IN_MEMORY) == 2
    assert "parquet_in_disguise.jsonl is not JSONL: it starts like a Parquet file" in capsys.readouterr().err
    assert run(path, IN_MEMORY, "--on-bad-file=skip") == 0
    out = read_output(tmp_path / "out")
    assert out["stats"]["files"]["failed"] == [{"path": str(tmp_path / "in" / "parquet_in_disguise.jsonl"),
                                                "error": "not JSONL: it starts like a Parquet file"}]
    assert assert_conserved(out) == {(str(tmp_path / "in" / "good.jsonl"), 0): "train"}
