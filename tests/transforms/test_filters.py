import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.recipe import FiltersSpec
from schemas.records import Item, Source, TokenCount
from tests.batches import batched, each
from transforms.filters import (
    ExampleFilter,
    FilterExamples,
    is_echo,
    repetition,
)
from transforms.tokens import TiktokenSource


def chat(user, assistant):
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def item(user="How do I reset my password?", assistant="Open Settings, then Security.", fields=None, tokens=20):
    return Item(Source("f", 0), fields or {"q": user, "a": assistant}, fields=fields or {"q": user, "a": assistant},
                example=chat(user, assistant), tokens=TokenCount(tokens, tokens, tokens // 2))


def test_repetition_scores():
    assert repetition("Eat a banana! " * 2000) > 0.95
    prose = ("Open Settings, choose Security and then Reset password. You will get an e-mail with a link; "
             "follow it within an hour, pick a new password and sign in again on every device you use.")
    assert repetition(prose) < 0.1
    assert repetition("short") == 0.0


def test_echo():
    assert is_echo(chat("What is 2+2?", "what is 2+2? "))
    assert not is_echo(chat("What is 2+2?", "4"))
    assert is_echo({"prompt": "Same", "completion": " same"})
    # Sameness is dedup's (transforms/text.py): compatibility forms are the same text too.
    assert is_echo(chat("ＨＥＬＬＯ there", "hello\u00a0there"))


@pytest.mark.parametrize(
    "spec, candidate, reason",
    [
        (FiltersSpec(min_chars={"a": 2}), item(assistant="k"), "filter_min_chars"),
        (FiltersSpec(max_chars={"example": 20}), item(), "filter_max_chars"),
        (FiltersSpec(min_tokens={"example": 50}), item(tokens=20), "filter_min_tokens"),
        (FiltersSpec(max_tokens={"example": 10}), item(tokens=20), "filter_max_tokens"),
        (FiltersSpec(max_tokens={"a": 3}), item(), "filter_max_tokens"),
        (FiltersSpec(max_repetition=0.5), item(assistant="Eat a banana! " * 200), "filter_repetition"),
        (FiltersSpec(blocklist=("lorem ipsum",)), item(assistant="Lorem Ipsum dolor"), "filter_blocklist"),
        (FiltersSpec(blocklist=("ass",)), item(assistant="Ask the assistant"), None),
        (FiltersSpec(drop_echoes=True), item(user="Repeat me", assistant="repeat me"), "filter_echo"),
        (FiltersSpec(min_chars={"a": 2}, max_repetition=0.5, drop_echoes=True), item(), None),
    ],
)
def test_each_filter(spec, candidate, reason):
    assert ExampleFilter(spec, TiktokenSource("o200k_base").load()).reason(candidate) == reason


def test_filter_transform_has_one_output_per_reason():
    spec = FiltersSpec(min_chars={"a": 2}, drop_echoes=True)
    with TestPipeline() as p:
        kept, rejected, short, echoes = (
            batched(p, [item(), item(assistant="k"), item(user="x y", assistant="X  y")])
            | "Filter" >> FilterExamples(spec=spec, source=TiktokenSource("o200k_base"))
        )
        assert_that(each(kept, "EachKept") | beam.Map(lambda i: i.fields["a"]), equal_to(["Open Settings, then Security."]), label="Kept")
        assert_that(each(short, "EachShort") | beam.Map(lambda d: (d.reason, d.record["a"])), equal_to([("filter_min_chars", "k")]), label="Short")
        assert_that(each(echoes, "EachEcho") | beam.Map(lambda d: d.reason), equal_to(["filter_echo"]), label="Echo")
        assert_that(rejected, equal_to([]), label="Rejected")


def test_bad_filter_options_fail_at_construction():
    with pytest.raises(ValueError, match="max_repetition"):
        FilterExamples(spec=FiltersSpec(max_repetition=1.5))
    with pytest.raises(ValueError, match="need the model's encoding"):
        FilterExamples(spec=FiltersSpec(min_tokens={"a": 3}))
