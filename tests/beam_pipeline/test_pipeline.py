"""The graph ``build_pipeline`` wires, checked without running it."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.pipeline import PipelineVisitor

from beam_pipeline.pipeline import build_pipeline, plan_job
from beam_pipeline.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted(str(p.relative_to(REPO)) for p in (REPO / "examples" / "recipes").glob("*.yaml"))
# Every shuffle in the graph, and the small things it moves: read units and partition numbers to
# spread over the workers, shard specs, near-dedup candidates and verified pairs, and combines of
# statistics and report samples. Records never: they wait in pass 1's temporary files (issue 13).
SMALL_SHUFFLES = (
    "PlanUnits/SpreadFiles/", "PlanUnits/SpreadUnits/",
    "DecideDuplicates/ExactPartitions/", "DecideDuplicates/NearPartitions/",
    "DecideDuplicates/SpreadExact/", "DecideDuplicates/SpreadNear/", "DecideDuplicates/LowestOriginal/",
    "DecideDuplicates/AgainstPartitions/", "DecideDuplicates/SpreadAgainst/", "DecideDuplicates/AgainstBlocks/",
    "WriteDedupIndex/IndexPartitions/", "WriteDedupIndex/SpreadIndex/", "ComputeStats/CombinePerFile/",
    "WriteShards/SpreadShards/",
    "ComputeStats/CombineUnits/", "ComputeStats/CombineTakenBack/", "ComputeStats/CombineDuplicates/",
    "ComputeStats/Combine/", "WriteStats/ReportSamples/",
)


class _Shuffles(PipelineVisitor):
    def __init__(self):
        self.labels: list[str] = []

    def visit_transform(self, node):
        if isinstance(node.transform, (beam.GroupByKey, beam.CoGroupByKey)):
            self.labels.append(node.full_label)

    def enter_composite_transform(self, node):
        if isinstance(node.transform, beam.CoGroupByKey):
            self.labels.append(node.full_label)


@pytest.mark.parametrize("recipe", RECIPES)
def test_no_records_are_shuffled_with_any_example_recipe(tmp_path, recipe):
    loaded = load_recipe(str(REPO / recipe), overrides=[("output.path", str(tmp_path / "out"))])
    # With both kinds of dedup and a shard count: every step the graph can have.
    loaded = loaded.model_validate({**loaded.model_dump(), "dedup": {"exact": True, "near": {"threshold": 0.8}},
                                    "output": {**loaded.output.model_dump(), "num_shards": 3, "provenance": True}})
    pipeline = beam.Pipeline()
    build_pipeline(pipeline, plan_job(loaded))
    shuffles = _Shuffles()
    pipeline.visit(shuffles)
    assert shuffles.labels, "the graph has its known shuffles"
    unexpected = [label for label in shuffles.labels if not label.startswith(SMALL_SHUFFLES)]
    assert unexpected == []
