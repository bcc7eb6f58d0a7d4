"""The same bytes every time: each example recipe and the bad-input corpus, run twice in memory,
on two worker processes and on the PortableRunner, write byte-identical files — every shard of
every output, ``stats.json``, ``finetune_job.json`` and ``_SUCCESS``. (``report.html`` names the
output directory in its title and ``_FTPREP`` the time; they are left out.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from beam_pipeline.cli import main
from tests.beam_pipeline.helpers import IN_MEMORY
from tests.deploy.portable import job_service

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted(p.name for p in (REPO / "examples" / "recipes").glob("*.yaml"))
NOT_COMPARED = {"report.html", "_FTPREP"}


def every_file(output: Path) -> dict[str, bytes]:
    return {str(p.relative_to(output)): p.read_bytes() for p in sorted(output.rglob("*"))
            if p.is_file() and p.name not in NOT_COMPARED}


def ftprep(*argv: str) -> None:
    result = subprocess.run([sys.executable, "-m", "beam_pipeline", "run", *argv, "--no-progress"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    with job_service(tmp_path_factory.mktemp("services") / "job_service.log") as endpoint:
        yield endpoint


def runs(recipe: str, out: Path, jobs: str, *extra: str) -> dict[str, dict[str, bytes]]:
    outputs = {}
    for name in ("memory", "again"):
        assert main(["run", recipe, "--output", str(out / name), IN_MEMORY, "--no-progress", *extra]) == 0
    ftprep(recipe, "--output", str(out / "two_workers"), "--direct_num_workers=2",
           "--direct_running_mode=multi_processing", *extra)
    ftprep(recipe, "--output", str(out / "portable"), "--runner=PortableRunner", f"--job_endpoint={jobs}",
           "--environment_type=LOOPBACK", *extra)
    for name in ("memory", "again", "two_workers", "portable"):
        outputs[name] = every_file(out / name)
    return outputs


def assert_identical(outputs: dict[str, dict[str, bytes]]) -> None:
    reference = outputs["memory"]
    assert any(name.startswith("train/") for name in reference) and "stats.json" in reference
    for name, files in outputs.items():
        assert sorted(files) == sorted(reference), name
        different = [path for path in reference if files[path] != reference[path]]
        assert not different, f"{name}: {different}"


@pytest.mark.parametrize("recipe", RECIPES)
def test_example_recipes_write_the_same_bytes_everywhere(recipe, jobs, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    assert_identical(runs(f"examples/recipes/{recipe}", tmp_path, jobs))


def test_the_bad_input_corpus_writes_the_same_bytes_everywhere(jobs, tmp_path):
    from tests.beam_pipeline.test_bad_input import corpus_recipe, write_bad_files, write_corpus

    write_corpus(tmp_path)
    write_bad_files(tmp_path)
    assert_identical(runs(corpus_recipe(tmp_path), tmp_path, jobs, "--on-bad-file=skip"))


def test_shard_limits_and_dedup_write_the_same_bytes_everywhere(jobs, tmp_path, monkeypatch):
    """Near and exact dedup, a shard count and a byte limit: the parts of the plan that cut."""
    monkeypatch.chdir(REPO)
    outputs = runs("examples/recipes/csv_chat.yaml", tmp_path, jobs, "--set", "dedup.near={threshold: 0.5}",
                   "--set", "output.num_shards=2", "--set", "output.max_shard_bytes=1024",
                   "--set", "output.provenance=true")
    assert_identical(outputs)
    assert len([name for name in outputs["memory"] if name.startswith("train/")]) >= 2
