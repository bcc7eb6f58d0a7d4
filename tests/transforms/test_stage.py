"""The batch machinery every record stage shares."""

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import KEPT, REJECTED, Item, Source
from tests.batches import batched, each
from transforms.stage import BatchDoFn, BatchStage, RecordBatchCoder


class _Halve(BatchDoFn):
    STAGE = "Halve"

    def handle(self, item, emit):
        emit("seen", item.source.row)
        if item.source.row == 3:
            raise ZeroDivisionError("row 3 breaks")
        emit(KEPT if item.source.row % 2 == 0 else REJECTED, item if item.source.row % 2 == 0 else self.reject(item))


def test_a_failing_record_is_rejected_alone_and_its_other_outputs_are_dropped():
    items = [Item(Source("f", row), {}) for row in range(6)]
    with TestPipeline() as p:
        kept, rejected, seen = batched(p, items) | "Halve" >> BatchStage(_Halve(), extra_outputs=("seen",))
        assert_that(each(kept, "EachKept") | beam.Map(lambda i: i.source.row), equal_to([0, 2, 4]), label="Kept")
        assert_that(each(rejected, "EachRejected") | beam.Map(lambda r: (r.source.row, r.codes)),
                    equal_to([(1, ()), (3, ("internal_error",)), (5, ())]), label="Rejected")
        assert_that(each(seen, "EachSeen"), equal_to([0, 1, 2, 4, 5]), label="Seen")


def test_record_batch_coder_round_trips_and_estimates_cheaply():
    coder = RecordBatchCoder()
    batch = [Item(Source("f", 1), {"q": "x"})]
    assert coder.decode(coder.encode(batch)) == batch
    assert coder.estimate_size(batch) == RecordBatchCoder.ESTIMATED_RECORD_BYTES
