"""The output directory's layout, and its last step: ``stats.json``, ``report.html``,
``finetune_job.json``, the temporary files' removal and then the ``_SUCCESS`` marker.

Everything is written through Beam's filesystems. The shards are written by
``transforms/shards.py`` from pass 1's temporary files under ``_temporary/``; this step runs
only after every shard is written, removes ``_temporary/`` and writes ``_SUCCESS`` last:
schedulers key on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms.finetune import JOB_FILE, job_spec
from transforms.report import SAMPLES_PER_CODE, render_report

STATS_FILE = "stats.json"
REPORT_FILE = "report.html"
SUCCESS_FILE = "_SUCCESS"
# Written before any worker starts: marks the directory as an ftprep output (see beam_pipeline/output.py).
MANIFEST_FILE = "_FTPREP"
PROVENANCE_DIR = "provenance"
# Pass 1's files (one per read unit), removed before _SUCCESS is written.
TEMP_DIR = "_temporary"
UNITS_DIR = "units"


def join(base: str, *parts: str) -> str:
    return FileSystems.join(base, *parts) if "://" in base else posixpath.join(base, *parts)


def write_bytes(path: str, data: bytes) -> None:
    with FileSystems.create(path) as f:
        f.write(data)


def stats_bytes(stats: dict[str, Any]) -> bytes:
    return json.dumps(stats, indent=2, sort_keys=False).encode() + b"\n"


def _relative(output: str, path: str) -> str:
    return path[len(output):].lstrip("/") if path.startswith(output) else path


def report_samples(units: list) -> dict[str, list[dict]]:
    """The first ``SAMPLES_PER_CODE`` rejected records of each code, by file and row, from the
    units' own first few: the same sample every run."""
    by_code: dict[str, list[dict]] = {}
    for code, doc in sorted((sample for unit in units for sample in unit.samples),
                            key=lambda pair: (pair[0], pair[1]["source"]["file"], pair[1]["source"]["row"])):
        chosen = by_code.setdefault(code, [])
        if len(chosen) < SAMPLES_PER_CODE:
            chosen.append(doc)
    return by_code


def _prune_empty_directories(output: str) -> None:
    """Remove directories left empty (locally, ``_temporary/``; object stores have no directories)."""
    if "://" in output:
        return
    for root, _, _ in sorted(os.walk(output), key=lambda entry: entry[0].count(os.sep), reverse=True):
        if root != output:
            with contextlib.suppress(OSError):  # not empty: it holds shards
                os.rmdir(root)


class _FinalizeFn(beam.DoFn):
    def __init__(self, output: str, job: dict | None, report: dict | None):
        self._output = output
        self._job = job
        self._report = report

    def process(self, stats: dict, files: list[tuple[str, str]], units: list):
        written = [STATS_FILE]
        write_bytes(join(self._output, STATS_FILE), stats_bytes(stats))
        if self._report is not None:
            page = render_report(stats, samples=report_samples(units), **self._report)
            write_bytes(join(self._output, REPORT_FILE), page.encode())
            written.append(REPORT_FILE)
        shards = sorted(_relative(self._output, path) for _, path in files)
        if self._job is not None:
            spec = job_spec(
                **self._job,
                train_files=[_relative(self._output, path) for output, path in sorted(files) if output == "train"],
                validation_files=[_relative(self._output, path) for output, path in sorted(files) if output == "validation"],
                n_epochs=stats["estimate"]["n_epochs"],
            )
            write_bytes(join(self._output, JOB_FILE), stats_bytes(spec))
            written.append(JOB_FILE)
        temporary = sorted(unit.path for unit in units if unit.path is not None)
        if temporary:
            FileSystems.delete(temporary)
        _prune_empty_directories(self._output)
        # Never an empty object (object stores refuse some zero-byte uploads): the marker carries
        # the run's counts and every file it wrote.
        marker = {"records": stats["records"], "files": sorted([*written, *shards])}
        write_bytes(join(self._output, SUCCESS_FILE), stats_bytes(marker))
        yield join(self._output, SUCCESS_FILE)


class WriteStatsAndMarker(beam.PTransform):
    """The stats document in; ``stats.json``, ``report.html`` (given ``report``: its title and
    recipe text), ``finetune_job.json`` (given ``job``), the removal of pass 1's temporary files
    and then ``_SUCCESS`` written. ``files``: ``(output, path)`` of every shard written (as a side
    input it makes this step wait for them); ``units``: pass 1's results (samples, temporary files).
    """

    def __init__(self, *, output: str, files, units, job: dict | None = None, report: dict | None = None):
        super().__init__()
        self._output = output
        self._files = files
        self._units = units
        self._job = job
        self._report = report

    def expand(self, stats):
        return stats | "WriteStatsThenSuccess" >> beam.ParDo(
            _FinalizeFn(self._output, self._job, self._report),
            beam.pvalue.AsList(self._files), beam.pvalue.AsList(self._units))
