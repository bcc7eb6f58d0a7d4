"""The read step: file URLs in, read units out, spread over the workers."""

from __future__ import annotations

from typing import Iterable

import apache_beam as beam

from schemas.recipe import CsvOptions
from transforms.readers.base import InputError
from transforms.readers.paths import infer_format
from transforms.readers.registry import FORMATS, plan_file


class _PlanUnitsFn(beam.DoFn):
    def __init__(self, fmt: str | None, required: frozenset[str] | None, csv: CsvOptions, progress,
                 bad_files: dict[str, str]):
        self._format = fmt
        self._required = required
        self._csv = csv
        self._progress = progress
        self._bad_files = bad_files  # found before the run; read as failed files

    def process(self, url: str):
        fmt = self._format or infer_format(url)
        units = plan_file(url, fmt, self._required, self._csv, self._bad_files)
        if self._progress is not None:
            self._progress.planned(url, len(units))
        yield from units


class PlanUnits(beam.PTransform):
    """File URLs in (from the launcher's list), read units out, spread over the workers: a file
    that cannot be planned is one unit that fails when read (``plan_file``). ``columns``
    limits what is read (None reads all) and is required of every Parquet and CSV file.
    ``progress``: where a local run's workers report (``planned(url, units)``), or None."""

    def __init__(
        self,
        *,
        urls: list[str],
        format: str | None = None,
        columns: Iterable[str] | None = None,
        csv: CsvOptions = CsvOptions(),
        progress=None,
        bad_files: dict[str, str] | None = None,
    ):
        super().__init__()
        if not urls:
            raise InputError("no input files to read")
        if format is not None and format not in FORMATS:
            raise InputError(f"unknown input format {format!r}; use parquet, csv or jsonl")
        if format is None:
            for url in urls:
                infer_format(url)  # fail now, not on a worker
        self._urls = list(urls)
        self._format = format
        self._columns = None if columns is None else frozenset(columns)
        self._csv = csv
        self._progress = progress
        self._bad_files = dict(bad_files or {})

    def expand(self, pbegin):
        return (
            pbegin
            # Create reshuffles only when it holds more than one element, which would make the step
            # names depend on the number of inputs; an explicit Reshuffle keeps them stable.
            | "ListFiles" >> beam.Create(self._urls, reshuffle=False)
            | "SpreadFiles" >> beam.Reshuffle()
            # A file that cannot be planned becomes a unit that fails when read: every failure
            # leaves from one stage.
            | "PlanUnits" >> beam.ParDo(_PlanUnitsFn(self._format, self._columns, self._csv, self._progress,
                                                     self._bad_files))
            # Load-bearing: without it the read fuses with Create and one worker reads every file.
            | "SpreadUnits" >> beam.Reshuffle()
        )
