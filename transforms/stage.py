"""What every record-by-record stage shares: a rejected output, exception capture, counters."""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.metrics import Metrics

from schemas.records import INTERNAL_ERROR, Item, Rejected, Rejection, Source

REJECTED = "rejected"
KEPT = "items"

LOGGER = logging.getLogger(__name__)


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


def _as_rejected(bad):
    """Turn Beam's dead-letter tuple ``(element, (type, repr, traceback))`` into rejections.

    The element is a record, or a batch of records for batched stages.
    """
    element, (exc_type, exc_repr, _traceback) = bad
    error = Rejection(INTERNAL_ERROR, f"{getattr(exc_type, '__name__', exc_type)}: {exc_repr}")
    for record in element if isinstance(element, list) else [element]:
        if isinstance(record, Item):
            yield Rejected.of(record, [error])
        else:
            yield Rejected(_source_of(record), [error], None)


def _source_of(element) -> Source:
    """Provenance of a non-record element: a file URL, or a work unit with a ``source``."""
    if isinstance(element, str):
        return Source(element, -1)
    source = getattr(element, "source", None)
    return source if isinstance(source, Source) else Source("<unknown>", -1)


class RecordStage(beam.PTransform):
    """Applies a record DoFn and returns ``(kept, rejected)``.

    The DoFn yields kept records on the main output and ``TaggedOutput(REJECTED, ...)`` for
    expected rejections; any exception escaping it is caught per record by Beam's
    ``with_exception_handling`` and lands in ``rejected`` as ``internal_error``.
    """

    def __init__(self, dofn: beam.DoFn, *, partial: bool = False, extra_outputs: tuple[str, ...] = ()):
        super().__init__()
        self._dofn = dofn
        # More tagged outputs, returned after (kept, rejected) in this order.
        self._extra_outputs = extra_outputs
        # partial=False makes Beam hold all of one element's outputs until process() returns,
        # so a failure emits none of them. A DoFn whose element is a whole file must stream:
        # partial=True keeps what it emitted before failing.
        self._partial = partial

    def expand(self, pcoll):
        results = pcoll | "Apply" >> beam.ParDo(self._dofn).with_outputs(
            REJECTED, *self._extra_outputs, main=KEPT
        ).with_exception_handling(main_tag=KEPT, dead_letter_tag="errors", partial=self._partial)
        errors = results["errors"] | "ErrorsToRejected" >> beam.FlatMap(_as_rejected)
        rejected = (results[REJECTED], errors) | "MergeRejected" >> beam.Flatten()
        return (results[KEPT], rejected, *(results[tag] for tag in self._extra_outputs))


def reject(item: Item, counters: StageCounters, *errors: Rejection) -> beam.pvalue.TaggedOutput:
    counters.rejected.inc()
    for code in {e.code for e in errors}:
        counters.rejected_code(code).inc()
    return beam.pvalue.TaggedOutput(REJECTED, Rejected.of(item, list(errors)))
