import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline

from beam_pipeline.outputs.finalize import ReportSamplesFn, WriteStatsAndMarker
from schemas.layout import SUCCESS_FILE
from schemas.recipe import FinetuneSpec, Recipe
from transforms.stats import StatsAccumulator
from transforms.targets.registry import target_for
from transforms.units import UnitResult


def test_stats_job_spec_then_success_and_the_temporary_files_go(tmp_path):
    stats = {"records": {"read": 1, "validation": 0}, "estimate": {"n_epochs": 4}}
    # The epochs come from the stats' estimate, never from the recipe directly.
    target = target_for(Recipe(input={"paths": ["in.jsonl"], "examples": "chat"}, model="gpt-4o-mini-2024-07-18",
                               output={"path": "out"}))
    job = {"finetune": FinetuneSpec(batch_size=8, suffix="faq", seed=1), "example_format": "chat"}
    temporary = tmp_path / "_temporary" / "units" / "00000-000000000000.unit"
    temporary.parent.mkdir(parents=True)
    temporary.write_bytes(b"pass 1")
    (tmp_path / "train").mkdir()
    shard = tmp_path / "train" / "part-00000-of-00001.jsonl"
    shard.write_text("{}\n")
    units = [UnitResult(0, 0, 1, str(temporary), {}, StatsAccumulator())]
    with TestPipeline() as p:
        files = p | "Files" >> beam.Create([("train", str(shard))])
        p | "Stats" >> beam.Create([stats]) | WriteStatsAndMarker(
            output=str(tmp_path), files=files, units=p | "Units" >> beam.Create(units), target=target, job=job)
    assert json.loads((tmp_path / "stats.json").read_text()) == stats
    # The marker is never empty: it carries the counts and the files the run wrote.
    assert json.loads((tmp_path / SUCCESS_FILE).read_text()) == {
        "records": stats["records"], "files": ["finetune_job.json", "stats.json", "train/part-00000-of-00001.jsonl"]}
    assert json.loads((tmp_path / "finetune_job.json").read_text()) == {
        "model": "gpt-4o-mini-2024-07-18",
        "training_file": "<file id of train/part-00000-of-00001.jsonl>",
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 8, "n_epochs": 4}}},
        "suffix": "faq",
        "seed": 1,
    }
    assert not (tmp_path / "_temporary").exists()


def test_report_samples_are_the_first_per_code_by_file_and_row():
    def sample(file, row, code):
        return (code, {"source": {"file": file, "row": row}, "errors": [{"code": code, "message": ""}]})

    units = [UnitResult(1, 0, 9, None, {}, StatsAccumulator(), [sample("b", r, "x") for r in range(3)]),
             UnitResult(0, 0, 9, None, {}, StatsAccumulator(), [sample("a", r, "x") for r in range(4, 8)] + [sample("a", 1, "y")])]
    combine = ReportSamplesFn()
    # Units combined in any grouping choose the same samples.
    parts = [combine.add_input(combine.create_accumulator(), unit) for unit in units]
    chosen = combine.extract_output(combine.merge_accumulators(parts[::-1]))
    assert chosen == combine.extract_output(combine.add_input(parts[1], units[0]))
    assert [(d["source"]["file"], d["source"]["row"]) for d in chosen["x"]] == [("a", 4), ("a", 5), ("a", 6), ("a", 7), ("b", 0)]
    assert [d["source"]["row"] for d in chosen["y"]] == [1]
