"""The run's last step: ``stats.json``, ``report.html``, ``finetune_job.json`` (the target's job
request, where it has one) or the dataset card ``README.md`` (open-weights targets), the temporary files' removal and then the
``_SUCCESS`` marker.

Everything is written through Beam's filesystems. The shards are written by
``transforms/shards.py`` from pass 1's temporary files under ``_temporary/``; this step runs
only after every shard is written, removes ``_temporary/`` and writes ``_SUCCESS`` last:
schedulers key on it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from typing import Any

import apache_beam as beam
import orjson
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from beam_pipeline.outputs.card import dataset_card
from beam_pipeline.outputs.report import render_report
from schemas.formats import trained_bits
from schemas.layout import CARD_FILE, DEDUP_DIR, EVALS_DIR, JOB_FILE, PACK_DIR, REPORT_FILE, RUN_FILE, STATS_FILE, SUCCESS_FILE, TEMP_DIR
from schemas.records import TRAIN, VALIDATION
from transforms.files import join, write_bytes
from transforms.packing import SEQ_LENGTHS
from transforms.row_types import merge_all
from transforms.units import SAMPLES_PER_CODE, RunStopped


def stats_bytes(stats: dict[str, Any]) -> bytes:
    return json.dumps(stats, indent=2, sort_keys=False).encode() + b"\n"


def _relative(output: str, path: str) -> str:
    return path[len(output):].lstrip("/") if path.startswith(output) else path


# The report shows the trained tokens of the first rows written (of a packed row, its first
# MASK_EXAMPLES examples), each example's first MASK_TOKENS tokens.
MASK_ROWS = 3
MASK_EXAMPLES = 4
MASK_TOKENS = 300


def _first_rows(path: str, rows: int) -> list[dict]:
    """The first ``rows`` rows of a shard, Parquet or JSONL."""
    with FileSystems.open(path) as f:
        if path.endswith(".parquet"):
            return pq.ParquetFile(f).read_row_group(0).slice(0, rows).to_pylist()
        return [orjson.loads(line) for line in itertools.islice(f, rows)]


def step_files(output: str) -> list[str]:
    """What the steps between the passes left under ``_temporary/``: dedup's decision blocks, the
    packing plan, decontamination's index. One listing per directory, not a request per file
    that may be there."""
    patterns = [join(output, TEMP_DIR, directory, "*") for directory in (DEDUP_DIR, PACK_DIR, EVALS_DIR)]
    return [m.path for result in FileSystems.match(patterns) for m in result.metadata_list]


def mask_samples(path: str, pieces, *, rows: int = MASK_ROWS, tokens: int = MASK_TOKENS,
                 examples_shown: int = MASK_EXAMPLES) -> list[dict]:
    """The first ``rows`` rows of a tokenized shard as the report shows them: each example (a
    packed row's, by its ``seq_lengths``) as ``(token text, trained)`` pairs."""
    shown = []
    for row in _first_rows(path, rows):
        ids, bits = row["input_ids"], trained_bits(row)
        lengths = row.get(SEQ_LENGTHS) or [len(ids)]
        examples, at = [], 0
        for length in lengths[:examples_shown]:
            cut = min(length, tokens)
            examples.append({"tokens": list(zip(pieces(ids[at:at + cut]), bits[at:at + cut])), "count": length,
                             "trained": sum(bits[at:at + length]), "more": length - cut})
            at += length
        shown.append({"tokens": len(ids), "count": len(lengths), "examples": examples})
    return shown


def _sample_order(pair: tuple[str, dict]) -> tuple:
    code, doc = pair
    return (code, doc["source"]["file"], doc["source"]["row"])


class ReportSamplesFn(beam.CombineFn):
    """The first ``SAMPLES_PER_CODE`` rejected records of each code, by file and row, from the
    units' own first few: the same sample every run. Combined where the units are, so that the
    samples, not every unit's, reach the step that writes the report."""

    def create_accumulator(self) -> list[tuple[str, dict]]:
        return []

    def add_input(self, chosen, unit):
        return self.merge_accumulators([chosen, unit.samples])

    def merge_accumulators(self, accumulators):
        chosen, per_code = [], {}
        for code, doc in sorted((pair for acc in accumulators for pair in acc), key=_sample_order):
            if per_code.get(code, 0) < SAMPLES_PER_CODE:
                per_code[code] = per_code.get(code, 0) + 1
                chosen.append((code, doc))
        return chosen

    def extract_output(self, chosen) -> dict[str, list[dict]]:
        by_code: dict[str, list[dict]] = {}
        for code, doc in chosen:
            by_code.setdefault(code, []).append(doc)
        return by_code


def _prune_empty_directories(output: str) -> None:
    """Remove directories left empty (locally, ``_temporary/``; object stores have no directories)."""
    if "://" in output:
        return
    for root, _, _ in sorted(os.walk(output), key=lambda entry: entry[0].count(os.sep), reverse=True):
        if root != output:
            with contextlib.suppress(OSError):  # not empty: it holds shards
                os.rmdir(root)


def nothing_read(stats: dict[str, Any]) -> str | None:
    """Why a run that read no rows is stopped, or None when it read some: a run with nothing to
    train on is an error, not an empty success (its ``stats.json`` says which files failed)."""
    if stats["records"]["read"]:
        return None
    files = stats.get("files", {})
    failed = files.get("failed", [])
    total = len(files.get("read", [])) or len(failed)
    if failed:
        first = failed[0]
        more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
        why = (f"{len(failed)} of {total} input file(s) could not be read ({first['path']}: {first['error']}{more}; "
               f"stats.json lists them under files.failed)")
    else:
        why = f"the {total} input file(s) hold no rows"
    return f"stopped: the run read no rows: {why}; there is nothing to train on"


class _FinalizeFn(beam.DoFn):
    def __init__(self, output: str, target, job: dict | None, report: dict | None, card: dict | None, tokens=None):
        self._output = output
        self._target = target
        self._job = job
        self._report = report
        self._card = card
        self._tokens = tokens  # the token source, where the rows are tokenized: the report shows their masks

    def process(self, stats: dict, files: list[tuple[str, str]], temporary: list[str], samples: dict,
                row_types: list):
        written = [STATS_FILE]
        write_bytes(join(self._output, STATS_FILE), stats_bytes(stats))
        if self._report is not None:
            train = sorted(path for output, path in files if output == TRAIN)
            masks = mask_samples(train[0], self._tokens.pieces()) if self._tokens is not None and train else None
            page = render_report(stats, samples=samples, masks=masks, **self._report)
            write_bytes(join(self._output, REPORT_FILE), page.encode())
            written.append(REPORT_FILE)
        stopped = nothing_read(stats)
        if stopped is not None:
            raise RunStopped(stopped)
        shards = sorted(_relative(self._output, path) for _, path in files)
        if self._job is not None and self._target is not None:
            spec = self._target.job_request(
                **self._job,
                train_files=[_relative(self._output, path) for output, path in sorted(files) if output == TRAIN],
                validation_files=[_relative(self._output, path) for output, path in sorted(files) if output == VALIDATION],
                n_epochs=stats["estimate"]["n_epochs"],
            )
            if spec is not None:  # None: the target trains elsewhere
                write_bytes(join(self._output, JOB_FILE), stats_bytes(spec))
                written.append(JOB_FILE)
        if self._card is not None:
            card = dataset_card(stats, row_type=merge_all(row_types), **self._card)
            write_bytes(join(self._output, CARD_FILE), card.encode())
            written.append(CARD_FILE)
        run_file = join(self._output, TEMP_DIR, RUN_FILE)
        temporary = [*temporary, *([run_file] if FileSystems.exists(run_file) else []), *step_files(self._output)]
        if temporary:
            FileSystems.delete(sorted(temporary))
        _prune_empty_directories(self._output)
        # Never an empty object (object stores refuse some zero-byte uploads): the marker carries
        # the run's counts and every file it wrote.
        marker = {"records": stats["records"], "files": sorted([*written, *shards])}
        write_bytes(join(self._output, SUCCESS_FILE), stats_bytes(marker))
        yield join(self._output, SUCCESS_FILE)


class WriteStatsAndMarker(beam.PTransform):
    """The stats document in; ``stats.json``, ``report.html`` (given ``report``: its title and
    recipe text), ``finetune_job.json`` (given ``target`` and ``job``: the finetune section and the
    example format, where the target has a job request), ``README.md`` (given ``card``: its title and
    the shards' extension), the removal of pass 1's temporary files
    and then ``_SUCCESS`` written. ``files``: ``(output, path)`` of every shard written (as a side
    input it makes this step wait for them); ``units``: pass 1's results (samples, temporary files).
    """

    def __init__(self, *, output: str, files, units, target=None, job: dict | None = None,
                 report: dict | None = None, card: dict | None = None, tokens=None):
        super().__init__()
        self._tokens = tokens
        self._output = output
        self._target = target
        self._files = files
        self._units = units
        self._job = job
        self._report = report
        self._card = card

    def expand(self, stats):
        # Not the units themselves as a side input: their stats and samples would all be held at once.
        temporary = self._units | "TemporaryFiles" >> beam.FlatMap(lambda unit: unit.temporary_files())
        samples = self._units | "ReportSamples" >> beam.CombineGlobally(ReportSamplesFn())
        # The examples' row types (units noted them for the card's features; None otherwise).
        row_types = (self._units | "RowTypes" >> beam.Map(lambda unit: unit.row_type)
                     | "ThatAreNoted" >> beam.Filter(lambda kind: kind is not None))
        return stats | "WriteStatsThenSuccess" >> beam.ParDo(
            _FinalizeFn(self._output, self._target, self._job, self._report, self._card, self._tokens),
            beam.pvalue.AsList(self._files), beam.pvalue.AsList(temporary), beam.pvalue.AsSingleton(samples),
            beam.pvalue.AsList(row_types))
