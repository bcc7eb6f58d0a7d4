import pytest

from schemas.recipe import SplitSpec
from schemas.records import Item, Source
from transforms.split import AssignSplit, assign_split, split_key
from transforms.stage import RecordChain


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


def test_assign_split_marks_each_record():
    items = [Item(Source("f", i), {}, example=example(i)) for i in range(50)]
    kept, left = RecordChain([AssignSplit(spec=SplitSpec(validation_fraction=0.3, seed=1)).dofn]).run(items)
    assert left == {}
    assert [(i.source.row, i.split) for i in kept] == [
        (i, assign_split(example(i), seed=1, validation_fraction=0.3)) for i in range(50)]
    assert {i.split for i in kept} == {"train", "validation"}


def test_no_validation_needs_no_digest():
    items = [Item(Source("f", i), {}, example=object()) for i in range(3)]  # nothing to digest
    kept, left = RecordChain([AssignSplit(spec=SplitSpec(validation_fraction=0.0)).dofn]).run(items)
    assert [i.split for i in kept] == ["train"] * 3 and left == {}


def test_bad_fraction_fails_at_construction():
    with pytest.raises(ValueError, match="validation_fraction"):
        AssignSplit(spec=SplitSpec(validation_fraction=1.0))
