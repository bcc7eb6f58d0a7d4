"""Pass 2: the shard plan is a function of the units' results and the decisions alone, and the
shards are cut from the units' files in (file, row) order, duplicates left out."""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import orjson
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from transforms.dedup import Decision, decision_block, write_block
from transforms.shards import ShardContext, WriteShards, plan_shards
from transforms.stats import StatsAccumulator
from transforms.units import Section, UnitResult, index_section


def example(row: int) -> bytes:
    return orjson.dumps({"messages": [{"role": "user", "content": f"q{row}"}, {"role": "assistant", "content": f"a{row}"}]})


def unit(tmp_path, file: int, rows: range, *, sizes: bool = False, rejected: int = 0) -> UnitResult:
    """A unit file as pass 1 writes one: every row kept, in train."""
    lines = [example(row) for row in rows]
    index = [orjson.dumps([row, len(line) + 1, 10, 10, 4, [["assistant", 4], ["user", 6]], False, [], 2, 0]) for row, line in zip(rows, lines)]
    sections, data = {}, b""
    blocks = {"train": lines, index_section("train"): index,
              "rejected": [orjson.dumps({"source": {"file": "f", "row": r}}) for r in range(rejected)]}
    for name in sorted(blocks):
        if blocks[name]:
            body = b"".join(line + b"\n" for line in blocks[name])
            sections[name] = Section(len(data), len(data) + len(body), len(blocks[name]))
            data += body
    path = tmp_path / f"{file}-{rows.start}.unit"
    path.write_bytes(data)
    kept_sizes, row_numbers = {}, {}
    if sizes:
        kept_sizes = {"train": np.array([len(line) + 1 for line in lines], dtype=np.uint32).tobytes(),
                      index_section("train"): np.array([len(line) + 1 for line in index], dtype=np.uint32).tobytes()}
        row_numbers = {"train": np.array(list(rows), dtype=np.uint64).tobytes()}
    return UnitResult(file, rows.start, rows.stop, str(path), sections, StatsAccumulator(), [], kept_sizes, row_numbers)


def test_the_plan_follows_file_and_row_order_and_never_plans_an_empty_shard(tmp_path):
    units = [unit(tmp_path, 1, range(0, 5)), unit(tmp_path, 0, range(5, 10)), unit(tmp_path, 0, range(0, 5), rejected=2)]
    plans = plan_shards(list(reversed(units)), [], num_shards=2)
    train = [spec for spec in plans if spec.output == "train"]
    assert [spec.name for spec in train] == ["train/part-00000-of-00002.jsonl", "train/part-00001-of-00002.jsonl"]
    assert [(p.file, p.path.rsplit("/", 1)[-1]) for spec in train for p in spec.pieces] == [
        (0, "0-0.unit"), (0, "0-5.unit"), (1, "1-0.unit")]
    (rejected,) = [spec for spec in plans if spec.output == "rejected"]  # one unit has rejects: one shard
    assert rejected.count == 1 and len(rejected.pieces) == 1
    assert plans == plan_shards(units, [], num_shards=2)  # the same plan whatever the arrival order


def test_a_shard_count_cuts_inside_a_unit_where_line_sizes_are_known(tmp_path):
    plans = plan_shards([unit(tmp_path, 0, range(40), sizes=True)], [], num_shards=3)
    assert [(spec.count, sum(p.count for p in spec.pieces)) for spec in plans] == [(3, 14), (3, 13), (3, 13)]


def test_a_byte_limit_cuts_at_record_boundaries(tmp_path):
    small = unit(tmp_path, 0, range(30), sizes=True)
    plans = plan_shards([small], [], max_shard_bytes=500)
    assert len(plans) > 3 and all(sum(p.section.end - p.section.start for p in spec.pieces) <= 500 for spec in plans)
    assert sum(p.count for spec in plans for p in spec.pieces) == 30


def write(tmp_path, units, decisions, taken_back=None, **plan) -> dict[str, list[bytes]]:
    from apache_beam.testing.util import assert_that, equal_to

    from transforms.stats import StatsCombineFn

    out = tmp_path / "out"
    specs = plan_shards(units, decisions, **plan)
    with TestPipeline() as p:
        files, back = (p | "Specs" >> beam.Create(specs)) | WriteShards(
            context=ShardContext(output_dir=str(out), files=("a.parquet", "b.parquet"), max_tokens=100),
            decisions=p | "Decisions" >> beam.Create(
                [write_block(str(tmp_path / f"decisions-{i}.npy"), block) for i, block in enumerate(decisions)]))
        if taken_back is not None:  # pass 1 counted every example; the duplicates are taken back
            counted = back | beam.CombineGlobally(StatsCombineFn()) | beam.Map(lambda acc: (acc.kept["train"], acc.tokens["train"]))
            assert_that(counted, equal_to([(-taken_back, -10 * taken_back)]))
    written = {}
    for path in sorted(out.rglob("*.jsonl")):
        written.setdefault(str(path.parent.relative_to(out)), []).extend(path.read_bytes().splitlines())
    return written


def test_shards_leave_duplicates_out_and_write_them_with_their_survivor(tmp_path):
    units = [unit(tmp_path, 0, range(0, 4)), unit(tmp_path, 1, range(0, 3))]
    decisions = [decision_block([Decision(1, 2, "duplicate_exact", 0, 1, "train"), Decision(0, 3, "duplicate_near", 0, 0, "train")])]
    written = write(tmp_path, units, decisions, provenance=True)
    assert written["train"] == [example(r) for r in (0, 1, 2)] + [example(r) for r in (0, 1)]
    assert [orjson.loads(line) for line in written["provenance/train"]] == [
        {"file": "a.parquet", "row": r} for r in (0, 1, 2)] + [{"file": "b.parquet", "row": r} for r in (0, 1)]
    (exact,) = [orjson.loads(line) for line in written["dropped/duplicate_exact"]]
    assert exact == {"source": {"file": "b.parquet", "row": 2}, "reason": "duplicate_exact",
                     "duplicate_of": {"file": "a.parquet", "row": 1}, "record": orjson.loads(example(2))}
    assert len(written["dropped/duplicate_near"]) == 1


@pytest.mark.parametrize("plan", [{}, {"num_shards": 3}, {"max_shard_bytes": 300}, {"max_shard_bytes": 300, "provenance": True}])
@pytest.mark.parametrize("duplicates", [(), (3, 4, 30, 49)])
def test_every_kept_record_is_written_once_in_order(tmp_path, plan, duplicates):
    """Cut anywhere, with duplicates among the records cut: each record once, in order, and each
    duplicate taken back from the statistics once."""
    units = [unit(tmp_path, 0, range(0, 25), sizes=True), unit(tmp_path, 0, range(25, 50), sizes=True)]
    decisions = [decision_block(Decision(0, row, "duplicate_exact", 0, 0, "train") for row in duplicates)]
    specs = plan_shards(units, decisions, **plan)
    if plan.get("max_shard_bytes"):
        assert len([s for s in specs if s.output == "train"]) > 2
    kept = [r for r in range(50) if r not in duplicates]
    written = write(tmp_path, units, decisions, taken_back=len(duplicates), **plan)
    assert written["train"] == [example(r) for r in kept]
    if plan.get("provenance"):
        assert [orjson.loads(line)["row"] for line in written["provenance/train"]] == kept
    assert sum(p.count for s in specs if s.output == "train" for p in s.pieces) == len(kept)


def test_parquet_row_groups_are_bounded_by_their_json_size():
    from transforms.shards import _groups

    lines = [b"x" * 10] * 7 + [b"y" * 35]
    assert [len(group) for group in _groups(lines, 30)] == [3, 3, 1, 1]
    assert [b"".join(group) for group in _groups([b"a" * 50], 10)] == [b"a" * 50]  # a long line alone
    assert list(_groups([], 10)) == []
