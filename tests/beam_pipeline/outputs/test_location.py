"""The output path: never overlapping the inputs, never a place no run should empty, and
``--overwrite`` deleting only an earlier ftprep output's own files."""

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_pipeline.outputs.location import prepare_output, written_by_ftprep
from tests.beam_pipeline.helpers import IN_MEMORY, read_output, run, assert_conserved, write_recipe

TEMP_DIR = "beam-temp-part-" + "0123456789abcdef" * 2


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones included) with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def victim(tmp_path):
    """The shape from the bug report: an input inside a folder that also holds unrelated files."""
    root = tmp_path / "victim"
    (root / "in").mkdir(parents=True)
    pq.write_table(pa.table({"question": ["q1", "q2"], "answer": ["a1", "a2"]}), root / "in" / "good.parquet")
    (root / "notes.txt").write_text("not ftprep's")
    (root / ".hidden").write_text("not ftprep's either")
    return root


def recipe(root: Path, output: str = "out") -> str:
    return write_recipe(root.parent, {
        "input": {"paths": [str(root / "in" / "good.parquet")]},
        "template": {"messages": [{"role": "user", "content": "{{ question }}"},
                                  {"role": "assistant", "content": "{{ answer }}"}]},
        "model": "gpt-4o-mini-2024-07-18",
        "split": {"validation_fraction": 0},
        "output": {"path": output},
    })


def refused(capsys, *argv: str) -> str:
    """Runs ftprep, which must exit 2 with exactly one line on stderr; returns that line."""
    capsys.readouterr()
    assert run(*argv, IN_MEMORY) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ftprep: error: "), err
    return err[0]


@pytest.mark.parametrize("output", ["{root}", "{root}/in", "{root}/in/..", "{root}/in/./../in",
                                    "{root}/in/good.parquet", "{root}/in/good.parquet/sub", "{link}", "{link}/in"])
def test_an_output_that_holds_or_is_inside_an_input_is_refused_with_overwrite(victim, capsys, output):
    (victim.parent / "link").symlink_to(victim)
    before = tree(victim)
    line = refused(capsys, recipe(victim), "--output", output.format(root=victim, link=victim.parent / "link"),
                   "--overwrite")
    assert "input file" in line
    assert tree(victim) == before


def test_dot_run_from_the_inputs_folder_is_refused(victim, capsys, monkeypatch):
    monkeypatch.chdir(victim / "in")
    before = tree(victim)
    assert "holds the input file" in refused(capsys, recipe(victim), "--output", ".", "--overwrite")
    assert tree(victim) == before


def test_an_output_inside_an_input_directory_is_refused(victim, capsys):
    line = refused(capsys, recipe(victim), "--input", str(victim / "in"), "--output", str(victim / "in" / "out"))
    assert "lies inside the input directory" in line


@pytest.mark.parametrize("place", ["cwd", "home", "cwd_parent", "root"])
def test_root_home_and_current_directory_are_refused(victim, capsys, monkeypatch, tmp_path, place):
    work = tmp_path / "work" / "here"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    output = {"cwd": ".", "home": str(tmp_path / "home"), "cwd_parent": "..", "root": "/"}[place]
    line = refused(capsys, recipe(victim), "--output", output, "--overwrite")
    assert any(words in line for words in ("current directory", "home directory", "holds the input file"))


def test_an_output_that_is_an_existing_file_is_one_line(victim, capsys):
    line = refused(capsys, recipe(victim), "--output", str(victim / "notes.txt"), "--overwrite")
    assert line.endswith("is a file; give a directory (it is created if missing)")


def test_overwrite_refuses_a_folder_ftprep_did_not_write(victim, capsys):
    other = victim / "other"
    other.mkdir()
    (other / "data.jsonl").write_text("{}\n")
    (other / ".keep").write_text("")
    before = tree(victim)
    assert "is not an ftprep output" in refused(capsys, recipe(victim), "--output", str(other), "--overwrite")
    assert tree(victim) == before


def earlier_output(out: Path, *, manifest: bool = True, finished: bool = True) -> None:
    """What an earlier run leaves: the files ftprep names as it names them (a killed run has no
    stats and no marker, and Beam's temporary directories)."""
    files = {"train/part-00000-of-00002.jsonl": '{"messages": []}\n', "train/part-00001-of-00002.jsonl": "{}\n",
             "dropped/duplicate_exact/part-00000-of-00001.jsonl": "{}\n",
             f"rejected/{TEMP_DIR}/5b3a.part.jsonl": '{"half": '}
    if manifest:
        files["_FTPREP"] = "{}\n"
    if finished:
        files.update({"stats.json": "{}\n", "report.html": "<html>", "finetune_job.json": "{}\n", "_SUCCESS": "{}\n"})
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)


def test_overwrite_refuses_an_ftprep_output_holding_other_files(victim, capsys):
    out = victim.parent / "out"
    earlier_output(out)
    (out / "mine.txt").write_text("keep me")
    (out / "train" / "notes.md").write_text("keep me too")
    before = tree(out)
    line = refused(capsys, recipe(victim), "--output", str(out), "--overwrite")
    assert "holds files ftprep did not write (mine.txt, train/notes.md)" in line
    assert tree(out) == before


@pytest.mark.parametrize("manifest, finished", [(True, False), (False, True)], ids=["killed_run", "before_manifests"])
def test_overwrite_replaces_an_earlier_output_wholly(victim, manifest, finished):
    """A killed run (the manifest, shards and Beam's temporary directories, no _SUCCESS) and an
    output written before ftprep wrote manifests (no _FTPREP) are replaced, nothing of them left."""
    out = victim.parent / "out"
    earlier_output(out, manifest=manifest, finished=finished)
    assert run(recipe(victim), "--output", str(out), "--overwrite", IN_MEMORY) == 0
    assert sorted(tree(out)) == ["_FTPREP", "_SUCCESS", "finetune_job.json", "provenance/train/part-00000-of-00001.jsonl",
                                 "report.html", "stats.json", "train/part-00000-of-00001.jsonl"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["provenance", "train"]
    assert_conserved(read_output(out))


def test_a_manifest_is_written_before_the_pipeline_runs(victim, monkeypatch):
    """A run that fails still leaves the manifest, so that --overwrite can clean up after it."""
    import apache_beam as beam

    def runner_dies(self, *args, **kwargs):
        raise RuntimeError("the runner died")

    out = victim.parent / "out"
    monkeypatch.setattr(beam.Pipeline, "run", runner_dies)
    assert run(recipe(victim), "--output", str(out), IN_MEMORY) == 1
    # The manifest and what the run started with (for --resume); the lock is released.
    assert sorted(os.listdir(out)) == ["_FTPREP", "_temporary"] and os.listdir(out / "_temporary") == ["run.json"]
    prepare_output(str(out), overwrite=True)
    assert os.listdir(out) == []


def test_overwrite_clears_a_run_that_died_after_deciding_duplicates_or_planning_packs(tmp_path):
    out = tmp_path / "out"
    for name in ("_FTPREP", "_temporary/run.json", "_temporary/units/00000-000000000000.unit", "_temporary/dedup/exact-0.npy",
                 "_temporary/dedup/near.npy", "_temporary/pack/train.plan", "_temporary/pack/train.rows"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(b"x")
    prepare_output(str(out), overwrite=True)
    assert os.listdir(out) == []


@pytest.mark.parametrize("relative, expected", [
    ("_SUCCESS", True), ("_FTPREP", True), ("stats.json", True), ("report.html", True), ("finetune_job.json", True),
    ("train/part-00000-of-00004.jsonl", True), ("validation/part-00012-of-00100.jsonl", True),
    ("rejected/part-123456-of-200000.jsonl", True), ("dropped/filter_echo/part-00000-of-00001.jsonl", True),
    ("provenance/train/part-00000-of-00001.jsonl", True), (f"train/{TEMP_DIR}/abc.part.jsonl", True),
    ("notes.txt", False), (".hidden", False), ("in/good.parquet", False), ("train/part-0-of-1.jsonl", False),
    ("train/notes.md", False), ("provenance/other/part-00000-of-00001.jsonl", False), ("stats.json.bak", False),
    (f"train/{TEMP_DIR}/deeper/x", False), ("_temporary/units/00001-000000004096.unit", True),
    ("_temporary/notes.txt", False), ("_temporary/units/x.unit", False),
    ("_temporary/dedup/exact-3.npy", True), ("_temporary/dedup/near-0.npy", True), ("_temporary/dedup/candidates-0.npy", True),
    ("_temporary/dedup/near.npy", True), ("_temporary/dedup/other.npy", False),
    ("_temporary/pack/train.plan", True), ("_temporary/pack/validation.rows", True), ("_temporary/pack/x.plan", False),
    ("_temporary/dedup/against-2.npy", True), ("_temporary/dedup/against.npy", True),
    ("_temporary/dedup/downsampled.npy", True), ("_temporary/dedup/reference-bands-3.bin", True),
    ("_temporary/dedup/x.bin", False), ("_temporary/evals/index.npz", True), ("_temporary/evals/other.npz", False),
    ("dedup_index/exact-0.npy", True), ("dedup_index/signatures.bin", True), ("dedup_index/index.json", True),
    ("dedup_index/notes.txt", False),
])
def test_what_ftprep_writes_is_recognised_by_name(relative, expected):
    assert written_by_ftprep(relative) is expected


@pytest.mark.parametrize("output, inputs, dirs, refused", [
    ("s3://b/data", ["s3://b/data/in/a.parquet"], [], "holds the input file"),
    ("s3://b/data/", ["s3://b/data/a.parquet"], [], "holds the input file"),
    ("s3://b/data/in/out", [], ["s3://b/data/in/"], "lies inside the input directory"),
    ("s3://b/data/a.parquet/x", ["s3://b/data/a.parquet"], [], "lies inside the input file"),
    ("s3://b/out", ["s3://b/data/a.parquet"], ["s3://b/data"], None),
    ("s3://b/data-out", ["s3://b/data/a.parquet"], ["s3://b/data"], None),  # a sibling, not inside
    ("gs://b/data", ["s3://b/data/a.parquet"], [], None),  # another store
])
def test_object_store_outputs_are_checked_against_the_inputs_too(output, inputs, dirs, refused):
    from beam_pipeline.outputs.location import OutputPathError, check_output_location

    if refused is None:
        check_output_location(output, input_files=inputs, input_dirs=dirs)
    else:
        with pytest.raises(OutputPathError, match=refused):
            check_output_location(output, input_files=inputs, input_dirs=dirs)
