"""``ftprep inspect``: schema, row counts, samples and the names a template can use."""

import pyarrow as pa
import pyarrow.parquet as pq

from beam_pipeline.cli import main


def test_inspect_parquet_and_csv(tmp_path, capsys):
    pq.write_table(pa.table({"question": ["How?", "Why?", None], "score": [1, 2, 3], "tags": [["a"], [], None]}),
                   tmp_path / "qa.parquet", row_group_size=2)
    (tmp_path / "t.csv").write_text('\ufeffsubject,body text,reply\nLogin,"two\nlines",Done\nRefund,charged twice,\n')
    assert main(["inspect", str(tmp_path / "qa.parquet"), str(tmp_path / "t.csv"), "--rows", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{tmp_path / 'qa.parquet'}  [parquet; 3 rows; 2 row group(s)]"
    assert out[2].split() == ["question", "string", "1/3", "0/3", "How?,", "Why?"]
    assert out[3].split() == ["score", "int64", "0/3", "0/3", "1,", "2"]
    assert out[4].split()[:3] == ["tags", "list<element:", "string>"]
    csv_at = out.index(f"{tmp_path / 't.csv'}  [csv; 2 rows; header of 3 column(s)]")
    assert out[csv_at + 2].split() == ["subject", "string", "0/2", "0/2", "Login,", "Refund"]
    assert out[csv_at + 3].split() == ["body", "text", "string", "0/2", "0/2", "two⏎lines,", "charged", "twice"]
    # An empty CSV cell is an empty string, not a null: the run calls its message missing_content.
    assert out[csv_at + 4].split() == ["reply", "string", "0/2", "1/2", "Done"]
    assert out[-2] == ("Columns a template can use: {{ question }}, {{ score }}, {{ tags }}, {{ subject }}, {{ reply }}")
    assert out[-1] == "Not usable as template names (rename the column): 'body text'"


def test_inspect_jsonl_and_a_broken_file(tmp_path, capsys):
    (tmp_path / "a.jsonl").write_text('{"prompt": "p", "completion": "c"}\nnot json\n{"prompt": "q"}\n')
    (tmp_path / "b.parquet").write_bytes(b"PAR1 but cut")
    # The readable file is shown all the same; the command fails for the other.
    assert main(["inspect", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert f"{tmp_path / 'a.jsonl'}  [jsonl; 3 rows; keys of the first objects; 1 of the first lines are not JSON objects]" in captured.out
    assert f"{tmp_path / 'b.parquet'}: cannot be read: " in captured.out
    assert captured.err.strip() == f"ftprep: error: {tmp_path / 'b.parquet'} cannot be read (the reason is above)"


def test_inspect_a_missing_file_exits_2(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "missing.csv")]) == 2
    captured = capsys.readouterr()
    assert "missing.csv: cannot be read: FileNotFoundError" in captured.out
    assert captured.err.startswith("ftprep: error: ")


def test_inspect_a_glob_matching_nothing_exits_2(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nothing*.csv")]) == 2
    assert "matches no files" in capsys.readouterr().err
