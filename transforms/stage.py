"""What every record stage shares: batches, a rejected output, per-record exception capture, counters.

Records travel in batches (plain lists of ``Item``): Beam's per-element cost (a DoFn call,
exception wrapping, counters, a coder at stage boundaries) is paid once per batch, not once
per record. A stage's logic still looks at one record at a time (``BatchDoFn.handle``).
"""

from __future__ import annotations

import pickle
from collections import defaultdict
from typing import Any, Callable

import apache_beam as beam
from apache_beam.metrics import Metrics

from schemas.records import INTERNAL_ERROR, KEPT, REJECTED, Item, Rejected, Rejection, Source

BATCH_ROWS = 1024

Emit = Callable[[str, Any], None]


class RecordBatch(list):
    """The element type of PCollections of batches (the values themselves are plain lists)."""


class RecordBatchCoder(beam.coders.Coder):
    """Pickles a whole batch in one call. Beam's default coder encodes a list element by element
    and, to sample PCollection sizes for its metrics, encodes sampled batches record by record;
    here the size estimate is a constant per record."""

    ESTIMATED_RECORD_BYTES = 2048

    def encode(self, value) -> bytes:
        return pickle.dumps(list(value), protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes):
        return pickle.loads(encoded)

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, value) -> int:
        return self.ESTIMATED_RECORD_BYTES * len(value)

    def to_type_hint(self):
        return RecordBatch


beam.coders.registry.register_coder(RecordBatch, RecordBatchCoder)


def batches(pcoll):
    """Declare ``pcoll`` a PCollection of record batches, so that it gets ``RecordBatchCoder``."""
    pcoll.element_type = RecordBatch
    return pcoll


class StageCounters:
    """Counters with fixed names per stage (``total``, ``kept``, ``rejected``), as the UI shows them."""

    def __init__(self, stage: str):
        self._stage = stage
        self.total = Metrics.counter(stage, "total")
        self.kept = Metrics.counter(stage, "kept")
        self.rejected = Metrics.counter(stage, "rejected")

    def rejected_code(self, code: str):
        return Metrics.counter(self._stage, f"rejected_{code}")

    def dropped(self, reason: str):
        return Metrics.counter(self._stage, f"dropped_{reason}")


def internal_error(error: BaseException) -> Rejection:
    return Rejection(INTERNAL_ERROR, f"{type(error).__name__}: {error}")


def rejection_for(element, error: Rejection) -> Rejected:
    if isinstance(element, Item):
        return Rejected.of(element, [error])
    # Every batch stage takes Items; anything else is itself the bug, reported without a source.
    return Rejected(Source("<unknown>", -1), [error], None)


class BatchDoFn(beam.DoFn):
    """A DoFn over batches whose subclasses implement ``handle(item, emit)`` for one record.

    ``emit(KEPT, item)`` keeps a record, ``emit(REJECTED, rejected)`` rejects it (see
    ``reject``), and any other tag goes to that tagged output. A handler updates the record in
    place: a record moves through the chain of one process (``RecordChain``), and copying it at
    every stage cost a sixth of the per-record time. Each output leaves as one list
    per input batch. An exception in ``handle`` rejects that record alone as ``internal_error``
    and drops whatever it had emitted: it is caught per record, never per batch.
    """

    STAGE = "Stage"

    def __init__(self):
        self._counters = StageCounters(self.STAGE)

    def handle(self, item, emit: Emit) -> None:
        raise NotImplementedError

    def reject(self, item: Item, *errors: Rejection) -> Rejected:
        for code in {e.code for e in errors}:
            self._counters.rejected_code(code).inc()
        return Rejected.of(item, list(errors))

    def process(self, batch: list):
        outputs: dict[str, list] = defaultdict(list)
        pending: list[tuple[str, Any]] = []
        emit = lambda tag, value: pending.append((tag, value))  # noqa: E731
        for element in batch:
            pending.clear()
            try:
                self.handle(element, emit)
            except Exception as error:  # noqa: BLE001 - one record's failure is its own rejection
                pending[:] = [(REJECTED, rejection_for(element, internal_error(error)))]
            for tag, value in pending:
                outputs[tag].append(value)
        self._counters.total.inc(len(batch))
        self._counters.kept.inc(len(outputs.get(KEPT, ())))
        self._counters.rejected.inc(len(outputs.get(REJECTED, ())))
        for tag, values in outputs.items():
            yield values if tag == KEPT else beam.pvalue.TaggedOutput(tag, values)


class BatchStage(beam.PTransform):
    """Applies a ``BatchDoFn``; returns ``(kept, rejected, *extra_outputs)``, each a PCollection of batches."""

    def __init__(self, dofn: BatchDoFn, *, extra_outputs: tuple[str, ...] = ()):
        super().__init__()
        self._dofn = dofn
        self._extra_outputs = extra_outputs

    @property
    def dofn(self) -> BatchDoFn:
        """The per-record logic, for running it outside a pipeline (``ftprep preview``)."""
        return self._dofn

    def expand(self, records):
        results = records | "Apply" >> beam.ParDo(self._dofn).with_outputs(REJECTED, *self._extra_outputs, main=KEPT)
        return tuple(batches(results[tag]) for tag in (KEPT, REJECTED, *self._extra_outputs))


class RecordChain:
    """``BatchDoFn``s run one after the other over a batch, in the calling process: what one keeps
    the next one gets, everything else leaves under its tag. The whole per-record chain is one
    Beam step this way (each step of its own would pay Beam's per-step cost on every record); the
    handlers, their codes, counters and per-record exception capture are the stages' own."""

    def __init__(self, dofns: list[BatchDoFn]):
        self._dofns = list(dofns)

    def setup(self) -> None:
        for dofn in self._dofns:
            dofn.setup()

    def teardown(self) -> None:
        for dofn in self._dofns:
            dofn.teardown()

    def run(self, batch: list) -> tuple[list, dict[str, list]]:
        """``(kept, {tag: values})`` for one batch; ``REJECTED`` is among the tags."""
        left: dict[str, list] = defaultdict(list)
        for dofn in self._dofns:
            kept: list = []
            for output in dofn.process(batch):
                if isinstance(output, beam.pvalue.TaggedOutput):
                    left[output.tag].extend(output.value)
                else:
                    kept.extend(output)
            batch = kept
            if not batch:
                break
        return batch, left
