"""Progress lines on stderr while a local run works (see ``transforms.progress`` for how the
workers report): a line updated in place on a terminal, a plain line every few seconds in a log."""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from typing import TextIO

from transforms.progress import Progress, read_progress


def progress_line(progress: Progress, files_total: int, elapsed: float, read_for: float | None = None) -> str:
    """``read_for``: seconds the reading took, once it is over (the rate then stays the reading rate)."""
    seconds = read_for if read_for is not None else elapsed
    rate = progress.rows / seconds if seconds > 0 else 0.0
    units = f"{progress.units_done}/{progress.units}" if len(progress.planned) == files_total else f"{progress.units_done}/?"
    line = (f"read {units} units, {progress.files_done()}/{files_total} files, {progress.rows:,} rows, "
            f"{rate:,.0f} rows/s, {elapsed:,.0f} s")
    if all_read(progress, files_total):
        line += " — all read; finishing (dedup, split, writing)"
    return line


def all_read(progress: Progress, files_total: int) -> bool:
    return len(progress.planned) == files_total and progress.units > 0 and progress.units_done >= progress.units


class ProgressReporter:
    """Owns the progress directory and a thread that reports from it until ``stop()``."""

    def __init__(self, files_total: int, *, stream: TextIO | None = None, interval: float | None = None):
        self.directory = tempfile.mkdtemp(prefix="ftprep-progress-")
        self._files_total = files_total
        self._stream = stream or sys.stderr  # looked up now: sys.stderr may have been replaced since import
        self._tty = self._stream.isatty()
        # Calm: a terminal line changes twice a second; a log gets a line every 10 s at most.
        self._interval = interval if interval is not None else (0.5 if self._tty else 10.0)
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._last = ""
        self._read_for: float | None = None
        self._thread = threading.Thread(target=self._run, name="ftprep-progress", daemon=True)

    def start(self) -> "ProgressReporter":
        self._thread.start()
        return self

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def _report(self) -> None:
        progress, elapsed = read_progress(self.directory), self.elapsed()
        if self._read_for is None and all_read(progress, self._files_total):
            self._read_for = elapsed
        line = progress_line(progress, self._files_total, elapsed, self._read_for)
        if self._tty:
            self._stream.write("\r" + line[: shutil.get_terminal_size().columns - 1].ljust(len(self._last)))
        elif line.split(", ")[:3] != self._last.split(", ")[:3]:  # only when something moved
            self._stream.write(line + "\n")
        self._stream.flush()
        self._last = line

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._report()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._tty and self._last:
            self._stream.write("\n")
        shutil.rmtree(self.directory, ignore_errors=True)
