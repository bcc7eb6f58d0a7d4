"""The Flink path without Flink: PortableRunner against Beam's own job service, which speaks the
Job API that Flink's job server speaks, with EXTERNAL SDK workers from a worker pool that starts
them as Beam's container does. Each run must give exactly what the DirectRunner gives. (LOOPBACK
workers, byte for byte, on csv_chat and the plan-cutting cases: test_determinism.py; EXTERNAL
workers reading and writing s3:// with parquet_multiturn: test_object_stores_portable.py.)"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from beam_pipeline.cli import main
from tests.beam_pipeline.helpers import IN_MEMORY, snapshot
from tests.deploy.portable import job_service, worker_pool

REPO = Path(__file__).resolve().parents[2]
RECIPES = ["csv_chat.yaml"]


def ftprep(*argv: str) -> None:
    result = subprocess.run([sys.executable, "-m", "beam_pipeline", "run", *argv], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory):
    logs = tmp_path_factory.mktemp("services")
    with job_service(logs / "job_service.log") as jobs, worker_pool(logs / "worker_pool.log", booted=True) as pool:
        yield {"job": jobs, "pool": pool}


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    out = tmp_path_factory.mktemp("direct")
    for recipe in RECIPES:
        assert main(["run", str(REPO / "examples" / "recipes" / recipe), "--output", str(out / recipe), IN_MEMORY,
                     "--no-progress"]) == 0
    return out


@pytest.mark.parametrize("recipe", RECIPES)
def test_portable_runner_equals_direct_runner(recipe, endpoints, direct, tmp_path):
    ftprep(f"examples/recipes/{recipe}", "--output", str(tmp_path / "out"), "--runner=PortableRunner",
           f"--job_endpoint={endpoints['job']}", "--environment_type=EXTERNAL", f"--environment_config={endpoints['pool']}")
    portable, expected = snapshot(tmp_path / "out"), snapshot(direct / recipe)
    assert portable["success"] and portable["lines"]["train"] and portable["lines"]["rejected"]
    assert portable == expected


def test_no_wait_returns_once_the_job_is_submitted(endpoints, direct, tmp_path):
    """The launcher exits after submission (LOOPBACK workers would die with it, so EXTERNAL);
    the job service finishes the job and writes _SUCCESS last."""
    ftprep("examples/recipes/csv_chat.yaml", "--output", str(tmp_path / "out"), "--no-wait",
           "--runner=PortableRunner", f"--job_endpoint={endpoints['job']}",
           "--environment_type=EXTERNAL", f"--environment_config={endpoints['pool']}")
    deadline = time.monotonic() + 120
    while not (tmp_path / "out" / "_SUCCESS").exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert snapshot(tmp_path / "out") == snapshot(direct / "csv_chat.yaml")
