import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline

from transforms.write import SUCCESS_FILE, WriteJsonl, WriteStatsAndMarker


def test_write_jsonl_shards_with_stable_names(tmp_path):
    records = [{"i": i, "text": "é"} for i in range(10)]
    with TestPipeline() as p:
        p | beam.Create([records[:4], records[4:]]) | WriteJsonl(directory=str(tmp_path / "train"), to_json=lambda r: r, num_shards=3)
    names = sorted(f.name for f in (tmp_path / "train").iterdir())
    assert names == [f"part-0000{i}-of-00003.jsonl" for i in range(3)]
    lines = [json.loads(line) for name in names for line in (tmp_path / "train" / name).read_text(encoding="utf-8").splitlines()]
    assert sorted(lines, key=lambda r: r["i"]) == records


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
    assert (tmp_path / SUCCESS_FILE).exists()
    assert json.loads((tmp_path / "finetune_job.json").read_text()) == {
        "model": "gpt-4o-mini",
        "training_file": "<file id of train/part-00000-of-00001.jsonl>",
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 8, "n_epochs": 4}}},
        "suffix": "faq",
        "seed": 1,
    }
