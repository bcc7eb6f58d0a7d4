"""Templates stay bounded: nothing runs when a recipe's template is compiled, and each render
has a CPU-time budget and a size budget enforced before a value is built."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.recipe import LimitsSpec, TemplateSpec
from schemas.records import EXAMPLE_TOO_LARGE, TEMPLATE_ERROR
from transforms.template import ExampleTemplate, TemplateError, referenced_columns

REPO = Path(__file__).resolve().parents[2]
# Short CPU budget so the loops below cost a fraction of a second each.
LIMITS = LimitsSpec(max_render_seconds=0.2)


def chat(content: str) -> TemplateSpec:
    return TemplateSpec(messages=[{"role": "user", "content": "{{ question }}"}, {"role": "assistant", "content": content}])


def rejection(content: str, row: dict | None = None) -> TemplateError:
    template = ExampleTemplate(chat(content), limits=LIMITS)
    with pytest.raises(TemplateError) as error:
        template.render(row or {"question": "hello"})
    return error.value


SIZE = "limits.max_example_chars"
CPU = "limits.max_render_seconds"
PAYLOADS = [
    # The payloads
    ("{{ 10**(10**10) }}", "the ** operator would build an integer"),
    ("{{ 'a' * 10**10 }}", SIZE),
    ("{% for i in range(99999) %}{% for j in range(99999) %}{% for k in range(99999) %}{% endfor %}{% endfor %}"
     "{% endfor %}", CPU),
    ("{{ question * 10**8 }}", SIZE),
    # string and list multiplication, concatenation
    ("{{ [question] * 10**9 }}", SIZE),
    ("{% set ns = namespace(s=question) %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", SIZE),
    ("{% set ns = namespace(s=question) %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", SIZE),
    ("{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% endif %}{% endmacro %}{{ d(question, 60) }}", SIZE),
    # filters and methods that pad or repeat, and formatting widths
    ("{{ question | center(10**9) }}", SIZE),
    ("{{ question | indent(10**8) }}", SIZE),
    ("{{ (question * 1000) | replace('', question * 1000) }}", SIZE),
    ("{{ '%0999999999d' | format(1) }}", SIZE),
    ("{{ '%0999999999d' % 1 }}", SIZE),
    ("{{ '%*d' % (10**9, 1) }}", SIZE),
    ("{{ '{:>999999999}'.format(1) }}", SIZE),
    ("{{ question.ljust(10**9) }}", SIZE),
    ("{{ question.zfill(10**9) }}", SIZE),
    ("{{ ('\t' * 1000).expandtabs(10**6) }}", SIZE),
    ("{{ (question * 100000).replace('', question * 1000) }}", SIZE),
    ("{{ range(99999) | join(question * 100) }}", SIZE),
    ("{{ (question * 100).join(question.split() * 99999) }}", SIZE),
    ("{{ question.split() | batch(10**9, 'x') | list | length }}", SIZE),
    ("{{ range(10) | slice(10**9) | list | length }}", SIZE),
    # CPU: recursion that fans out, and loops that print nothing
    ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}", CPU),
    ("{% for i in range(99999) %}{% for j in range(99999) %}{{ i + j }}{% endfor %}{% endfor %}", SIZE + "|" + CPU),
]


@pytest.mark.parametrize("content, budget", PAYLOADS)
def test_each_payload_is_a_template_error_naming_its_budget(content, budget):
    error = rejection(content)
    assert error.code in (TEMPLATE_ERROR, EXAMPLE_TOO_LARGE)
    assert any(name in str(error) for name in budget.split("|")), str(error)


def test_what_a_render_prints_anywhere_counts_towards_the_example_size():
    """A {% set %} block or a macro builds its text in memory, out of sight of the streamed output."""
    error = rejection("{% set x %}{% for i in range(99999) %}{% for j in range(99999) %}{{ question }}{% endfor %}"
                      "{% endfor %}{% endset %}{{ x | length }}", {"question": "x" * 10_000})
    assert error.code == EXAMPLE_TOO_LARGE and SIZE in str(error)


def test_a_rejected_render_leaves_the_template_usable():
    template = ExampleTemplate(chat("{{ question * n }}"), limits=LIMITS)
    with pytest.raises(TemplateError, match=SIZE):
        template.render({"question": "hello", "n": 10**9})
    assert template.render({"question": "hello", "n": 2})["messages"][1]["content"] == "hellohello"


def test_the_budget_follows_the_recipe_limits():
    template = ExampleTemplate(chat("{{ question * n }}"), limits=LimitsSpec(max_example_chars=50))
    assert template.render({"question": "abcde", "n": 9})["messages"][1]["content"] == "abcde" * 9  # 50 in all
    with pytest.raises(TemplateError, match="over the 50 of limits.max_example_chars"):
        template.render({"question": "abcde", "n": 11})


def test_builtin_containers_are_immutable():
    error = rejection("{% set xs = [] %}{{ xs.append(question) }}")
    assert "SecurityError" in str(error) or "unsafe" in str(error)


@pytest.mark.parametrize("content, expected", [
    ("{% for x in xs %}{{ loop.index }}/{{ loop.length }}{% if not loop.last %},{% endif %}{% endfor %}", "1/3,2/3,3/3"),
    ("{% for x in xs if x != 'b' %}{{ x }}{% else %}none{% endfor %}", "ac"),
    ("{% macro m(a) %}[{{ a }}{{ caller() }}]{% endmacro %}{% call m(question) %}!{% endcall %}", "[hello!]"),
    ("{% set ns = namespace(n=0) %}{% for x in xs %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}", "3"),
    ("{{ question ~ '-' ~ xs | join('+') }}", "hello-a+b+c"),
    ("{{ items | map(attribute='n') | join(', ') }} {{ items | sum(attribute='v') }}", "x, y 3"),
    ("{{ (nested | sum(start=[])) | join }}", "123"),
    ("{{ '%s has %d' % (question, 3) }} {{ '{} {}'.format(question, 1) }} {{ '%05.1f' | format(3.14159) }}",
     "hello has 3 hello 1 003.1"),
    ("{{ question.upper() }}|{{ question | center(9) }}|{{ question.ljust(7) }}|", "HELLO|  hello  |hello  |"),
    ("{{ (xs * 2) | join }} {{ 2 ** 10 }} {{ 7 // 2 }} {{ -3 }} {{ 10 / 4 }}", "abcabc 1024 3 -3 2.5"),
    ("{% for row in nested recursive %}{% if row is iterable %}[{{ loop(row) }}]{% else %}{{ row }}{% endif %}"
     "{% endfor %}", "[12][3]"),
    ("{{ range(3) | map('string') | join('.') }} {{ question | indent(2, true) }}", "0.1.2   hello"),
])
def test_ordinary_templates_render_as_in_jinja(content, expected):
    row = {"question": "hello", "xs": ["a", "b", "c"], "items": [{"n": "x", "v": 1}, {"n": "y", "v": 2}],
           "nested": [[1, 2], [3]]}
    assert ExampleTemplate(chat(content), limits=LIMITS).render(row)["messages"][1]["content"] == expected


def test_loading_a_hostile_recipe_evaluates_nothing():
    """Jinja folds constant expressions when it compiles a template; here nothing is evaluated
    until a row renders. Loaded in a process capped at 1 GB of address space and 60 s: the old
    behaviour (10**(10**10) computed, 'a' * 10**10 built) would exceed both."""
    script = (
        "import json, sys\n"
        "from schemas.recipe import TemplateSpec\n"
        "from transforms.template import ExampleTemplate, RenderExamples, referenced_columns\n"
        "for content in json.loads(sys.argv[1]):\n"
        "    spec = TemplateSpec(messages=[{'role': 'user', 'content': 'q'}, {'role': 'assistant', 'content': content}])\n"
        "    referenced_columns(spec); RenderExamples(template=spec); ExampleTemplate(spec)\n"
        "print('loaded')\n"
    )
    payloads = [content for content, _ in PAYLOADS] + [
        "{% if 10**(10**10) %}x{% endif %}", "{% set s = 'a' * 10**10 %}{{ s }}", "{{ 'a' | center(9999999999) }}",
        "{{ ('a' * 10**10) | length }}", "{% autoescape 10**(10**10) > 1 %}x{% endautoescape %}",
    ]
    result = subprocess.run(
        [sys.executable, "-c", f"import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n{script}",
         json.dumps(payloads)], cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip() == "loaded", result.stderr[-2000:]


def test_a_deeply_nested_template_is_refused_when_loaded():
    with pytest.raises(TemplateError, match="nested too deeply"):
        referenced_columns(chat("{{ " + "(" * 3000 + "question" + ")" * 3000 + " }}"))


# Issue 24's bypasses: big integers, a clock that started late, and values that add up.
@pytest.mark.parametrize("content, budget", [
    ("{% set a = 2**65535 - 1 %}" + "{% set a = a * a %}" * 11 + "{{ a % 7 }}", "integer of more than"),
    ("{% set ns = namespace(l=[]) %}{% for i in range(2000) %}{% set ns.l = ns.l + [(question ~ i) * 100000] %}"
     "{% endfor %}{{ ns.l | length }}", "in all"),
    ("{% set ns = namespace(l=[]) %}{% for i in range(2000) %}{% set ns.l = ns.l + [big[i:]] %}{% endfor %}"
     "{{ ns.l | length }}", "in all"),
    ("{{ [[question]] | tojson(indent=50000000) }}", "the tojson filter would build"),
    ("{{ (1).to_bytes(10**9, 'big') | length }}", SIZE),
])
def test_budgets_cannot_be_bypassed(content, budget):
    error = rejection(content, {"question": "hello", "big": "x" * 1_000_000})
    assert error.code == TEMPLATE_ERROR and budget in str(error), str(error)


def test_the_clock_starts_with_the_render_so_a_few_slow_steps_are_timed():
    """Fewer than 64 steps used to go untimed: the deadline was set at the 64th step."""
    content = "{{ big" + ".upper().lower()" * 15 + " | length }}"
    template = ExampleTemplate(chat(content), limits=LimitsSpec(max_render_seconds=0.001))
    with pytest.raises(TemplateError, match=CPU):
        template.render({"question": "q", "big": "x" * 1_000_000})


@pytest.mark.parametrize("content", ["{{ self }}", "{{ question.format_map }}", "{{ namespace }}", "{{ range }}"])
def test_functions_and_template_objects_are_not_printed_as_their_address(content):
    error = rejection(content)
    assert error.code == TEMPLATE_ERROR and "memory address" in str(error)


def test_an_indented_tojson_within_budget_renders():
    template = ExampleTemplate(chat("{{ xs | tojson(indent=2) }}"), limits=LIMITS)
    assert template.render({"question": "q", "xs": [1]})["messages"][1]["content"] == "[\n  1\n]"
