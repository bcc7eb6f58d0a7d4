"""Templates that only substitute columns render without Jinja to the very text the sandbox
renders (``transforms/compiled_template.py``); rows they cannot render go to the sandbox, and
come out as they always did: the same example, or the same rejection."""

from __future__ import annotations

import jinja2
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from schemas.recipe import LimitsSpec, TemplateSpec
from transforms.compiled_template import NotSimple, compile_simple
from transforms.template import ExampleTemplate, TemplateError, build_environment

COLUMNS = ["q", "a", "ctx", "self"]  # self is Jinja's own (the template), whatever the row holds
# Literal text with what Jinja treats specially around it: newlines of every kind, braces,
# percent signs, trailing whitespace that {%- -%} trims.
LITERAL = st.lists(st.sampled_from(list("ab {}%#-\n\r\t é✓") + ["\r\n", "\u2028"]), max_size=12).map("".join)
VALUE = st.one_of(
    st.none(), st.just(""), st.text(max_size=20), st.sampled_from(["  ", "\n", "{{ q }}", "\x1e\x1fftprep-part\x1f\x1e"]),
    st.integers(-3, 3), st.floats(allow_nan=False, width=16), st.booleans(), st.lists(st.text(max_size=3), max_size=2),
)


def _open(dash: bool) -> str:
    return "{%- " if dash else "{% "


def _close(dash: bool) -> str:
    return " -%}" if dash else " %}"


@st.composite
def sources(draw, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["text", "name", "name", "if"] if depth < 2 else ["text", "name"]))
        if kind == "text":
            parts.append(draw(LITERAL))
        elif kind == "name":
            left, right = draw(st.booleans()), draw(st.booleans())
            parts.append(("{{- " if left else "{{ ") + draw(st.sampled_from(COLUMNS)) + (" -}}" if right else " }}"))
        else:
            dashes = [draw(st.booleans()) for _ in range(6)]
            test = draw(st.sampled_from(COLUMNS))
            otherwise = (_open(dashes[2]) + "else" + _close(dashes[3]) + draw(sources(depth + 1))) if draw(st.booleans()) else ""
            parts.append(_open(dashes[0]) + f"if {test}" + _close(dashes[1]) + draw(sources(depth + 1)) + otherwise
                         + _open(dashes[4]) + "endif" + _close(dashes[5]))
    return "".join(parts)


ROWS = st.dictionaries(st.sampled_from(COLUMNS), VALUE)


def _sandbox(source: str, row: dict) -> str | type:
    env = build_environment()
    env.budget.start()
    try:
        return env.from_string(source).render(row)
    except Exception as error:  # noqa: BLE001 - which error, compared below
        return type(error)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=sources(), row=ROWS)
def test_a_compiled_template_renders_what_the_sandbox_renders(source, row):
    env = build_environment()
    try:
        ast = env.parse(source)
    except jinja2.TemplateSyntaxError:
        assume(False)
    render = compile_simple(ast)
    if render is None:  # every template these strategies make is simple, but for Jinja's own names
        assert "self" in source
        return
    try:
        text = render(row)
    except NotSimple:
        return  # rendered by the sandbox, whatever it makes of the row
    assert text == _sandbox(source, row)


@pytest.mark.parametrize("source", [
    "{{ q | trim }}", "{{ q ~ a }}", "{% for x in q %}{{ x }}{% endfor %}", "{% if q %}x{% elif a %}y{% endif %}",
    "{{ 'const' }}", "{% if q == 'x' %}y{% endif %}", "{{ self }}", "{% set x = q %}{{ x }}", "{{ q.a }}",
])
def test_templates_that_do_more_are_left_to_the_sandbox(source):
    assert compile_simple(build_environment().parse(source)) is None


def _both(spec: TemplateSpec, row: dict, limits: LimitsSpec = LimitsSpec()):
    compiled, sandboxed = ExampleTemplate(spec, limits=limits), ExampleTemplate(spec, limits=limits)
    sandboxed._compiled = None
    outcomes = []
    for template in (compiled, sandboxed):
        try:
            outcomes.append(template.render(row))
        except TemplateError as error:
            outcomes.append((error.code, str(error)))
    return outcomes


@settings(max_examples=80, deadline=None)
@given(user=sources(), assistant=sources(), row=ROWS)
# Found by this test: "{{-" strips the whitespace before it, and Python counts \x1e and \x1f as
# whitespace: the sandbox's joined render lost the end of its part separator, which the value
# then completed — the assistant's content came out empty.
@example(user="", assistant="{{- a }}", row={"a": "\x1f\x1e"})
def test_an_example_is_the_same_rendered_either_way(user, assistant, row):
    spec = TemplateSpec.model_validate({"system": "Be brief.", "messages": [{"role": "user", "content": user},
                                                                            {"role": "assistant", "content": assistant}]})
    try:
        first, second = _both(spec, row)
    except jinja2.TemplateSyntaxError:
        assume(False)
    assert first == second


@pytest.mark.parametrize("row", [
    {"q": "x" * 60, "a": "y"},       # over max_example_chars: the sandbox's rejection, worded as always
    {"q": None, "a": "y"},            # null column: null_field
    {"q": 3, "a": "y"},               # a number: the sandbox prints it
    {"q": ["a"], "a": "y"},           # a list: wrong_type
    {"a": "y"},                       # a column the row lacks
    {"q": "a\x1e\x1fftprep-part\x1f\x1eb", "a": "y"},  # the separator inside a value
])
def test_rows_the_compiled_render_leaves_are_rendered_as_before(row):
    spec = TemplateSpec.model_validate({"messages": [{"role": "user", "content": "{{ q }}"},
                                                     {"role": "assistant", "content": "{{ a }}"}]})
    first, second = _both(spec, row, LimitsSpec(max_example_chars=50))
    assert first == second
