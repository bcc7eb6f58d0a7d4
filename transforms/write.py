"""Writing sharded JSONL, ``stats.json`` and the ``_SUCCESS`` marker through Beam's filesystems.

Beam's file sink writes each shard to a temporary location and renames it into place when
the whole write is final, so a reader never sees half a split. ``stats.json`` and then
``_SUCCESS`` are written only after every split's files are final: schedulers key on
``_SUCCESS``.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any, Callable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.textio import WriteToText

from schemas.records import dumps_line

SHARD_TEMPLATE = "-SSSSS-of-NNNNN"
STATS_FILE = "stats.json"
SUCCESS_FILE = "_SUCCESS"


def join(base: str, *parts: str) -> str:
    return FileSystems.join(base, *parts) if "://" in base else posixpath.join(base, *parts)


def write_bytes(path: str, data: bytes) -> None:
    with FileSystems.create(path) as f:
        f.write(data)


def stats_bytes(stats: dict[str, Any]) -> bytes:
    return json.dumps(stats, indent=2, sort_keys=False).encode() + b"\n"


class WriteJsonl(beam.PTransform):
    """Serialize records to JSON lines under ``directory/part-SSSSS-of-NNNNN.jsonl``.

    Returns the PCollection of the final file names.
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

    def expand(self, pcoll):
        to_json = self._to_json
        return (
            pcoll
            | "Serialize" >> beam.Map(lambda record: dumps_line(to_json(record)))
            | "WriteShards"
            >> WriteToText(
                join(self._directory, "part"),
                file_name_suffix=".jsonl",
                num_shards=self._num_shards,
                shard_name_template=SHARD_TEMPLATE,
                max_bytes_per_shard=self._max_shard_bytes,
            )
        )


class _FinalizeFn(beam.DoFn):
    def __init__(self, output: str):
        self._output = output

    def process(self, stats: dict, *written_files):
        write_bytes(join(self._output, STATS_FILE), stats_bytes(stats))
        write_bytes(join(self._output, SUCCESS_FILE), b"")
        yield join(self._output, SUCCESS_FILE)


class WriteStatsAndMarker(beam.PTransform):
    """Write ``stats.json`` then ``_SUCCESS``, after every PCollection in ``after`` is complete."""

    def __init__(self, *, output: str, after: list):
        super().__init__()
        self._output = output
        self._after = list(after)

    def expand(self, stats):
        # The side inputs are unused values: they make this step wait for every write to finalize.
        waits = [beam.pvalue.AsList(files) for files in self._after]
        return stats | "WriteStatsThenSuccess" >> beam.ParDo(_FinalizeFn(self._output), *waits)
