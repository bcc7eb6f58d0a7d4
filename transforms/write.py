"""Writing sharded JSONL, ``stats.json`` and the ``_SUCCESS`` marker through Beam's filesystems.

Beam's file sink writes each shard to a temporary location and renames it into place when
the whole write is final, so a reader never sees half a split. ``stats.json``,
``finetune_job.json`` and then ``_SUCCESS`` are written only after every split's files are
final: schedulers key on ``_SUCCESS``.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
from typing import Any, Callable

import apache_beam as beam
from apache_beam.coders import BytesCoder
from apache_beam.io.filebasedsink import FileBasedSink, FileBasedSinkWriter
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from schemas.records import dumps_line
from transforms.finetune import JOB_FILE, job_spec
from transforms.report import RECORD_PREVIEW_CHARS, SAMPLES_PER_CODE, render_report

SHARD_TEMPLATE = "-SSSSS-of-NNNNN"
STATS_FILE = "stats.json"
REPORT_FILE = "report.html"
SUCCESS_FILE = "_SUCCESS"
# Written before any worker starts: marks the directory as an ftprep output (see beam_pipeline/output.py).
MANIFEST_FILE = "_FTPREP"
PROVENANCE_DIR = "provenance"


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


# What an empty writer's close() returns instead of a path: no file stands behind it.
_NOTHING_WRITTEN = ".ftprep-nothing-written"


class _OnFirstWriteWriter(FileBasedSinkWriter):
    """Opens its temporary file at the first record, so a writer that gets none creates nothing.
    Beam's sink opens one per missing shard (``num_shards`` above the records there are, or an
    empty split): on object stores a zero-byte upload fails (S3 refuses a multipart upload with
    no parts) and locally it leaves an empty shard."""

    def __init__(self, sink, temp_shard_path):  # noqa: D107 - the parent opens the file; this one waits
        self.sink = sink
        self.temp_shard_path = temp_shard_path
        self.temp_handle = None
        self.num_records_written = 0

    def write(self, value):
        if self.temp_handle is None:
            self.temp_handle = self.sink.open(self.temp_shard_path)
        super().write(value)

    def at_capacity(self):
        return self.temp_handle is not None and super().at_capacity()

    def close(self):
        if self.temp_handle is None:
            return self.temp_shard_path + _NOTHING_WRITTEN
        return super().close()


class JsonlSink(FileBasedSink):
    """Blocks of JSON lines (bytes) into ``prefix-SSSSS-of-NNNNN.jsonl`` shards; never an empty
    file: shards no record reached are not written, and the others are numbered among themselves."""

    def __init__(self, prefix: str, *, num_shards: int = 0, max_bytes_per_shard: int | None = None):
        super().__init__(
            prefix, coder=BytesCoder(), file_name_suffix=".jsonl", num_shards=num_shards,
            shard_name_template=SHARD_TEMPLATE, mime_type="application/jsonl",
            compression_type=CompressionTypes.UNCOMPRESSED, max_bytes_per_shard=max_bytes_per_shard,
        )

    def write_encoded_record(self, file_handle, encoded_value: bytes):
        file_handle.write(encoded_value)
        file_handle.write(b"\n")

    def open_writer(self, init_result, uid):
        # The temporary path as the parent names it (its writer would open the file at once).
        prefix = self.file_path_prefix.get()
        suffix = "." + posixpath.basename(prefix) + self.file_name_suffix.get()
        return _OnFirstWriteWriter(self, FileSystems.join(init_result, uid) + suffix)

    def _written(self, writer_results):
        return [path for path in writer_results if not path.endswith(_NOTHING_WRITTEN)]

    def pre_finalize(self, init_result, writer_results):
        return super().pre_finalize(init_result, self._written(writer_results))

    def finalize_windowed_write(self, init_result, writer_results, pre_finalize_results, w=None):
        return super().finalize_windowed_write(init_result, self._written(writer_results), pre_finalize_results, w)


def _split(batch: list, parts: int) -> list[list]:
    size = -(-len(batch) // parts)
    return [batch[i : i + size] for i in range(0, len(batch), size)]


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
    ):
        super().__init__()
        if num_shards is not None and num_shards < 1:
            raise ValueError(f"num_shards must be at least 1, got {num_shards}")
        self._directory = directory
        self._to_json = to_json
        self._num_shards = num_shards or 0  # 0: the runner decides
        self._max_shard_bytes = max_shard_bytes

    def _serialize(self, to_json):
        if self._max_shard_bytes is not None:
            # The sink can only start a new shard between elements: with a size limit, one per record.
            return beam.FlatMap(lambda batch: (dumps_line(to_json(record)) for record in batch))
        if self._num_shards:
            # The sink deals elements out to the shards in turn: a batch in num_shards blocks lets
            # every shard get records even when there are fewer batches than shards.
            shards = self._num_shards
            return beam.FlatMap(lambda batch: (batch_lines(part, to_json) for part in _split(batch, shards) if part))
        return beam.Map(batch_lines, to_json)

    def expand(self, pcoll):
        to_json = self._to_json
        return (
            pcoll
            | "Serialize" >> self._serialize(to_json)
            | "WriteShards" >> beam.io.Write(JsonlSink(
                join(self._directory, "part"), num_shards=self._num_shards, max_bytes_per_shard=self._max_shard_bytes))
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


def _prune_empty_directories(output: str) -> None:
    """Remove the directories of outputs that got no records (locally, the file sink's temporary
    directory leaves its parent behind; object stores have no directories)."""
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

    def process(self, stats: dict, train: list, validation: list, rejected: list, report_samples=None, **other_outputs):
        written = [STATS_FILE]
        write_bytes(join(self._output, STATS_FILE), stats_bytes(stats))
        if self._report is not None:
            page = render_report(stats, samples=dict(report_samples or {}), **self._report)
            write_bytes(join(self._output, REPORT_FILE), page.encode())
            written.append(REPORT_FILE)
        if self._job is not None:
            spec = job_spec(
                **self._job,
                train_files=[_relative(self._output, f) for f in train],
                validation_files=[_relative(self._output, f) for f in validation] if stats["records"]["validation"] else [],
                n_epochs=stats["estimate"]["n_epochs"],
            )
            write_bytes(join(self._output, JOB_FILE), stats_bytes(spec))
            written.append(JOB_FILE)
        shards = [f for files in (train, validation, rejected, *other_outputs.values()) for f in files]
        # Never an empty object (object stores refuse some zero-byte uploads): the marker carries
        # the run's counts and every file it wrote.
        marker = {"records": stats["records"], "files": sorted([*written, *(_relative(self._output, f) for f in shards)])}
        _prune_empty_directories(self._output)
        write_bytes(join(self._output, SUCCESS_FILE), stats_bytes(marker))
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
