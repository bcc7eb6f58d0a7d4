import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.recipe import LimitsSpec
from schemas.records import Item, Source
from tests.batches import batched, each
from transforms.validate import ValidateExamples

USER = {"role": "user", "content": "hi"}
ASSISTANT = {"role": "assistant", "content": "hello"}


def chat(*messages):
    return {"messages": list(messages)}


def test_validate_examples_transform_keeps_warnings():
    good = Item(Source("f", 0), {}, example=chat(USER, ASSISTANT))
    bad = Item(Source("f", 1), {}, example=chat(USER))
    with TestPipeline() as p:
        items, rejected = batched(p, [good, bad]) | "Validate" >> ValidateExamples(format="chat")
        assert_that(each(items, "EachItem") | beam.Map(lambda i: (i.source.row, i.warnings)), equal_to([(0, ("missing_system_message",))]), label="Items")
        assert_that(each(rejected, "EachRejected") | beam.Map(lambda r: (r.source.row, r.codes)),
                    equal_to([(1, ("example_missing_assistant_message",))]), label="Rejected")


def test_unknown_format_fails_at_construction():
    with pytest.raises(ValueError, match="unknown example format"):
        ValidateExamples(format="rlhf")


def test_too_many_messages_is_rejected_before_the_checks():
    turns = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    items = [Item(Source("f", 0), {}, example={"messages": turns * 3}), Item(Source("f", 1), {}, example={"messages": turns})]
    with TestPipeline() as p:
        kept, rejected = batched(p, items) | ValidateExamples(format="chat", limits=LimitsSpec(max_messages=4))
        assert_that(each(kept, "K") | beam.Map(lambda i: i.source.row), equal_to([1]), label="Kept")
        assert_that(each(rejected, "R") | beam.Map(lambda r: (r.codes, r.errors[0].message)),
                    equal_to([(("too_many_messages",), "example has 6 messages; limits.max_messages is 4")]), label="Rej")
