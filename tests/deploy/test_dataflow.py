"""The Dataflow job, built offline: DataflowRunner with ``--dry_run=True`` translates the pipeline,
resolves the worker image and builds the staged package exactly as a submission would, then
stops before calling the service. What can go wrong before submission is checked here."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.portability.api import beam_runner_api_pb2

from beam_pipeline.options import pipeline_options
from beam_pipeline.pipeline import build_pipeline, plan_job
from beam_pipeline.recipe import load_recipe
from tests.deploy.extras import need_module

REPO = Path(__file__).resolve().parents[2]
DATAFLOW = ["--runner=DataflowRunner", "--dry_run=True", "--project=ftprep-test", "--region=europe-west1",
            "--temp_location=gs://ftprep-test/tmp"]
# What Dataflow Runner v2 runs for a batch job: the portable primitives. Anything else (a
# DirectRunner-only or test transform, a cross-language step without its expansion) fails there.
DATAFLOW_PRIMITIVES = {
    "beam:transform:pardo:v1", "beam:transform:group_by_key:v1", "beam:transform:impulse:v1",
    "beam:transform:flatten:v1", "beam:transform:window_into:v1", "beam:transform:reshuffle:v1",
    "beam:transform:combine_per_key_precombine:v1", "beam:transform:combine_per_key_merge_accumulators:v1",
    "beam:transform:combine_per_key_extract_outputs:v1",
}


@pytest.fixture(autouse=True)
def dataflow_extra():
    need_module("apache_beam.runners.dataflow.internal.apiclient", "pip install 'ftprep[dataflow]'")


def pinned_beam() -> str:
    return re.search(r'"apache-beam==([^"]+)"', (REPO / "pyproject.toml").read_text())[1]


def dry_run(tmp_path, *flags, recipe="examples/recipes/parquet_chat.yaml", inputs=None):
    overrides = [("output.path", str(tmp_path / "out")), *([("input.paths", inputs)] if inputs else [])]
    plan = plan_job(load_recipe(str(REPO / recipe), overrides=overrides), overwrite=False)
    pipeline = beam.Pipeline(options=pipeline_options([*DATAFLOW, *flags]))
    build_pipeline(pipeline, plan)
    return pipeline.run().job


def staged(environment) -> dict[str, str]:
    files = {}
    for artifact in environment.dependencies:
        name = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(artifact.role_payload).staged_name
        files[name] = beam_runner_api_pb2.ArtifactFilePayload.FromString(artifact.type_payload).path
    return files


def the_environment(job):
    (environment,) = job.proto_pipeline.components.environments.values()
    assert environment.urn == "beam:env:docker:v1"
    return environment


def test_job_with_the_project_staged_as_a_package(tmp_path):
    job = dry_run(tmp_path, f"--setup_file={REPO / 'pyproject.toml'}")
    environment = the_environment(job)
    image = beam_runner_api_pb2.DockerPayload.FromString(environment.payload).container_image
    # Workers run the Beam the launcher pins: a mismatch fails at worker start-up, far from here.
    assert beam.__version__ == pinned_beam()
    assert image.endswith(f"beam_python{sys.version_info.major}.{sys.version_info.minor}_sdk:{pinned_beam()}")

    files = staged(environment)
    assert "pickled_main_session" not in files, "nothing may depend on the launcher's __main__"
    with tarfile.open(files["workflow.tar.gz"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for needed in ["beam_pipeline/launch.py", "transforms/tokens.py", "schemas/stats.schema.json", "pyproject.toml"]:
        assert needed in names

    transforms = job.proto_pipeline.components.transforms
    leaves = [t for t in transforms.values() if not t.subtransforms]
    assert {t.spec.urn for t in leaves} <= DATAFLOW_PRIMITIVES
    env_id = next(iter(job.proto_pipeline.components.environments))
    assert all(t.environment_id == env_id for t in leaves if t.spec.urn == "beam:transform:pardo:v1")


def test_job_with_a_custom_worker_image_stages_nothing_of_the_project(tmp_path):
    image = "europe-docker.pkg.dev/ftprep-test/ftprep/ftprep:0.1.0"
    job = dry_run(tmp_path, f"--sdk_container_image={image}")
    environment = the_environment(job)
    assert beam_runner_api_pb2.DockerPayload.FromString(environment.payload).container_image == image
    assert "workflow.tar.gz" not in staged(environment)


def test_step_names_do_not_depend_on_the_inputs(tmp_path):
    """A Dataflow --update (or a Flink savepoint) matches steps by name: the names are a function of
    the recipe's stages, not of the files a run reads."""
    one = dry_run(tmp_path / "a", inputs=[str(REPO / "examples/data/qa-00000.parquet")])
    two = dry_run(tmp_path / "b", inputs=[str(REPO / "examples/data/qa-*.parquet")])
    names = lambda job: sorted(t.unique_name for t in job.proto_pipeline.components.transforms.values())  # noqa: E731
    assert names(one) == names(two)
    assert "ProcessUnits" in names(one) and "ComputeStats" in names(one)


def test_cli_dry_run_exits_0_and_says_nothing_ran(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "beam_pipeline", "run", "examples/recipes/csv_chat.yaml",
         "--output", str(tmp_path / "out"), *DATAFLOW, f"--setup_file={REPO / 'pyproject.toml'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dry run: the job description was built and checked; nothing ran" in result.stderr
