"""Templates come from recipes and DAG params: each way out of the template is refused, when
the recipe is loaded if it can be seen in the template, else when a row is rendered."""

import os

import pytest

from schemas.recipe import TemplateSpec
from transforms.template import ExampleTemplate, TemplateError, referenced_columns


def chat(content: str) -> TemplateSpec:
    return TemplateSpec(messages=[{"role": "user", "content": "{{ q }}"}, {"role": "assistant", "content": content}])


@pytest.mark.parametrize("content, refused", [
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "attribute '__class__'"),
    ("{{ q.__class__ }}", "attribute '__class__'"),
    ("{{ cycler.__init__.__globals__.os.environ }}", "attribute '__globals__'"),
    ("{{ lipsum.__globals__['os'].popen('id').read() }}", "attribute '__globals__'"),
    ("{{ self._TemplateReference__context }}", "attribute '_TemplateReference__context'"),
    ("{{ q|attr('__class__') }}", "|attr('__class__')"),
    ("{{ q['__class__'] }}", "item '__class__'"),
    ("{{ namespace.__init__ }}", "attribute '__init__'"),
    ("{% import 'os' as os %}{{ os }}", "{% import %}"),
    ("{% from 'os' import environ %}{{ environ }}", "{% fromimport %}"),
    ("{% include '/etc/passwd' %}", "{% include %}"),
    ("{% extends '/etc/passwd' %}", "{% extends %}"),
])
def test_escape_attempts_are_refused_when_the_recipe_is_loaded(content, refused):
    with pytest.raises(TemplateError) as error:
        referenced_columns(chat(content))
    message = str(error.value)
    assert message.startswith("template_error: template.messages[1].content is refused")
    assert refused in message


def test_gadget_globals_are_gone():
    # Not Jinja globals any more: a template naming them asks for columns of that name.
    assert {"lipsum", "cycler", "joiner"} <= referenced_columns(chat("{{ lipsum }}{{ cycler }}{{ joiner }}"))


@pytest.mark.parametrize("content", [
    "{{ '{0.__class__}'.format(q) }}",
    "{{ '{x.__class__}'.format_map({'x': q}) }}",
])
def test_escapes_only_visible_at_render_time_reject_the_row(content):
    template = ExampleTemplate(chat(content))
    with pytest.raises(TemplateError, match="SecurityError"):
        template.render({"q": "hello"})


def test_values_are_never_evaluated_and_the_environment_is_out_of_reach(monkeypatch):
    monkeypatch.setenv("FTPREP_TEST_SECRET", "s3cr3t")
    template = ExampleTemplate(chat("{{ q }} {{ range(3) | join(', ') }}"))
    example = template.render({"q": "{{ 7 * 7 }} {{ lipsum.__globals__ }} ${FTPREP_TEST_SECRET}"})
    content = example["messages"][1]["content"]
    assert content == "{{ 7 * 7 }} {{ lipsum.__globals__ }} ${FTPREP_TEST_SECRET} 0, 1, 2"
    assert os.environ["FTPREP_TEST_SECRET"] not in str(example)


def test_huge_ranges_are_refused():
    template = ExampleTemplate(chat("{% for i in range(10 ** 9) %}x{% endfor %}"))
    with pytest.raises(TemplateError, match="Range too big"):
        template.render({"q": "a"})
