"""The same bytes every time: each example recipe (the CSV ones here, the Parquet ones in
``test_determinism_parquet.py``, so that two test workers share them; and, in
``test_determinism_cuts.py``, the bad-input corpus and a run whose plan cuts), run in memory,
on two worker processes and (csv_chat and the cuts) on the PortableRunner, write byte-identical files — every shard of
every output, ``stats.json``, ``finetune_job.json`` and ``_SUCCESS``. (``report.html`` names the
output directory in its title and ``_FTPREP`` the time; they are left out.)

And the same bytes as before: ``golden_outputs.json`` holds the sha256 of every file those runs
wrote at 159e050, before the per-row work was made faster (issue 27); a change that speeds a
stage up must not change what it writes. Paths are written as ``<root>`` before hashing (the
checkout and the temporary directory differ from run to run). A change meant to alter the
output regenerates the file: ``python -m tests.deploy.test_determinism --golden``."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from beam_pipeline.cli import main
from tests.beam_pipeline.helpers import IN_MEMORY
from tests.deploy.portable import job_service

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted(p.name for p in (REPO / "examples" / "recipes").glob("*.yaml"))
CSV_RECIPES = [recipe for recipe in RECIPES if recipe.startswith("csv")]
NOT_COMPARED = {"report.html", "_FTPREP"}
GOLDEN = Path(__file__).with_name("golden_outputs.json")


def every_file(output: Path) -> dict[str, bytes]:
    return {str(p.relative_to(output)): p.read_bytes() for p in sorted(output.rglob("*"))
            if p.is_file() and p.name not in NOT_COMPARED}


# Runs `ftprep run` once for each argument list given as JSON, in one fresh process: each run
# as from the command line, without importing Beam anew for each.
_RUNS = ("import json, sys\nfrom beam_pipeline.cli import main\n"
         "for argv in json.loads(sys.argv[1]):\n"
         "    code = main(['run', *argv, '--no-progress'])\n"
         "    if code: sys.exit(code)\n")


def ftprep(*runs: list[str]) -> None:
    result = subprocess.run([sys.executable, "-c", _RUNS, json.dumps(runs)], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    with job_service(tmp_path_factory.mktemp("services") / "job_service.log") as endpoint:
        yield endpoint


# The example recipes run on the PortableRunner too where they add to what the plan-cutting cases
# and test_portable_runner.py (EXTERNAL workers) already run there: the runner's bundling and
# ordering are the recipe's concern only through features, and csv_chat has most of them.
ON_PORTABLE = {"csv_chat.yaml"}


def runs(recipe: str, out: Path, jobs: str, *extra: str, portable: bool = True) -> dict[str, dict[str, bytes]]:
    # One in-memory run: every case is also checked against its golden digests, which a rerun
    # that wrote other bytes would fail too.
    assert main(["run", recipe, "--output", str(out / "memory"), IN_MEMORY, "--no-progress", *extra]) == 0
    elsewhere = {"two_workers": ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]}
    if portable:
        elsewhere["portable"] = ["--runner=PortableRunner", f"--job_endpoint={jobs}", "--environment_type=LOOPBACK"]
    ftprep(*([recipe, "--output", str(out / name), *flags, *extra] for name, flags in elsewhere.items()))
    return {name: every_file(out / name) for name in ("memory", *elsewhere)}


def _dated(value):
    """The parts of stats.json that follow today's date, not the data: a target's retirement
    (its days left count down)."""
    if isinstance(value, dict):
        return {key: "<dated>" if key == "retirement" else _dated(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_dated(item) for item in value]
    return value


def digests(files: dict[str, bytes], output: Path, root: Path) -> dict[str, str]:
    """sha256 of each file, the ``output`` directory written as ``<output>``, ``root`` (where the
    inputs are) as ``<root>``, and stats.json's retirement (dated) as ``<dated>``."""
    def placeholders(name: str, data: bytes) -> bytes:
        data = data.replace(str(output).encode(), b"<output>").replace(str(root).encode(), b"<root>")
        if name == "stats.json":
            data = json.dumps(_dated(json.loads(data)), indent=2).encode()
        return data
    return {name: hashlib.sha256(placeholders(name, data)).hexdigest() for name, data in files.items()}


def assert_as_before(case: str, files: dict[str, bytes], output: Path, root: Path) -> None:
    expected = json.loads(GOLDEN.read_text())[case]
    found = digests(files, output, root)
    assert sorted(found) == sorted(expected), case
    changed = [name for name in expected if found[name] != expected[name]]
    assert not changed, f"{case}: written differently than before: {changed}"


def assert_identical(outputs: dict[str, dict[str, bytes]]) -> None:
    reference = outputs["memory"]
    assert any(name.startswith("train/") for name in reference) and "stats.json" in reference
    for name, files in outputs.items():
        assert sorted(files) == sorted(reference), name
        different = [path for path in reference if files[path] != reference[path]]
        assert not different, f"{name}: {different}"


def check_recipe(recipe: str, jobs: str, tmp_path: Path) -> None:
    outputs = runs(f"examples/recipes/{recipe}", tmp_path, jobs, portable=recipe in ON_PORTABLE)
    assert_identical(outputs)
    assert_as_before(recipe, outputs["memory"], tmp_path / "memory", REPO)


@pytest.mark.parametrize("recipe", CSV_RECIPES)
def test_example_recipes_write_the_same_bytes_everywhere(recipe, jobs, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    check_recipe(recipe, jobs, tmp_path)


def golden(root: Path) -> dict[str, dict[str, str]]:
    """The digests of what this checkout writes, for ``GOLDEN`` (one in-memory run each)."""
    import os
    from tests.beam_pipeline.test_bad_input import corpus_recipe, write_bad_files, write_corpus

    os.chdir(REPO)
    found = {}
    for recipe in RECIPES:
        main(["run", f"examples/recipes/{recipe}", "--output", str(root / recipe), IN_MEMORY, "--no-progress"])
        found[recipe] = digests(every_file(root / recipe), root / recipe, REPO)
    main(["run", "examples/recipes/csv_chat.yaml", "--output", str(root / "limits"), IN_MEMORY, "--no-progress",
          "--set", "dedup.near={threshold: 0.5}", "--set", "output.num_shards=2", "--set", "output.max_shard_bytes=1024",
          "--set", "output.provenance=true"])
    found["csv_chat.yaml, near dedup, shard limits"] = digests(every_file(root / "limits"), root / "limits", REPO)
    corpus = root / "corpus"
    corpus.mkdir()
    write_corpus(corpus)
    write_bad_files(corpus)
    main(["run", corpus_recipe(corpus), "--output", str(corpus / "memory"), IN_MEMORY, "--no-progress", "--on-bad-file=skip"])
    found["bad-input corpus"] = digests(every_file(corpus / "memory"), corpus / "memory", corpus)
    return found


if __name__ == "__main__" and sys.argv[1:] == ["--golden"]:
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        GOLDEN.write_text(json.dumps(golden(Path(scratch)), indent=1, sort_keys=True) + "\n")
