import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.recipe import LimitsSpec, TemplateSpec
from schemas.records import TEMPLATE_ERROR, Item, Source
from tests.batches import batched, each
from transforms.template import (
    ExampleTemplate,
    RenderExamples,
    TakeExamples,
    TemplateError,
    conversation_from_cell,
    referenced_columns,
)

CHAT = TemplateSpec(
    system="You answer questions about {{ product }}.",
    messages=[
        {"role": "user", "content": "{{ instruction }}{% if input %}\n\n{{ input }}{% endif %}"},
        {"role": "assistant", "content": "{{ output }}", "weight": 1},
    ],
)


def test_render_chat_with_system_and_optional_input():
    template = ExampleTemplate(CHAT)
    example = template.render({"product": "Acme", "instruction": "Hi", "input": None, "output": "Hello"})
    assert example == {
        "messages": [
            {"role": "system", "content": "You answer questions about Acme."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello", "weight": 1},
        ]
    }
    with_input = template.render({"product": "Acme", "instruction": "Hi", "input": "ctx", "output": "x"})
    assert with_input["messages"][1]["content"] == "Hi\n\nctx"


def test_null_renders_as_empty_not_none():
    example = ExampleTemplate(CHAT).render({"product": "p", "instruction": "q", "input": None, "output": "a"})
    assert example["messages"][1]["content"] == "q"


def test_a_part_left_empty_by_a_null_is_a_null_field():
    with pytest.raises(TemplateError, match=r"messages\[1\].content renders empty: column\(s\) output null") as error:
        ExampleTemplate(CHAT).render({"product": "p", "instruction": "q", "input": None, "output": None})
    assert error.value.code == "null_field"
    # A null that leaves text around it is no null_field: {% if input %} is how optional columns work.
    assert ExampleTemplate(CHAT).render({"product": None, "instruction": "q", "input": None, "output": "a"})


@pytest.mark.parametrize("value, kind", [(["a", "b"], "list"), ({"k": 1}, "dict"), (b"raw", "bytes")])
def test_structured_values_printed_as_text_are_wrong_type(value, kind):
    with pytest.raises(TemplateError, match=f"a {kind} where text is expected") as error:
        ExampleTemplate(CHAT).render({"product": "p", "instruction": value, "input": None, "output": "a"})
    assert error.value.code == "wrong_type"
    joined = TemplateSpec(messages=[{"role": "user", "content": "{{ tags | join(', ') }} {{ meta | tojson }}"},
                                    {"role": "assistant", "content": "{{ n }}"}])
    example = ExampleTemplate(joined).render({"tags": ["a", "b"], "meta": {"k": 1}, "n": 42})
    assert [m["content"] for m in example["messages"]] == ['a, b {"k": 1}', "42"]


def test_a_loop_that_renders_past_the_limit_is_example_too_large():
    looping = TemplateSpec(messages=[{"role": "user", "content": "{% for i in range(1000) %}{{ q }}{% endfor %}"},
                                     {"role": "assistant", "content": "a"}])
    with pytest.raises(TemplateError, match="more than 10,000 characters") as error:
        ExampleTemplate(looping, limits=LimitsSpec(max_example_chars=10_000)).render({"q": "x" * 100})
    assert error.value.code == "example_too_large"


def test_missing_column_is_a_template_error():
    with pytest.raises(TemplateError, match="'output' is undefined"):
        ExampleTemplate(CHAT).render({"product": "p", "instruction": "q", "input": None})


def test_sandbox_blocks_python_internals():
    spec = TemplateSpec(messages=[{"role": "user", "content": "{{ q.__class__.__mro__[1].__subclasses__() }}"},
                                  {"role": "assistant", "content": "x"}])
    with pytest.raises(TemplateError, match="SecurityError|unsafe"):
        ExampleTemplate(spec).render({"q": "text"})


def test_cell_values_are_not_templates():
    spec = TemplateSpec(messages=[{"role": "user", "content": "{{ q }}"}, {"role": "assistant", "content": "a"}])
    assert ExampleTemplate(spec).render({"q": "{{ 7 * 7 }}"})["messages"][0]["content"] == "{{ 7 * 7 }}"


def test_completion_template():
    spec = TemplateSpec(format="completion", prompt="{{ q }}\n\n###\n\n", completion=" {{ a }}")
    assert ExampleTemplate(spec).render({"q": "Q", "a": "A"}) == {"prompt": "Q\n\n###\n\n", "completion": " A"}


def test_messages_from_json_string_and_from_arrow_structs():
    spec = TemplateSpec(system="sys", messages_column="conv")
    from_json = ExampleTemplate(spec).render({"conv": '[{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]'})
    from_structs = ExampleTemplate(spec).render(
        {"conv": [{"role": "user", "content": "u", "name": None}, {"role": "assistant", "content": "a", "name": None}]}
    )
    expected = {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}
    assert from_json == from_structs == expected


@pytest.mark.parametrize("cell, message", [("not json", "does not hold JSON"), ('{"a": 1}', "expected a list"), ("[1]", "not an object")])
def test_bad_conversation_cells(cell, message):
    with pytest.raises(TemplateError, match=message):
        conversation_from_cell(cell, "conv")


def test_referenced_columns():
    assert referenced_columns(CHAT) == {"product", "instruction", "input", "output"}
    assert referenced_columns(TemplateSpec(messages_column="conv")) == {"conv"}
    loop = TemplateSpec(messages=[{"role": "user", "content": "{% for x in items %}{{ x }}{{ range(1) }}{% endfor %}"},
                                  {"role": "assistant", "content": "a"}])
    assert referenced_columns(loop) == {"items"}


def test_unparseable_template_fails_at_construction():
    bad = TemplateSpec(messages=[{"role": "user", "content": "{% if %}"}, {"role": "assistant", "content": "a"}])
    with pytest.raises(TemplateError, match="does not parse"):
        RenderExamples(template=bad)


def test_render_examples_transform_rejects_with_template_error():
    good = Item(Source("f", 0), {"instruction": "q", "output": "a", "input": None, "product": "p"})
    bad = Item(Source("f", 1), {"instruction": "q"})
    with TestPipeline() as p:
        items, rejected = batched(p, [good, bad]) | "Render" >> RenderExamples(template=CHAT)
        assert_that(each(items, "EachItem") | beam.Map(lambda i: len(i.example["messages"])), equal_to([3]), label="Items")
        assert_that(each(rejected, "EachRejected") | beam.Map(lambda r: (r.source.row, r.codes, r.record)),
                    equal_to([(1, (TEMPLATE_ERROR,), {"instruction": "q"})]), label="Rejected")


TOOLS_JSON = '[{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]'


def test_tool_calls_and_tools_render_from_json_columns():
    spec = TemplateSpec(
        messages=[
            {"role": "user", "content": "{{ q }}"},
            {"role": "assistant", "tool_calls": "{{ calls }}"},
            {"role": "tool", "content": "{{ result }}", "tool_call_id": "{{ call_id }}"},
            {"role": "assistant", "content": "{{ a }}", "weight": 1},
        ],
        tools="{{ tools }}",
        parallel_tool_calls=False,
    )
    calls = '[{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]'
    example = ExampleTemplate(spec).render(
        {"q": "where?", "calls": calls, "result": "shipped", "call_id": "c1", "a": "It shipped.", "tools": TOOLS_JSON}
    )
    assert example["messages"][1] == {"role": "assistant", "content": None, "tool_calls": json.loads(calls)}
    assert example["messages"][2] == {"role": "tool", "content": "shipped", "tool_call_id": "c1"}
    assert example["tools"] == json.loads(TOOLS_JSON) and example["parallel_tool_calls"] is False
    from transforms.rules import validate_chat

    assert validate_chat(example).errors == []


def test_tool_calls_that_are_not_json_are_a_template_error():
    spec = TemplateSpec(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": "{{ calls }}"}])
    with pytest.raises(TemplateError, match=r"messages\[1\].tool_calls rendered to .* not JSON"):
        ExampleTemplate(spec).render({"calls": "lookup(42)"})


def test_preference_template():
    spec = TemplateSpec(format="preference", system="Be brief.", messages=[{"role": "user", "content": "{{ q }}"}],
                        preferred="{{ good }}", non_preferred="{{ bad }}")
    example = ExampleTemplate(spec).render({"q": "Capital of France?", "good": "Paris.", "bad": "Lyon, I think."})
    assert example == {
        "input": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]},
        "preferred_output": [{"role": "assistant", "content": "Paris."}],
        "non_preferred_output": [{"role": "assistant", "content": "Lyon, I think."}],
    }
    assert referenced_columns(spec) == {"q", "good", "bad"}


def test_take_examples_renames_legacy_preference_keys():
    legacy = {"input": {"messages": []}, "preferred_completion": [1], "non_preferred_completion": [2]}
    with TestPipeline() as p:
        items, _ = batched(p, [Item(Source("f", 0), legacy)]) | "Take" >> TakeExamples(format="preference")
        assert_that(each(items, "EachItem") | beam.Map(lambda i: sorted(i.example)), equal_to([["input", "non_preferred_output", "preferred_output"]]))


def test_tojson_renders_structured_cells_as_json():
    spec = TemplateSpec(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": "{{ calls | tojson }}"}])
    calls = [{"id": "c<1>", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    assert ExampleTemplate(spec).render({"calls": calls})["messages"][1]["tool_calls"] == calls


def test_a_value_holding_the_separator_falls_back_to_rendering_part_by_part():
    from transforms.template import _SEPARATOR

    spec = TemplateSpec(messages=[{"role": "user", "content": "{{ q }}"}, {"role": "assistant", "content": "{{ a }}"}])
    example = ExampleTemplate(spec).render({"q": f"x{_SEPARATOR}y", "a": "z"})
    assert example["messages"][0]["content"] == f"x{_SEPARATOR}y"
