"""Issue 24: a killed run resumes — the units it completed are reused, the rest is done again,
and the outputs are the bytes an uninterrupted run writes. Without --resume a leftover run is
named; a changed recipe or input refuses to resume; a second writer is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_pipeline.cli import main
from tests.beam_pipeline.helpers import IN_MEMORY, write_recipe

REPO = Path(__file__).resolve().parents[2]
NOT_COMPARED = {"report.html", "_FTPREP"}
# Slow enough per row (a loop the budget allows) that a run can be killed halfway.
SLOW = "{% for i in range(3000) %}{% endfor %}{{ answer }}"


def every_file(output: Path) -> dict[str, bytes]:
    return {str(p.relative_to(output)): p.read_bytes() for p in sorted(output.rglob("*"))
            if p.is_file() and p.name not in NOT_COMPARED}


def write_job(tmp_path: Path, answer: str) -> str:
    for index in range(4):
        rows = [{"question": f"q{index}-{i} " + "word " * (i % 13), "answer": f"a{index}-{i} " + "text " * (i % 7)}
                for i in range(1500)]
        rows[7]["answer"] = ""  # rejected
        rows[8] = dict(rows[9])  # a duplicate
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / f"in-{index}.parquet", row_group_size=700)
    doc = {"input": {"paths": [str(tmp_path / "in-*.parquet")]}, "model": "gpt-4o-mini-2024-07-18",
           "template": {"system": "Be brief.", "messages": [{"role": "user", "content": "{{ question }}"},
                                                            {"role": "assistant", "content": answer}]},
           "dedup": {"exact": True}, "split": {"validation_fraction": 0.1}, "output": {"path": str(tmp_path / "out")}}
    return write_recipe(tmp_path, doc)


@pytest.fixture()
def job(tmp_path):
    return write_job(tmp_path, "{{ answer }}")


@pytest.fixture()
def slow_job(tmp_path):
    """The same job, slow enough per row to be killed halfway."""
    return write_job(tmp_path, SLOW)


def start(recipe: str, *argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "beam_pipeline", "run", recipe, "--no-progress",
                             "--direct_num_workers=2", "--direct_running_mode=multi_processing", *argv],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def test_a_killed_run_resumes_to_the_same_bytes(slow_job, tmp_path):
    job = slow_job
    out = tmp_path / "out"
    units = out / "_temporary" / "units"
    process = start(job)
    deadline = time.monotonic() + 240
    while len(list(units.glob("*.unit.done"))) < 16 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed: " + process.stderr.read().decode()[-2000:]
    os.killpg(process.pid, signal.SIGKILL)  # the launcher and its worker processes, as kill -9 does
    process.wait()
    completed = len(list(units.glob("*.unit.done")))
    assert completed >= 16 and not (out / "_SUCCESS").exists()

    assert main(["run", job, IN_MEMORY]) == 2  # without --resume: the leftover run is named
    assert main(["run", job, "--resume", IN_MEMORY, "--set", "split.seed=7"]) == 2  # another recipe: refused

    resumed = subprocess.run([sys.executable, "-m", "beam_pipeline", "run", job, "--resume", "--no-progress",
                              "--direct_num_workers=2", "--direct_running_mode=multi_processing"],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reused = int(resumed.stderr.split("--resume: ")[1].split(" ")[0])
    assert reused >= completed  # a unit completed while the kill landed counts too
    assert not (out / "_temporary").exists() and not (out / "_LOCK").exists()

    clean = tmp_path / "clean"
    assert main(["run", job, "--output", str(clean), IN_MEMORY, "--no-progress"]) == 0
    expected, got = every_file(clean), every_file(out)
    assert sorted(got) == sorted(expected)
    assert [name for name in expected if got[name] != expected[name]] == []


def test_resume_refuses_what_it_cannot_continue(job, tmp_path, capsys):
    assert main(["run", job, "--resume", IN_MEMORY]) == 2  # nothing there
    assert "holds no interrupted ftprep run" in capsys.readouterr().err
    assert main(["run", job, IN_MEMORY, "--no-progress"]) == 0
    assert main(["run", job, "--resume", IN_MEMORY]) == 2
    assert "finished (it has _SUCCESS); nothing to resume" in capsys.readouterr().err
    assert main(["run", job, "--resume", "--overwrite", IN_MEMORY]) == 2
    assert "do not go together" in capsys.readouterr().err


def test_a_changed_input_refuses_to_resume(job, tmp_path, capsys, monkeypatch):
    import apache_beam as beam

    def runner_dies(self, *args, **kwargs):
        raise RuntimeError("the runner died")

    with monkeypatch.context() as patch:
        patch.setattr(beam.Pipeline, "run", runner_dies)
        assert main(["run", job, IN_MEMORY]) == 1
    capsys.readouterr()
    assert main(["run", job, IN_MEMORY]) == 2
    assert "an interrupted run is in" in capsys.readouterr().err
    path = tmp_path / "in-0.parquet"
    os.utime(path, (time.time() + 100, time.time() + 100))
    assert main(["run", job, "--resume", IN_MEMORY]) == 2
    assert "the input files (their list, sizes or modification times) changed" in capsys.readouterr().err
    assert main(["run", job, "--overwrite", IN_MEMORY, "--no-progress"]) == 0


def test_a_second_writer_to_the_same_output_is_refused(job, tmp_path, capsys):
    first = start(job, "--set", "input.paths=[" + str(tmp_path / "in-0.parquet") + "]")
    lock = tmp_path / "out" / "_LOCK"
    deadline = time.monotonic() + 60
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert main(["run", job, "--overwrite", IN_MEMORY]) == 2
    err = capsys.readouterr().err
    assert "another ftprep run is writing to" in err and f"pid {first.pid}" in err
    assert first.wait(timeout=240) == 0, first.stderr.read().decode()[-2000:]
    assert (tmp_path / "out" / "_SUCCESS").exists() and not lock.exists()
