"""A failed run says what failed in one line and names the log that holds Beam's full output."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_pipeline.logs import failure_line
from tests.beam_pipeline.helpers import IN_MEMORY, run, write_recipe

REPO = Path(__file__).resolve().parents[2]
ERROR_LINE = re.compile(r"^ftprep: error: .*\(Beam's full output: (?P<log>\S+\.log)\)$")


def rows(n: int, width: int = 10) -> pa.Table:
    return pa.table({"question": [f"q{i} " + "x" * width for i in range(n)], "answer": [f"a{i}" for i in range(n)]})


def recipe(tmp_path: Path, inputs: str, output: Path) -> str:
    return write_recipe(tmp_path, {
        "input": {"paths": [inputs]},
        "template": {"messages": [{"role": "user", "content": "{{ question }}"},
                                  {"role": "assistant", "content": "{{ answer }}"}]},
        "model": "gpt-4o-mini-2024-07-18",
        "output": {"path": str(output)},
    })


def ftprep(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "beam_pipeline", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_a_truncated_file_on_two_worker_processes_is_one_line(tmp_path):
    """The real default runner, with worker processes that write to file descriptor 2 themselves:
    nothing of Beam's reaches stderr, the last line names the file and the log."""
    pq.write_table(rows(50), tmp_path / "a.parquet")
    pq.write_table(rows(50), tmp_path / "b.parquet")
    (tmp_path / "b.parquet").write_bytes((tmp_path / "b.parquet").read_bytes()[:400])
    result = ftprep("run", recipe(tmp_path, str(tmp_path / "*.parquet"), tmp_path / "out"), "--direct_num_workers=2",
                    "--no-progress", "--on-bad-file=fail")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 3, result.stderr
    assert "Traceback" not in result.stderr
    last = ERROR_LINE.match(lines[-1])
    assert last, lines[-1]
    assert f"cannot read {tmp_path / 'b.parquet'}" in lines[-1]
    log = Path(last["log"]).read_text()
    assert "Traceback" in log and "BadInputFile" in log
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def test_verbose_shows_beams_traceback(tmp_path):
    pq.write_table(rows(5), tmp_path / "a.parquet")
    (tmp_path / "b.parquet").write_bytes(b"PAR1" + b"\0" * 100)  # the launch-time check reads a.parquet only
    result = ftprep("run", recipe(tmp_path, str(tmp_path / "*.parquet"), tmp_path / "out"), IN_MEMORY, "-v")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "BadInputFile" in result.stderr


def test_no_space_left_on_device_is_named(tmp_path, capsys, monkeypatch):
    """The cause of an OS error reaches the last line as the OS says it."""
    import transforms.shards

    def disk_full(path, section, out):
        out.write(b'{"messages": [{"role": "user", "con')  # cut mid-line, as a full disk cuts it
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(transforms.shards, "_copy", disk_full)
    pq.write_table(rows(5), tmp_path / "a.parquet")
    assert run(recipe(tmp_path, str(tmp_path / "a.parquet"), tmp_path / "out"), IN_MEMORY, "--no-progress") == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) <= 3, lines
    assert ERROR_LINE.match(lines[-1]), lines[-1]
    assert "in step Write" in lines[-1] and f"writing {tmp_path / 'out'}" in lines[-1]
    assert "OSError: [Errno 28] No space left on device" in lines[-1]
    assert not (tmp_path / "out" / "_SUCCESS").exists()
    # A shard appears under its name only once it is whole: no cut file, and no partial one left.
    assert [p.name for p in (tmp_path / "out").rglob("part-*")] == []


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    mount = shutil.which("mount")
    return bool(mount) and subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                          capture_output=True).returncode == 0


def test_a_full_disk_for_real(tmp_path):
    """The same on a real full file system, where the machine lets the test mount a small tmpfs."""
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "64k"):
        pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN); test_no_space_left_on_device_is_named covers it")
    try:
        pq.write_table(rows(200, width=2000), tmp_path / "a.parquet")
        result = ftprep("run", recipe(tmp_path, str(tmp_path / "a.parquet"), disk / "out"), IN_MEMORY, "--no-progress")
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) <= 3, result.stderr
        assert "No space left on device" in lines[-1] and ERROR_LINE.match(lines[-1])
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_an_unexpected_failure_is_one_line_too(tmp_path, capsys, monkeypatch):
    import beam_pipeline.pipeline

    def broken(*args, **kwargs):
        raise KeyError("nobody expected this")

    monkeypatch.setattr(beam_pipeline.pipeline, "build_pipeline", broken)
    pq.write_table(rows(5), tmp_path / "a.parquet")
    assert run(recipe(tmp_path, str(tmp_path / "a.parquet"), tmp_path / "out"), IN_MEMORY) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("ftprep: error: KeyError: 'nobody expected this' (the traceback is in ")


@pytest.mark.parametrize("error, expected", [
    (RuntimeError("OSError: [Errno 28] No space left on device [while running 'WriteTrain/WriteShards/WriteImpl/"
                  "WriteBundles']"),
     "the pipeline failed in step WriteTrain/WriteShards/WriteImpl/WriteBundles writing /o: "
     "OSError: [Errno 28] No space left on device; /o has no _SUCCESS marker (Beam's full output: /l.log)"),
    (RuntimeError("Pipeline job-1 failed in state FAILED: Traceback (most recent call last):\n  File x\n"
                  "PermissionError: [Errno 13] Permission denied: '/o/train/x' [while running 'WriteTrain/Write']\n"),
     "the pipeline failed in step WriteTrain/Write writing /o: PermissionError: [Errno 13] Permission denied: "
     "'/o/train/x'; /o has no _SUCCESS marker (Beam's full output: /l.log)"),
    (RuntimeError("Traceback...\nValueError: bad value [while running 'CountTokens/Apply']"),
     "the pipeline failed in step CountTokens/Apply: ValueError: bad value; /o has no _SUCCESS marker "
     "(Beam's full output: /l.log)"),
    (RuntimeError("transforms.readers.base.BadInputFile: cannot read /d/b.parquet: ArrowInvalid: cut "
                  "[while running 'ReadShards/ReadUnits']"),
     "cannot read /d/b.parquet: ArrowInvalid: cut (--on-bad-file=skip reads the other files and lists it in "
     "stats.json); /o has no _SUCCESS marker (Beam's full output: /l.log)"),
])
def test_failure_line(error, expected):
    assert failure_line(error, output="/o", log_path="/l.log", inputs=2) == expected


# Issue 24: the log directory is ftprep's own.
def _logs_under(tmp_path, monkeypatch):
    import tempfile

    from beam_pipeline import logs

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return logs


def test_a_symlinked_log_directory_is_not_followed_and_foreign_files_are_never_pruned(tmp_path, monkeypatch):
    logs = _logs_under(tmp_path, monkeypatch)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    foreign = [elsewhere / f"notes-{i}.log" for i in range(60)] + [elsewhere / f"ftprep-20260101-000000-{i}.log" for i in range(60)]
    for path in foreign:
        path.write_text("mine")
    (tmp_path / "ftprep-logs").symlink_to(elsewhere)
    path = logs.new_log_path()
    assert os.path.dirname(path) == str(tmp_path / f"ftprep-logs-{os.getuid()}")
    assert all(p.exists() for p in foreign)
    assert stat.S_IMODE(os.lstat(os.path.dirname(path)).st_mode) == 0o700


def test_only_ftprep_s_own_log_names_are_pruned(tmp_path, monkeypatch):
    logs = _logs_under(tmp_path, monkeypatch)
    directory = tmp_path / "ftprep-logs"
    directory.mkdir(mode=0o755)
    mine = [directory / f"ftprep-20260101-0000{i:02d}-1.log" for i in range(55)]
    other = directory / "someone-else.log"
    for index, path in enumerate([*mine, other]):
        path.write_text("x")
        os.utime(path, (1_000 + index, 1_000 + index))
    assert os.path.dirname(logs.new_log_path()) == str(directory)
    assert other.exists() and sum(p.exists() for p in mine) == logs.LOGS_KEPT - 1
    assert not mine[0].exists() and mine[-1].exists()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_another_user_s_log_directory_is_left_alone(tmp_path, monkeypatch):
    logs = _logs_under(tmp_path, monkeypatch)
    theirs = tmp_path / "ftprep-logs"
    theirs.mkdir()
    (theirs / "ftprep-20260101-000000-1.log").write_text("theirs")
    if os.getuid() != 0:
        pytest.skip("making a directory another user's takes root")
    os.chown(theirs, 4242, 4242)
    path = logs.new_log_path()
    assert os.path.dirname(path) == str(tmp_path / f"ftprep-logs-{os.getuid()}")
    assert (theirs / "ftprep-20260101-000000-1.log").exists()


def test_beams_import_time_false_alarm_never_reaches_a_handler(caplog):
    """Without the gcp extra, importing Beam logs "apitools not found" to the root logger before
    ftprep's logging is set up; Python would print it on every command."""
    import logging

    from beam_pipeline.logs import _not_a_false_alarm, quiet_false_alarms

    quiet_false_alarms()
    try:
        logging.getLogger().warning("apitools not found, and bigquery client libraries are not available")
        logging.getLogger().warning("a real warning")
    finally:
        logging.getLogger().removeFilter(_not_a_false_alarm)
    assert [r.getMessage() for r in caplog.records] == ["a real warning"]
