import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline

from transforms.write import SUCCESS_FILE, WriteJsonl, WriteStatsAndMarker


def test_write_jsonl_shards_with_stable_names(tmp_path):
    records = [{"i": i, "text": "é"} for i in range(10)]
    with TestPipeline() as p:
        p | beam.Create(records) | WriteJsonl(directory=str(tmp_path / "train"), to_json=lambda r: r, num_shards=3)
    names = sorted(f.name for f in (tmp_path / "train").iterdir())
    assert names == [f"part-0000{i}-of-00003.jsonl" for i in range(3)]
    lines = [json.loads(line) for name in names for line in (tmp_path / "train" / name).read_text(encoding="utf-8").splitlines()]
    assert sorted(lines, key=lambda r: r["i"]) == records


def test_stats_then_success_after_writes(tmp_path):
    with TestPipeline() as p:
        written = p | beam.Create(["a"]) | WriteJsonl(directory=str(tmp_path / "x"), to_json=lambda r: r, num_shards=1)
        stats = p | "Stats" >> beam.Create([{"records": {"read": 1}}])
        stats | WriteStatsAndMarker(output=str(tmp_path), after=[written])
    assert json.loads((tmp_path / "stats.json").read_text()) == {"records": {"read": 1}}
    assert (tmp_path / SUCCESS_FILE).exists()
    assert (tmp_path / "x" / "part-00000-of-00001.jsonl").read_text() == '"a"\n'
