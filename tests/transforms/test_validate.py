import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given
from hypothesis import strategies as st

from schemas.records import Item, Source
from transforms.validate import ValidateExamples, validate_chat, validate_completion, validate_example


def chat(*messages):
    return {"messages": list(messages)}


USER = {"role": "user", "content": "hi"}
ASSISTANT = {"role": "assistant", "content": "hello"}


def codes(errors):
    return sorted(e.code for e in errors)


def test_valid_chat():
    assert validate_chat(chat({"role": "system", "content": "s"}, USER, ASSISTANT)) == []


@pytest.mark.parametrize(
    "example, expected",
    [
        ({}, ["missing_messages_list"]),
        ({"messages": []}, ["missing_messages_list"]),
        ([1], ["data_type"]),
        (chat(USER), ["example_missing_assistant_message"]),
        (chat(USER, {"role": "assistant"}), ["message_missing_key"]),
        (chat(USER, {"role": "agent", "content": "x"}), ["example_missing_assistant_message", "unrecognized_role"]),
        (chat(USER, {**ASSISTANT, "mood": "happy"}), ["message_unrecognized_key"]),
        (chat(USER, {**ASSISTANT, "content": "   "}), ["missing_content"]),
        (chat(USER, {**ASSISTANT, "content": 3}), ["missing_content"]),
        (chat(USER, {**ASSISTANT, "weight": 2}), ["invalid_weight"]),
        (chat(USER, {**ASSISTANT, "weight": True}), ["invalid_weight"]),
        (chat({**USER, "weight": 1}, ASSISTANT), ["invalid_weight"]),
        (chat("hi", ASSISTANT), ["data_type"]),
        (chat({"role": [], "content": "x"}, ASSISTANT), ["unrecognized_role"]),
    ],
)
def test_chat_rules(example, expected):
    assert codes(validate_chat(example)) == expected


def test_messages_point_at_index_and_key():
    (error,) = validate_chat(chat(USER, {**ASSISTANT, "mood": "x"}))
    assert error.message == "messages[1] has unrecognized key 'mood'"


def test_weight_zero_is_allowed():
    assert validate_chat(chat(USER, {**ASSISTANT, "weight": 0}), ) == []


@pytest.mark.parametrize(
    "example, expected",
    [
        ({"prompt": "p", "completion": " c"}, []),
        ({"prompt": "p", "completion": " "}, ["invalid_completion"]),
        ({"prompt": 1, "completion": "c"}, ["invalid_completion"]),
        ({"prompt": "p", "completion": "c", "extra": 1}, ["invalid_completion"]),
    ],
)
def test_completion_rules(example, expected):
    assert codes(validate_completion(example)) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["role", "content", "weight", "name", "x"]), inner, max_size=4),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from(["messages", "prompt", "completion"]), json_values) | json_values)
def test_validation_never_raises(example):
    for fmt in ("chat", "completion"):
        assert isinstance(validate_example(example, fmt), list)


def test_validate_examples_transform():
    good = Item(Source("f", 0), {}, example=chat(USER, ASSISTANT))
    bad = Item(Source("f", 1), {}, example=chat(USER))
    with TestPipeline() as p:
        items, rejected = p | beam.Create([good, bad]) | "Validate" >> ValidateExamples(format="chat")
        assert_that(items | beam.Map(lambda i: i.source.row), equal_to([0]), label="Items")
        assert_that(rejected | beam.Map(lambda r: (r.source.row, r.codes)),
                    equal_to([(1, ("example_missing_assistant_message",))]), label="Rejected")


def test_unknown_format_fails_at_construction():
    with pytest.raises(ValueError, match="unknown example format"):
        ValidateExamples(format="dpo")
