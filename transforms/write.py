"""Writing sharded JSONL, ``stats.json`` and the ``_SUCCESS`` marker through Beam's filesystems.

Beam's file sink writes each shard to a temporary location and renames it into place when
the whole write is final, so a reader never sees half a split. ``stats.json``,
``finetune_job.json`` and then ``_SUCCESS`` are written only after every split's files are
final: schedulers key on ``_SUCCESS``.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any, Callable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.textio import WriteToText

from schemas.records import dumps_line
from transforms.finetune import JOB_FILE, job_spec
from transforms.report import RECORD_PREVIEW_CHARS, SAMPLES_PER_CODE, render_report

SHARD_TEMPLATE = "-SSSSS-of-NNNNN"
STATS_FILE = "stats.json"
REPORT_FILE = "report.html"
SUCCESS_FILE = "_SUCCESS"


def join(base: str, *parts: str) -> str:
    return FileSystems.join(base, *parts) if "://" in base else posixpath.join(base, *parts)


def write_bytes(path: str, data: bytes) -> None:
    with FileSystems.create(path) as f:
        f.write(data)


def stats_bytes(stats: dict[str, Any]) -> bytes:
    return json.dumps(stats, indent=2, sort_keys=False).encode() + b"\n"


def batch_lines(batch: list, to_json: Callable[[Any], Any]) -> bytes:
    """A batch as one block of JSON lines (the sink adds the last newline)."""
    return b"\n".join(dumps_line(to_json(record)) for record in batch)


class WriteJsonl(beam.PTransform):
    """Serialize batches of records to JSON lines under ``directory/part-SSSSS-of-NNNNN.jsonl``.

    Each batch reaches the file sink as one block of lines: one sink call per batch rather
    than per record. Returns the PCollection of the final file names.
    """

    def __init__(
        self,
        *,
        directory: str,
        to_json: Callable[[Any], Any],
        num_shards: int | None = None,
        max_shard_bytes: int | None = None,
        skip_if_empty: bool = False,
    ):
        super().__init__()
        if num_shards is not None and num_shards < 1:
            raise ValueError(f"num_shards must be at least 1, got {num_shards}")
        self._directory = directory
        self._to_json = to_json
        self._num_shards = num_shards or 0  # 0: the runner decides
        self._max_shard_bytes = max_shard_bytes
        self._skip_if_empty = skip_if_empty

    def _serialize(self, to_json):
        if self._max_shard_bytes is None:
            return beam.Map(batch_lines, to_json)
        # The sink can only start a new shard between elements: with a size limit, one per record.
        return beam.FlatMap(lambda batch: (dumps_line(to_json(record)) for record in batch))

    def expand(self, pcoll):
        to_json = self._to_json
        return (
            pcoll
            | "Serialize" >> self._serialize(to_json)
            | "WriteShards"
            >> WriteToText(
                join(self._directory, "part"),
                file_name_suffix=".jsonl",
                num_shards=self._num_shards,
                shard_name_template=SHARD_TEMPLATE,
                max_bytes_per_shard=self._max_shard_bytes,
                skip_if_empty=self._skip_if_empty,
            )
        )


def _relative(output: str, path: str) -> str:
    return path[len(output):].lstrip("/") if path.startswith(output) else path


def _small(doc: dict) -> dict:
    """A rejected document cut to what the report shows (rows can be large)."""
    record = {k: v for k, v in doc.items() if k not in ("source", "errors")}
    text = json.dumps(record, ensure_ascii=False, default=str)
    if len(text) > RECORD_PREVIEW_CHARS:
        record = {"record": text[:RECORD_PREVIEW_CHARS] + f"… [{len(text):,} characters]"}
    return {"source": doc["source"], "errors": doc["errors"], **record}


def _by_code(docs: list) -> list:
    return [(code, doc) for doc in docs for code in sorted({e["code"] for e in doc["errors"]})]


def _source_order(doc: dict):
    return (doc["source"]["file"], doc["source"]["row"])


class SampleRejected(beam.PTransform):
    """Batches of rejected documents in; ``(code, [the first SAMPLES_PER_CODE by file and row])``
    out: the same sample every run, whatever the order records arrive in."""

    def expand(self, docs):
        return (
            docs
            | "ByCode" >> beam.FlatMap(_by_code)
            | "Shrink" >> beam.MapTuple(lambda code, doc: (code, _small(doc)))
            | "FirstPerCode" >> beam.combiners.Top.PerKey(SAMPLES_PER_CODE, key=_source_order, reverse=True)
        )


class _FinalizeFn(beam.DoFn):
    def __init__(self, output: str, job: dict | None, report: dict | None):
        self._output = output
        self._job = job
        self._report = report

    def process(self, stats: dict, train: list, validation: list, rejected: list, report_samples=None, **other_outputs):
        write_bytes(join(self._output, STATS_FILE), stats_bytes(stats))
        if self._report is not None:
            page = render_report(stats, samples=dict(report_samples or {}), **self._report)
            write_bytes(join(self._output, REPORT_FILE), page.encode())
        if self._job is not None:
            spec = job_spec(
                **self._job,
                train_files=[_relative(self._output, f) for f in train],
                validation_files=[_relative(self._output, f) for f in validation] if stats["records"]["validation"] else [],
                n_epochs=stats["estimate"]["n_epochs"],
            )
            write_bytes(join(self._output, JOB_FILE), stats_bytes(spec))
        write_bytes(join(self._output, SUCCESS_FILE), b"")
        yield join(self._output, SUCCESS_FILE)


class WriteStatsAndMarker(beam.PTransform):
    """Write ``stats.json``, ``finetune_job.json`` (given ``job``), ``report.html`` (given
    ``report``: its title and recipe text; ``samples``: SampleRejected's output) and then ``_SUCCESS``.

    ``written`` maps ``train``, ``validation``, ``rejected`` and any other output to the
    PCollections of their final file names: as side inputs they make this step wait for every
    write to finalize.
    """

    def __init__(self, *, output: str, written: dict, job: dict | None = None, samples=None, report: dict | None = None):
        super().__init__()
        missing = {"train", "validation", "rejected"} - set(written)
        if missing:
            raise ValueError(f"WriteStatsAndMarker needs the files written for {sorted(missing)}")
        self._output = output
        self._written = written
        self._job = job
        self._samples = samples
        self._report = report

    def expand(self, stats):
        sides = {name: beam.pvalue.AsList(files) for name, files in self._written.items()}
        if self._samples is not None:
            sides["report_samples"] = beam.pvalue.AsDict(self._samples)
        return stats | "WriteStatsThenSuccess" >> beam.ParDo(_FinalizeFn(self._output, self._job, self._report), **sides)
