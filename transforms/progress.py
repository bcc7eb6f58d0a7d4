"""Progress of a local run, from worker processes to the launcher, through a directory.

Beam's DirectRunner reports nothing until the pipeline ends, and its workers are other
processes. Each worker appends one short line per file planned and per read unit finished to
its own file under a directory the launcher chose; the launcher sums them (``read_progress``).
Only local runs use it: on Dataflow or Flink the runner's UI shows progress.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field


class ProgressWriter:
    """Worker side: ``planned(url, units)`` and ``done(url, rows)`` lines, appended and flushed."""

    def __init__(self, directory: str):
        self._path = os.path.join(directory, f"{os.getpid()}-{uuid.uuid4().hex[:8]}.log")
        self._file = None

    def _write(self, line: str) -> None:
        try:
            if self._file is None:
                self._file = open(self._path, "a", encoding="utf-8", buffering=1)
            self._file.write(line)
        except OSError:  # progress is a courtesy: never a reason to fail a record
            pass

    def planned(self, url: str, units: int) -> None:
        self._write(f"P\t{units}\t{url}\n")

    def done(self, url: str, rows: int) -> None:
        self._write(f"D\t{rows}\t{url}\n")


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
    return progress
