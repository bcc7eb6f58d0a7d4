"""The same bytes everywhere and as before (see ``test_determinism.py``) for the bad-input
corpus and for a run whose plan cuts (near and exact dedup, a shard count, a byte limit). A file
of their own: the suite's workers take whole files, and the example recipes' runs are most of a
worker's time already."""

from __future__ import annotations

import pytest

from tests.deploy.portable import job_service
from tests.deploy.test_determinism import REPO, assert_as_before, assert_identical, runs


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    with job_service(tmp_path_factory.mktemp("services") / "job_service.log") as endpoint:
        yield endpoint


def test_the_bad_input_corpus_writes_the_same_bytes_everywhere(jobs, tmp_path):
    from tests.beam_pipeline.test_bad_input import corpus_recipe, write_bad_files, write_corpus

    write_corpus(tmp_path)
    write_bad_files(tmp_path)
    outputs = runs(corpus_recipe(tmp_path), tmp_path, jobs, "--on-bad-file=skip")
    assert_identical(outputs)
    assert_as_before("bad-input corpus", outputs["memory"], tmp_path / "memory", tmp_path)


def test_shard_limits_and_dedup_write_the_same_bytes_everywhere(jobs, tmp_path, monkeypatch):
    """Near and exact dedup, a shard count and a byte limit: the parts of the plan that cut."""
    monkeypatch.chdir(REPO)
    outputs = runs("examples/recipes/csv_chat.yaml", tmp_path, jobs, "--set", "dedup.near={threshold: 0.5}",
                   "--set", "output.num_shards=2", "--set", "output.max_shard_bytes=1024",
                   "--set", "output.provenance=true")
    assert_identical(outputs)
    assert_as_before("csv_chat.yaml, near dedup, shard limits", outputs["memory"], tmp_path / "memory", REPO)
    assert len([name for name in outputs["memory"] if name.startswith("train/")]) >= 2
