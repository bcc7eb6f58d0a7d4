import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import Item, Source
from tests.batches import batched, each
from transforms.split import SplitExamples, assign_split, split_key


def example(i):
    return {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}


def test_split_depends_only_on_content_and_seed():
    a = {"prompt": "p", "completion": "c"}
    b = {"completion": "c", "prompt": "p"}  # same content, other key order
    assert split_key(a, 0) == split_key(b, 0)
    assert split_key(a, 0) != split_key(a, 1)
    assert 0.0 <= split_key(a, 0) < 1.0


def test_fraction_is_respected_roughly():
    splits = [assign_split(example(i), seed=3, validation_fraction=0.2) for i in range(5000)]
    assert 0.17 < splits.count("validation") / len(splits) < 0.23


def test_zero_fraction_puts_everything_in_train():
    assert {assign_split(example(i), seed=0, validation_fraction=0.0) for i in range(200)} == {"train"}


def test_split_examples_transform_partitions_and_tags():
    items = [Item(Source("f", i), {}, example=example(i), tokens=5) for i in range(50)]
    expected = {s: sorted(i for i in range(50) if assign_split(example(i), seed=1, validation_fraction=0.3) == s)
                for s in ("train", "validation")}
    with TestPipeline() as p:
        parts, _ = batched(p, items) | "Split" >> SplitExamples(validation_fraction=0.3, seed=1)
        for name in ("train", "validation"):
            assert_that(each(parts[name], f"Each{name}") | f"{name}Rows" >> beam.Map(lambda i: (i.split, i.source.row)),
                        equal_to([(name, r) for r in expected[name]]), label=f"Check{name}")


def test_bad_fraction_fails_at_construction():
    with pytest.raises(ValueError, match="validation_fraction"):
        SplitExamples(validation_fraction=1.0)
