"""Progress of a local run, from worker processes to the launcher, through a directory.

Beam's DirectRunner reports nothing until the pipeline ends, and its workers are other
processes. Each worker appends one short line per file planned and per read unit finished to
its own file under a directory the launcher chose (``ProgressWriter``); the launcher sums them
(``read_progress``) and shows a line on stderr (``ProgressReporter``): updated in place on a
terminal, a plain line every few seconds in a log. Only local runs use it: on Dataflow or Flink
the runner's UI shows progress.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TextIO


# In a log (not a terminal), a line at least this often even when nothing moved: a run that is
# stuck on a slow unit still shows that it is alive.
HEARTBEAT_SECONDS = 30.0


class ProgressWriter:
    """Worker side: ``planned(url, units)`` and ``done(url, rows)`` lines, appended and flushed.
    Made by the launcher and pickled into the steps that report; each worker process opens a
    file of its own on its first line."""

    def __init__(self, directory: str):
        self._directory = directory
        self._file = None

    def __getstate__(self):
        return {"_directory": self._directory, "_file": None}

    def _write(self, line: str) -> None:
        try:
            if self._file is None:
                path = os.path.join(self._directory, f"{os.getpid()}-{uuid.uuid4().hex[:8]}.log")
                self._file = open(path, "a", encoding="utf-8", buffering=1)
            self._file.write(line)
        except OSError:  # progress is a courtesy: never a reason to fail a record
            pass

    def planned(self, url: str, units: int) -> None:
        self._write(f"P\t{units}\t{url}\n")

    def done(self, url: str, rows: int) -> None:
        """A unit of ``url`` is read; ``rows``: those of its rows not yet reported by ``reading``."""
        self._write(f"D\t{rows}\t{url}\n")

    def reading(self, url: str, rows: int) -> None:
        """``rows`` more rows of a unit of ``url`` are through the chain (a unit can take minutes)."""
        self._write(f"R\t{rows}\t{url}\n")


@dataclass
class Progress:
    planned: dict[str, int] = field(default_factory=dict)  # url -> units
    done: dict[str, int] = field(default_factory=dict)  # url -> units read
    rows: int = 0

    @property
    def units(self) -> int:
        return sum(self.planned.values())

    @property
    def units_done(self) -> int:
        return sum(self.done.values())

    def files_done(self) -> int:
        return sum(1 for url, units in self.planned.items() if self.done.get(url, 0) >= units)


def read_progress(directory: str) -> Progress:
    progress = Progress()
    try:
        names = os.listdir(directory)
    except OSError:
        return progress
    for name in names:
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        # A last line without its newline is still being written.
        for line in text.split("\n")[:-1]:
            parts = line.split("\t", 2)
            if len(parts) != 3 or not parts[1].isdigit():
                continue
            kind, number, url = parts
            if kind == "P":
                progress.planned[url] = int(number)
            elif kind == "D":
                progress.done[url] = progress.done.get(url, 0) + 1
                progress.rows += int(number)
            elif kind == "R":
                progress.rows += int(number)
    return progress


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
        # None: sys.stderr as it is at each report. During a local run that is the terminal while
        # file descriptor 2 points at the log (see logs.worker_output_to).
        self._given_stream = stream
        self._tty = self._stream.isatty()
        # Calm: a terminal line changes twice a second; a log gets a line every 10 s at most.
        self._interval = interval if interval is not None else (0.5 if self._tty else 10.0)
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._last = ""
        self._last_written = 0.0
        self._read_for: float | None = None
        self._thread = threading.Thread(target=self._run, name="ftprep-progress", daemon=True)

    @property
    def _stream(self) -> TextIO:
        return self._given_stream or sys.stderr

    def writer(self) -> ProgressWriter:
        """What the workers report through."""
        return ProgressWriter(self.directory)

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
        elif (line.split(", ")[:3] != self._last.split(", ")[:3]  # when something moved,
              or elapsed - self._last_written >= HEARTBEAT_SECONDS):  # and now and then all the same
            self._stream.write(line + "\n")
            self._last_written = elapsed
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
