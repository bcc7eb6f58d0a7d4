"""``_LOCK``: one writer per output directory; a lock whose process is gone is taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from beam_pipeline.outputs.location import OutputPathError
from beam_pipeline.outputs.lock import OutputLock


def test_a_second_lock_on_the_same_output_is_refused_until_the_first_is_released(tmp_path):
    first = OutputLock(str(tmp_path / "out")).acquire()
    with pytest.raises(OutputPathError, match=rf"another ftprep run is writing to .*\(pid {os.getpid()} on "):
        OutputLock(str(tmp_path / "out")).acquire()
    first.release()
    assert not (tmp_path / "out" / "_LOCK").exists()
    OutputLock(str(tmp_path / "out")).acquire().release()


def test_a_lock_whose_process_is_gone_is_taken_over(tmp_path):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    (tmp_path / "_LOCK").write_text(json.dumps({"pid": dead, "host": socket.gethostname(), "token": "x"}))
    lock = OutputLock(str(tmp_path)).acquire()
    assert json.loads((tmp_path / "_LOCK").read_text())["pid"] == os.getpid()
    lock.release()


def test_a_lock_from_another_machine_or_unreadable_is_respected(tmp_path):
    (tmp_path / "_LOCK").write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": "2026-12-05T00:00:00Z"}))
    with pytest.raises(OutputPathError, match="pid 1 on elsewhere, since 2026-12-05T00:00:00Z"):
        OutputLock(str(tmp_path)).acquire()
    (tmp_path / "_LOCK").write_text("not json")
    with pytest.raises(OutputPathError, match="a lock that cannot be read.*delete .*_LOCK"):
        OutputLock(str(tmp_path)).acquire()


def test_releasing_leaves_a_lock_another_run_took_alone(tmp_path):
    lock = OutputLock(str(tmp_path)).acquire()
    (tmp_path / "_LOCK").write_text(json.dumps({"pid": 1, "host": "elsewhere", "token": "theirs"}))
    lock.release()
    assert (tmp_path / "_LOCK").exists()
