"""Property tests with arbitrary strings and JSON values: nothing escapes but the defined errors,
and examples built to be valid pass validation and count. (Cleaning's idempotence: test_clean.)"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from schemas.recipe import LimitsSpec, TemplateSpec
from schemas.records import EXAMPLE_TOO_LARGE, NULL_FIELD, TEMPLATE_ERROR, WRONG_TYPE
from transforms.clean import clean_fields
from transforms.template import ExampleTemplate, TemplateError
from transforms.encodings import load_encoding
from transforms.tokens import TokenCounter
from transforms.rules import validate_example

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text() | st.binary(max_size=8)
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                         max_leaves=8)
rows = st.dictionaries(st.sampled_from(["q", "a", "input", "system"]), json_like, max_size=4)

TEMPLATES = [
    TemplateSpec(system="{{ system }}", messages=[
        {"role": "user", "content": "{{ q }}{% if input %}\n\n{{ input }}{% endif %}"},
        {"role": "assistant", "content": "{{ a }}"}]),
    TemplateSpec(format="completion", prompt="{{ q }}\n###\n", completion=" {{ a }}"),
    TemplateSpec(format="preference", messages=[{"role": "user", "content": "{{ q }}"}],
                 preferred="{{ a }}", non_preferred="{{ input }}"),
    TemplateSpec(messages_column="q"),
]


@pytest.fixture(scope="module")
def counter():
    return TokenCounter(load_encoding("o200k_base"), "o200k_base")


@settings(max_examples=300)
@given(rows, st.sampled_from(range(len(TEMPLATES))))
def test_rendering_any_row_raises_only_template_errors(row, which):
    spec = TEMPLATES[which]
    try:
        example = ExampleTemplate(spec, limits=LimitsSpec(max_example_chars=10_000)).render(clean_fields(row, ("trim",), None, {}))
    except TemplateError as error:
        assert error.code in {TEMPLATE_ERROR, WRONG_TYPE, NULL_FIELD, EXAMPLE_TOO_LARGE}
        return
    # Whatever renders is then checked by validation, which must not raise either.
    validate_example(example, spec.format, reject_blank=True)


text = st.text(min_size=1, max_size=200).filter(lambda s: s.strip())


@st.composite
def valid_chat(draw):
    messages = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(text)})
    for _ in range(draw(st.integers(1, 4))):
        messages.append({"role": "user", "content": draw(text)})
        answer = {"role": "assistant", "content": draw(text)}
        if draw(st.booleans()):
            answer["weight"] = draw(st.sampled_from([0, 1]))
        messages.append(answer)
    messages[-1].pop("weight", None)  # the last answer is trained
    return {"messages": messages}


@settings(max_examples=200)
@given(example=valid_chat())
def test_generated_valid_chat_examples_pass_and_count(example, counter):
    found = validate_example(example, "chat", reject_blank=True)
    assert not found.errors, found.errors
    tokens = counter.count(example, "chat")
    assert tokens.total >= tokens.trained > 0


@settings(max_examples=100)
@given(text, text, text)
def test_generated_valid_completion_and_preference_examples_pass(prompt, good, bad):
    assume(good != bad)  # a pair of identical answers teaches nothing and is rejected
    assert not validate_example({"prompt": prompt, "completion": good}, "completion").errors
    pair = {"input": {"messages": [{"role": "user", "content": prompt}]},
            "preferred_output": [{"role": "assistant", "content": good}],
            "non_preferred_output": [{"role": "assistant", "content": bad}]}
    assert not validate_example(pair, "preference").errors
