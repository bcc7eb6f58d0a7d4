"""s3:// in and out on the PortableRunner with booted SDK workers (see ``test_object_stores.py``;
a file of its own so that two test workers share the object-store runs)."""

from __future__ import annotations

from tests.deploy.portable import job_service, worker_pool
from tests.deploy.test_object_stores import (  # noqa: F401 - s3 and local are fixtures
    BUCKET, PARQUET_INPUT, PARQUET_RECIPE, SETTINGS, assert_marker_lists_every_object, downloaded, ftprep, local, s3,
    snapshot,
)


def test_s3_in_and_out_on_the_portable_runner_with_booted_workers(s3, local, tmp_path):
    """SDK workers in their own processes, started by a worker pool through Beam's boot sequence:
    their S3 client is configured only by the --s3_* options the provision service hands them."""
    logs = tmp_path / "services"
    logs.mkdir()
    with job_service(logs / "job_service.log") as jobs, \
            worker_pool(logs / "worker_pool.log", booted=True, env=s3["env"]) as pool:
        ftprep(PARQUET_RECIPE, "--input", f"s3://{BUCKET}/in/{PARQUET_INPUT.name}", "--output", f"s3://{BUCKET}/out/portable",
               *SETTINGS, "--runner=PortableRunner", f"--job_endpoint={jobs}", "--environment_type=EXTERNAL",
               f"--environment_config={pool}", *s3["flags"], env=s3["env"])
    out = downloaded(s3, "out/portable", tmp_path / "portable", local.input_dir, f"s3://{BUCKET}/in")
    assert_marker_lists_every_object(out)
    result = snapshot(out)
    assert result["lines"]["train"] and result["lines"]["rejected"]
    assert result == snapshot(local.out(PARQUET_RECIPE))
