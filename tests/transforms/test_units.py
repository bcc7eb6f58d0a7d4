"""Pass 1: a read unit's records through the chain, written in input order to one file whose
sections the unit's result locates; statistics and samples with it."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.models import lookup_model
from schemas.recipe import CsvOptions, LimitsSpec, SplitSpec, TemplateSpec
from transforms.readers.base import BadInputFile
from transforms.readers.registry import reader_for
from transforms.split import AssignSplit
from transforms.stage import RecordChain
from transforms.template import RenderExamples
from transforms.tokens import CountTokens
from transforms.units import UnitProcessor, UnitSettings, index_section
from transforms.validate import ValidateExamples

TEMPLATE = TemplateSpec(messages=[{"role": "user", "content": "{{ q }}"}, {"role": "assistant", "content": "{{ a }}"}])


def chain(validation_fraction: float = 0.5) -> RecordChain:
    stages = [RenderExamples(template=TEMPLATE), ValidateExamples(format="chat"),
              CountTokens(model=lookup_model("gpt-4o-mini"), format="chat"),
              AssignSplit(spec=SplitSpec(validation_fraction=validation_fraction, seed=0))]
    records = RecordChain([stage.dofn for stage in stages])
    records.setup()
    return records


def settings(tmp_path, files, **changes) -> UnitSettings:
    options = {"columns": frozenset({"q", "a"}), "csv": CsvOptions(), "limits": LimitsSpec(max_field_chars=1000),
               "on_bad_file": "fail",
               "max_tokens": 65536,
               "format": "chat", "temp_dir": str(tmp_path / "tmp"), "files": tuple(files), **changes}
    return UnitSettings(**options)


def section_lines(result, name):
    section = result.sections[name]
    with open(result.path, "rb") as f:
        f.seek(section.start)
        return f.read(section.end - section.start).splitlines()


def test_a_unit_is_written_in_input_order_with_its_index_and_statistics(tmp_path):
    rows = [{"q": f"question {i}", "a": f"answer {i}" if i != 3 else ""} for i in range(20)]
    path = str(tmp_path / "x.parquet")
    pq.write_table(pa.Table.from_pylist(rows), path)
    (unit,) = reader_for("parquet").plan(path)
    result = UnitProcessor(settings(tmp_path, [path]), chain(), None).process(unit)
    assert (result.file, result.first_row, result.end_row) == (0, 0, 20)
    kept = {}
    for split in ("train", "validation"):
        lines = section_lines(result, split)
        index = [orjson.loads(line) for line in section_lines(result, index_section(split))]
        assert [entry[1] for entry in index] == [len(line) + 1 for line in lines]  # sizes, newline included
        kept.update({entry[0]: orjson.loads(line) for entry, line in zip(index, lines)})
        assert [entry[0] for entry in index] == sorted(entry[0] for entry in index)  # input order
    assert sorted(kept) == [i for i in range(20) if i != 3]
    assert kept[7]["messages"][1]["content"] == "answer 7"
    (rejected,) = [orjson.loads(line) for line in section_lines(result, "rejected")]
    assert rejected["source"]["row"] == 3 and rejected["errors"][0]["code"] == "missing_content"
    assert sum(result.stats.rows_per_file.values()) == 20 and result.stats.rejected == 1
    assert [code for code, _ in result.samples] == ["missing_content"]
    assert result.sections["train"].records + result.sections["validation"].records == 19


def test_a_unit_with_nothing_to_write_has_no_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("q,a\n")
    (unit,) = reader_for("csv").plan(str(path))
    result = UnitProcessor(settings(tmp_path, [str(path)]), chain(), None).process(unit)
    assert result.path is None and result.sections == {}
    # Only the note that the unit is complete (what --resume reuses).
    assert [p.name for p in (tmp_path / "tmp").iterdir()] == ["00000-000000000000.unit.done"]


def test_a_bad_file_fails_the_unit_or_is_counted(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00broken")
    (unit,) = reader_for("jsonl").plan(str(path))
    with pytest.raises(BadInputFile, match="cannot read"):
        UnitProcessor(settings(tmp_path, [str(path)]), chain(), None).process(unit)
    result = UnitProcessor(settings(tmp_path, [str(path)], on_bad_file="skip"), chain(), None).process(unit)
    assert list(result.stats.failed_files) == [str(path)]


def test_line_sizes_are_kept_for_byte_limited_shards(tmp_path):
    rows = [{"q": "q" * i, "a": "a"} for i in range(1, 6)]
    path = str(tmp_path / "x.parquet")
    pq.write_table(pa.Table.from_pylist(rows), path)
    (unit,) = reader_for("parquet").plan(path)
    result = UnitProcessor(settings(tmp_path, [path], keep_sizes=True), chain(0.0), None).process(unit)
    import numpy as np

    sizes = np.frombuffer(result.sizes["train"], dtype=np.uint32).tolist()
    assert sizes == [len(line) + 1 for line in section_lines(result, "train")]


def test_a_saved_result_reads_back_as_it_was(tmp_path):
    from dataclasses import replace

    import numpy as np

    from transforms.readers.base import ReadUnit
    from transforms.stats import StatsAccumulator
    from transforms.units import Section, UnitResult, reusable_result

    path = tmp_path / "00000-000000000000.unit"
    path.write_bytes(b"x" * 10)
    unit = ReadUnit(str(tmp_path / "in.jsonl"), "jsonl", byte_end=100)
    result = UnitResult(0, 0, 2, str(path), {"train": Section(0, 10, 2)}, StatsAccumulator(), [],
                        {"train": np.array([4, 6], np.uint32).tobytes()}, {"train": np.array([0, 1], np.uint64).tobytes()},
                        {"struct": {"input_ids": {"list": "int64"}}}, str(path) + ".done")
    (tmp_path / (path.name + ".done")).write_bytes(result.to_json(unit))
    back = reusable_result(unit, result.done)
    assert replace(back, stats=result.stats) == result
    assert reusable_result(replace(unit, byte_end=99), result.done) is None  # another unit's result
