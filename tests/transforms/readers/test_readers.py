import gzip

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import (
    DATA_TYPE,
    DECODE_ERROR,
    FIELD_TOO_LARGE,
    INVALID_JSON,
    MALFORMED_ROW,
    FailedFile,
    Item,
    Rejected,
)

from schemas.recipe import CsvOptions
from transforms.readers import jsonl, parquet
from transforms.readers.base import InputError, ReadUnit, iter_lines
from transforms.readers.paths import expand_paths, infer_format
from transforms.readers.planning import PlanUnits
from transforms.readers.probes import peek_columns
from transforms.readers.registry import plan_file, read_unit, reader_for


def plan_units(url, fmt, required=None, csv=CsvOptions()):
    return reader_for(fmt, csv=csv).plan(url, required)


def write_parquet(path, rows, row_group_size=None):
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    return str(path)


def records(url, fmt, columns=None, csv=CsvOptions()):
    out = []
    for unit in plan_units(url, fmt, csv=csv):
        out.extend(read_unit(unit, columns, csv))
    return out


@pytest.mark.parametrize(
    "name, fmt",
    [("a.parquet", "parquet"), ("a.pq", "parquet"), ("a.csv", "csv"), ("a.csv.gz", "csv"),
     ("a.tsv", "csv"), ("a.jsonl.zst", "jsonl"), ("gs://b/a.ndjson", "jsonl")],
)
def test_infer_format(name, fmt):
    assert infer_format(name) == fmt


def test_infer_format_names_the_fix():
    with pytest.raises(InputError, match="set input.format"):
        infer_format("data/part-0000")


def test_expand_paths_globs_and_fails_when_nothing_matches(tmp_path):
    for name in ("b.csv", "a.csv"):
        (tmp_path / name).write_text("x\n1\n")
    assert expand_paths([str(tmp_path / "*.csv")]) == [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]
    with pytest.raises(InputError, match=r"matches no files"):
        expand_paths([str(tmp_path / "*.parquet")])


def test_expand_paths_memory_filesystem():
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/ftprep-test/x.jsonl", b'{"a": 1}\n')
    assert expand_paths(["memory://ftprep-test/*.jsonl"]) == ["memory:///ftprep-test/x.jsonl"]


def test_parquet_is_planned_per_row_group_with_global_row_indices(tmp_path):
    url = write_parquet(tmp_path / "x.parquet", [{"q": f"q{i}", "a": f"a{i}", "junk": i} for i in range(25)], 10)
    units = plan_units(url, "parquet")
    assert [(u.row_group, u.first_row) for u in units] == [(0, 0), (1, 10), (2, 20)]
    rows = list(read_unit(units[2], frozenset({"q", "a"})))
    assert [r.source.row for r in rows] == [20, 21, 22, 23, 24]
    assert rows[0].row == {"q": "q20", "a": "a20"}  # only the columns asked for


def test_csv_quoted_newlines_delimiter_bom_and_ragged_rows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes('\ufeffq;a\n"line one\nline two";yes\n\nonly-one-field\n"x";"y"\n'.encode())
    out = records(str(path), "csv", csv=CsvOptions(delimiter=";"))
    assert isinstance(out[0], Item) and out[0].row == {"q": "line one\nline two", "a": "yes"}
    assert isinstance(out[1], Rejected) and out[1].codes == (MALFORMED_ROW,)
    assert "1 fields where the header has 2" in out[1].errors[0].message
    assert out[1].record == ["only-one-field"]
    assert [r.source.row for r in out] == [0, 1, 2]


def test_csv_gzip_compression_is_inferred(tmp_path):
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"q,a\nhi,there\n"))
    assert [r.row for r in records(str(path), "csv")] == [{"q": "hi", "a": "there"}]


def test_jsonl_rejects_broken_lines_and_non_objects(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"q": "ok"}\n{"q": broken\n[1, 2]\n\n"str"\n')
    out = records(str(path), "jsonl")
    assert [type(r).__name__ for r in out] == ["Item", "Rejected", "Rejected", "Rejected"]
    assert [r.source.row for r in out] == [0, 1, 2, 4]
    assert out[1].codes == (INVALID_JSON,) and out[1].record == '{"q": broken'
    assert out[2].codes == (DATA_TYPE,) and out[3].codes == (DATA_TYPE,)


def test_truncated_parquet_is_a_failed_file(tmp_path):
    url = write_parquet(tmp_path / "x.parquet", [{"q": "a" * 100}] * 100)
    data = (tmp_path / "x.parquet").read_bytes()
    (tmp_path / "x.parquet").write_bytes(data[: len(data) // 2])
    out = list(read_unit(ReadUnit(url, "parquet", row_group=0), None))
    assert len(out) == 1 and isinstance(out[0], FailedFile) and out[0].path == url
    assert "row group 0" in out[0].error


def test_invalid_utf8_in_csv_rejects_the_row_and_reads_on(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"q,a\nfine,row\n\xff\xfe,oops\nafter,it\n")
    out = records(str(path), "csv")
    assert [type(r).__name__ for r in out] == ["Item", "Rejected", "Item"]
    assert out[1].codes == (DECODE_ERROR,) and out[1].source.row == 1
    assert out[1].record == ["\ufffd\ufffd", "oops"]
    assert out[2].row == {"q": "after", "a": "it"}


def test_invalid_utf8_in_jsonl_is_a_decode_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"q": "\xff"}\n{"q": "ok"}\n')
    out = records(str(path), "jsonl")
    assert out[0].codes == (DECODE_ERROR,) and out[1].row == {"q": "ok"}


def test_unterminated_quote_is_a_malformed_row(tmp_path):
    path = tmp_path / "q.csv"
    path.write_bytes(b'q,a\nfine,row\n"never closed,x\nmore,lines\n')
    out = records(str(path), "csv")
    assert [type(r).__name__ for r in out] == ["Item", "Rejected"]
    assert out[1].codes == (MALFORMED_ROW,) and "unexpected end of data" in out[1].errors[0].message


def test_fields_over_the_limit_are_rejected_with_a_preview(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("q,a\nsmall,row\n" + "x" * 5000 + ",y\n")
    out = [r for unit in plan_units(str(path), "csv") for r in read_unit(unit, None, max_field_chars=1000)]
    assert out[1].codes == (FIELD_TOO_LARGE,)
    assert "q has 5,000 characters; limits.max_field_chars is 1,000" in out[1].errors[0].message
    assert out[1].record["q"].endswith("… [5,000 characters]") and len(out[1].record["q"]) < 300
    jsonl = tmp_path / "big.jsonl"
    jsonl.write_text('{"q": "' + "x" * 5000 + '"}\n{"q": "ok"}\n')
    out = [r for unit in plan_units(str(jsonl), "jsonl") for r in read_unit(unit, None, max_field_chars=1000)]
    assert out[0].codes == (FIELD_TOO_LARGE,) and out[1].row == {"q": "ok"}


def test_jsonl_keys_a_row_leaves_out_are_null(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"q": "a", "extra": 1}\n')
    assert records(str(path), "jsonl", columns=frozenset({"q", "input"}))[0].row == {"q": "a", "input": None}


def test_files_without_a_required_column_cannot_be_planned(tmp_path):
    url = write_parquet(tmp_path / "x.parquet", [{"q": "a"}])
    with pytest.raises(ValueError, match=r"no column\(s\) a \(its columns: q\)"):
        plan_units(url, "parquet", frozenset({"q", "a"}))
    (tmp_path / "x.csv").write_text("q\nx\n")
    with pytest.raises(ValueError, match=r"no column\(s\) a"):
        plan_units(str(tmp_path / "x.csv"), "csv", frozenset({"q", "a"}))


def test_peek_columns(tmp_path):
    assert peek_columns(write_parquet(tmp_path / "x.parquet", [{"a": 1, "b": "x"}]), "parquet") == ["a", "b"]
    (tmp_path / "x.csv").write_text("\ufeffa,b\n1,2\n", encoding="utf-8")
    assert peek_columns(str(tmp_path / "x.csv"), "csv") == ["a", "b"]
    (tmp_path / "x.jsonl").write_text('\n{"a": 1, "c": 2}\n')
    assert peek_columns(str(tmp_path / "x.jsonl"), "jsonl") == ["a", "c"]


def test_plan_units_transform(tmp_path):
    parquet = write_parquet(tmp_path / "x.parquet", [{"q": str(i)} for i in range(5)], 2)
    jsonl = tmp_path / "y.jsonl"
    jsonl.write_text('{"q": "j"}\nnot json\n')
    with TestPipeline() as p:
        units = p | "Plan" >> PlanUnits(urls=[parquet, str(jsonl)], columns=["q"])
        assert_that(units | beam.Map(lambda u: (u.url.rsplit("/", 1)[-1], u.row_group, u.first_row)),
                    equal_to([("x.parquet", 0, 0), ("x.parquet", 1, 2), ("x.parquet", 2, 4), ("y.jsonl", None, 0)]))


def test_plan_units_checks_arguments_before_the_pipeline():
    with pytest.raises(InputError, match="no input files"):
        PlanUnits(urls=[])
    with pytest.raises(InputError, match="unknown input format"):
        PlanUnits(urls=["a.csv"], format="xlsx")
    with pytest.raises(InputError, match="cannot tell the format"):
        PlanUnits(urls=["a.dat"])


def test_directories_expand_to_their_files_and_hidden_files_are_skipped(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/a.parquet", "d/sub/b.parquet", "d/_SUCCESS", "d/.a.parquet.crc"):
        (tmp_path / name).write_bytes(b"")
    assert expand_paths([str(tmp_path / "d")]) == [str(tmp_path / "d/a.parquet"), str(tmp_path / "d/sub/b.parquet")]
    assert expand_paths([str(tmp_path / "d" / "*")]) == [str(tmp_path / "d/a.parquet")]


def test_jsonl_zstd_is_inferred(tmp_path):
    import zstandard

    path = tmp_path / "x.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b'{"q": "z"}\n'))
    assert [r.row for r in records(str(path), "jsonl")] == [{"q": "z"}]


def test_csv_encoding_option(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("q,a\ncafé,crème\n".encode("latin-1"))
    assert [r.row for r in records(str(path), "csv", csv=CsvOptions(encoding="latin-1"))] == [{"q": "café", "a": "crème"}]


def test_header_only_and_empty_files_yield_nothing(tmp_path):
    (tmp_path / "h.csv").write_text("q,a\n")
    (tmp_path / "e.csv").write_text("")
    (tmp_path / "e.jsonl").write_text("")
    assert records(str(tmp_path / "h.csv"), "csv") == records(str(tmp_path / "e.csv"), "csv") == []
    assert records(str(tmp_path / "e.jsonl"), "jsonl") == []


def test_csv_zstd_is_inferred(tmp_path):
    import zstandard

    path = tmp_path / "x.csv.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b'q,a\n"multi\nline",z\n'))
    assert [r.row for r in records(str(path), "csv")] == [{"q": "multi\nline", "a": "z"}]


@pytest.mark.parametrize("chunk_size", [1, 3, 1 << 20])
def test_iter_lines_keeps_every_byte(chunk_size):
    import io

    data = b"a\n\nbc\r\nlast"
    assert list(iter_lines(io.BytesIO(data), chunk_size)) == [b"a\n", b"\n", b"bc\r\n", b"last"]


def test_an_unexpected_reader_failure_is_a_failed_file(tmp_path, monkeypatch):
    def explode(self, unit, columns):
        raise RuntimeError("reader bug")

    monkeypatch.setattr(jsonl.JsonlReader, "read", explode)
    (tmp_path / "x.jsonl").write_text('{"q": 1}\n')
    (unit,) = plan_units(str(tmp_path / "x.jsonl"), "jsonl")
    assert list(read_unit(unit, None)) == [FailedFile(str(tmp_path / "x.jsonl"), "RuntimeError: reader bug (after row -1)")]


def test_a_file_that_cannot_be_planned_is_one_unit_that_fails_when_read(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"this is not parquet at all")
    (unit,) = plan_file(str(tmp_path / "bad.parquet"), "parquet", None, CsvOptions())
    (failed,) = read_unit(unit, None)
    assert isinstance(failed, FailedFile) and "Parquet" in failed.error


def test_large_row_groups_are_read_in_slices_with_exact_provenance(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet, "UNIT_ROWS", 2048)
    monkeypatch.setattr(parquet, "SMALL_FILE_UNITS", 1)  # a large file, as far as cutting goes
    url = write_parquet(tmp_path / "big.parquet", [{"q": str(i)} for i in range(5000)], 4500)
    units = plan_units(url, "parquet")
    assert [(u.row_group, u.first_row, u.rows) for u in units] == [(0, 0, 2048), (0, 2048, 2048), (0, 4096, 404), (1, 4500, 500)]
    rows = [record for unit in units for record in read_unit(unit, None)]
    assert [r.source.row for r in rows] == list(range(5000))
    assert [r.row["q"] for r in rows] == [str(i) for i in range(5000)]


def test_a_small_row_group_is_cut_into_units_that_start_mid_batch(tmp_path):
    url = write_parquet(tmp_path / "small.parquet", [{"q": str(i)} for i in range(1000)], 600)
    units = plan_units(url, "parquet")
    assert [(u.row_group, u.first_row, u.rows) for u in units] == [(0, s, 125) for s in range(0, 500, 125)] + [
        (0, 500, 100), (1, 600, 125), (1, 725, 125), (1, 850, 125), (1, 975, 25)]
    rows = [record for unit in units for record in read_unit(unit, None)]
    assert [(r.source.row, r.row["q"]) for r in rows] == [(i, str(i)) for i in range(1000)]
    (one,) = plan_units(write_parquet(tmp_path / "tiny.parquet", [{"q": "x"}] * 60, 60), "parquet")
    assert one.rows == 60


@pytest.mark.parametrize("range_bytes", [1, 7, 40, 10_000])
def test_jsonl_byte_ranges_cover_every_line_once_with_its_index(tmp_path, range_bytes):
    lines = [b'\xef\xbb\xbf{"q": 0}'] + [f'{{"q": {i}, "pad": "{"x" * (i % 7)}"}}'.encode() for i in range(1, 40)]
    lines[13] = b"not json"
    lines[20] = b""
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    units = jsonl.plan_ranges(str(path), range_bytes)
    if range_bytes < 100:
        assert len(units) > 1
    records = [r for unit in units for r in read_unit(unit, None)]
    assert [r.source.row for r in records] == [i for i in range(40) if i != 20]
    assert [r.row["q"] for r in records if isinstance(r, Item)] == [i for i in range(40) if i not in (13, 20)]
    assert [r.codes for r in records if isinstance(r, Rejected)] == [(INVALID_JSON,)]


def test_a_small_jsonl_file_is_cut_into_ranges_that_spread_over_the_workers(tmp_path):
    path = tmp_path / "small.jsonl"
    path.write_bytes(b"".join(b'{"q": "%d", "pad": "%s"}\n' % (i, b"x" * 200) for i in range(3000)))  # ~680 KB
    units = plan_units(str(path), "jsonl")
    assert len(units) == 8 and units[0].byte_start == 0 and units[-1].byte_end is None
    records = [r for unit in units for r in read_unit(unit, None)]
    assert [(r.source.row, r.row["q"]) for r in records] == [(i, str(i)) for i in range(3000)]
    tiny = tmp_path / "tiny.jsonl"
    tiny.write_bytes(b'{"q": "1"}\n' * 100)
    assert len(plan_units(str(tiny), "jsonl")) == 1  # under 64 KB: one unit
