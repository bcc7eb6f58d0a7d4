import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline

from transforms.write import SUCCESS_FILE, WriteJsonl, WriteStatsAndMarker


def read_shards(directory):
    return [json.loads(line) for f in sorted(directory.iterdir()) for line in f.read_text(encoding="utf-8").splitlines()]


def test_write_jsonl_shards_with_stable_names(tmp_path):
    records = [{"i": i, "text": "é"} for i in range(10)]
    with TestPipeline() as p:
        p | beam.Create([records[:4], records[4:7], records[7:]]) | WriteJsonl(
            directory=str(tmp_path / "train"), to_json=lambda r: r, num_shards=3)
    names = sorted(f.name for f in (tmp_path / "train").iterdir())
    assert names == [f"part-0000{i}-of-00003.jsonl" for i in range(3)]
    assert sorted(read_shards(tmp_path / "train"), key=lambda r: r["i"]) == records


def test_no_empty_shard_is_ever_written(tmp_path):
    """Object stores refuse some zero-byte uploads: shards no record reached are not written,
    and an empty input writes no file at all."""
    records = [{"i": i} for i in range(3)]
    with TestPipeline() as p:
        p | "Few" >> beam.Create([records]) | "WriteFew" >> WriteJsonl(
            directory=str(tmp_path / "few"), to_json=lambda r: r, num_shards=4)
        p | "None" >> beam.Create([]) | "WriteNone" >> WriteJsonl(directory=str(tmp_path / "none"), to_json=lambda r: r)
        p | "NoneFixed" >> beam.Create([]) | "WriteNoneFixed" >> WriteJsonl(
            directory=str(tmp_path / "none_fixed"), to_json=lambda r: r, num_shards=2)
    # Three records for four shards: three shards of one record, numbered among themselves.
    assert sorted(f.name for f in (tmp_path / "few").iterdir()) == [f"part-0000{i}-of-00003.jsonl" for i in range(3)]
    assert sorted(read_shards(tmp_path / "few"), key=lambda r: r["i"]) == records
    for name in ("none", "none_fixed"):
        assert not [f for f in tmp_path.rglob("*") if f.is_file() and name in f.parts], name
    assert all(f.stat().st_size > 0 for f in tmp_path.rglob("*") if f.is_file())


def test_stats_job_spec_then_success_after_writes(tmp_path):
    stats = {"records": {"read": 1, "validation": 0}, "estimate": {"n_epochs": 4}}
    job = {"model": "gpt-4o-mini", "method": "supervised", "suffix": "faq", "seed": 1,
           "hyperparameters": {"n_epochs": "auto", "batch_size": 8, "learning_rate_multiplier": "auto"}}
    with TestPipeline() as p:
        def write(name):
            return p | f"{name}Rows" >> beam.Create([["a"]]) | f"Write{name}" >> WriteJsonl(
                directory=str(tmp_path / name), to_json=lambda r: r, num_shards=1)

        written = {name: write(name) for name in ("train", "validation", "rejected")}
        p | "Stats" >> beam.Create([stats]) | WriteStatsAndMarker(output=str(tmp_path), written=written, job=job)
    assert json.loads((tmp_path / "stats.json").read_text()) == stats
    # The marker is never empty: it carries the counts and the files the run wrote.
    assert json.loads((tmp_path / SUCCESS_FILE).read_text()) == {
        "records": stats["records"],
        "files": ["finetune_job.json", "rejected/part-00000-of-00001.jsonl", "stats.json",
                  "train/part-00000-of-00001.jsonl", "validation/part-00000-of-00001.jsonl"],
    }
    assert json.loads((tmp_path / "finetune_job.json").read_text()) == {
        "model": "gpt-4o-mini",
        "training_file": "<file id of train/part-00000-of-00001.jsonl>",
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 8, "n_epochs": 4}}},
        "suffix": "faq",
        "seed": 1,
    }
