"""Rendering a cleaned row into a fine-tuning example through Jinja2 templates.

Templates come from recipes and DAG parameters, so they run in a bounded, immutable Jinja
sandbox (``transforms/sandbox.py``); ``StrictUndefined`` turns a misspelt column into an
error instead of an empty string.
"""

from __future__ import annotations

from typing import Any

import jinja2
import orjson
from jinja2 import meta

from schemas.formats import FORMATS, PREFERENCE, normalize_preference
from schemas.recipe import LimitsSpec, TemplateSpec
from schemas.records import EXAMPLE_TOO_LARGE, KEPT, NULL_FIELD, REJECTED, TEMPLATE_ERROR, WRONG_TYPE, Item, Rejection
from transforms.compiled_template import NotSimple, compile_simple
from transforms.sandbox import BoundedEnvironment, BudgetExceeded, RenderBudget
from transforms.stage import BatchDoFn, BatchStage


class TemplateError(ValueError):
    """A row the template cannot turn into an example; ``code`` is its rejection code."""

    def __init__(self, message: str, code: str = TEMPLATE_ERROR):
        super().__init__(message)
        self.code = code


class WrongType(TemplateError):
    def __init__(self, message: str):
        super().__init__(message, WRONG_TYPE)


def _text_value(value):
    """What ``{{ expression }}`` prints: "" for null; a list, mapping or bytes is refused, since
    its Python repr (``['a', 'b']``, ``b'...'``) in a training example is garbage, not text.
    ``{{ tags | join(", ") }}`` or ``{{ meta | tojson }}`` say how to print one."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict, set, bytes, bytearray)):
        preview = repr(value)
        preview = preview if len(preview) <= 80 else preview[:77] + "..."
        raise WrongType(f"a {type(value).__name__} where text is expected: {preview} "
                        "(print it with a filter, e.g. | join(', ') or | tojson)")
    return value


def build_environment(limits: LimitsSpec = LimitsSpec()) -> BoundedEnvironment:
    """The environment every recipe template compiles and renders in (see transforms/sandbox.py)."""
    return BoundedEnvironment(
        budget=RenderBudget(limits),
        undefined=jinja2.StrictUndefined,
        finalize=_text_value,
        keep_trailing_newline=True,
        autoescape=False,
        # No loader: {% include %}, {% import %} and {% extends %} cannot reach any file.
        loader=None,
    )


def template_sources(spec: TemplateSpec) -> list[tuple[str, str]]:
    """``(recipe key, source)`` of every template string of ``spec``."""
    named = [("template.system", spec.system), ("template.prompt", spec.prompt),
             ("template.completion", spec.completion), ("template.tools", spec.tools),
             ("template.preferred", spec.preferred), ("template.non_preferred", spec.non_preferred)]
    for index, message in enumerate(spec.messages or ()):
        named += [(f"template.messages[{index}].{key}", getattr(message, key))
                  for key in ("content", "name", "tool_calls", "tool_call_id", "thinking")]
    return [(name, source) for name, source in named if source is not None]


def unsafe_constructs(ast: jinja2.nodes.Template) -> list[str]:
    """What in a parsed template reaches beyond the row's values: private or dunder attributes
    (``__class__``, ``__globals__``, ``__subclasses__``, also via ``|attr`` or ``["..."]``) and
    other templates (``import``, ``include``, ``extends``). The sandbox would refuse most of these
    when a row is rendered; refusing them when the recipe is loaded names the template instead."""
    found = []
    for node in ast.find_all((jinja2.nodes.Import, jinja2.nodes.FromImport, jinja2.nodes.Include, jinja2.nodes.Extends)):
        found.append(f"{{% {type(node).__name__.lower()} %}} (templates cannot load other templates or files)")
    for node in ast.find_all(jinja2.nodes.Getattr):
        if node.attr.startswith("_"):
            found.append(f"attribute {node.attr!r}")
    for node in ast.find_all(jinja2.nodes.Getitem):
        if isinstance(node.arg, jinja2.nodes.Const) and isinstance(node.arg.value, str) and node.arg.value.startswith("_"):
            found.append(f"item {node.arg.value!r}")
    for node in ast.find_all(jinja2.nodes.Filter):
        if node.name == "attr" and any(isinstance(a, jinja2.nodes.Const) and str(a.value).startswith("_") for a in node.args):
            found.append(f"|attr({node.args[0].value!r})")
    return found


def referenced_columns(spec: TemplateSpec) -> set[str]:
    """Columns the template reads: its free variables plus ``messages_column``.

    Raises ``TemplateError`` (its message starts with ``template_error`` and names the recipe
    key) when a template does not parse or reaches beyond the row's values.
    """
    env = build_environment()
    columns: set[str] = set()
    for name, source in template_sources(spec):
        try:
            ast = env.parse(source)
        except jinja2.TemplateSyntaxError as error:
            raise TemplateError(f"{TEMPLATE_ERROR}: {name} does not parse: {error.message} (line {error.lineno})") from error
        except RecursionError:
            raise TemplateError(f"{TEMPLATE_ERROR}: {name} is nested too deeply to parse") from None
        unsafe = unsafe_constructs(ast)
        if unsafe:
            raise TemplateError(f"{TEMPLATE_ERROR}: {name} is refused: it uses {', '.join(unsafe)}; "
                                "templates may only read the row's columns")
        columns |= meta.find_undeclared_variables(ast)
    columns -= set(env.globals)
    if spec.messages_column:
        columns.add(spec.messages_column)
    return columns


def _parse_json(rendered: str, what: str) -> Any:
    try:
        return orjson.loads(rendered)
    except orjson.JSONDecodeError as error:
        raise TemplateError(f"{what} rendered to {rendered[:80]!r}, which is not JSON: {error}") from error


# Between the parts of the one template that renders every string of an example at once. Its
# ends are no whitespace: "{{-" and "-}}" strip whitespace next to them, and Python counts the
# control characters \x1c-\x1f as whitespace — a separator of those lost its end to "{{-".
_SEPARATOR = "\ue000ftprep-part\ue001"


class ExampleTemplate:
    """A compiled template; ``render(fields)`` returns the example or raises ``TemplateError``.

    Every string of the example (system, each message's content, name, tool calls, ...) is one
    part of a single Jinja template, rendered once per row: a render call costs more than the
    text it produces. A row whose values contain the separator is rendered part by part.
    When every part only substitutes columns (``transforms/compiled_template.py``), rows whose
    values are text render without Jinja, to the same text.
    """

    def __init__(self, spec: TemplateSpec, *, limits: LimitsSpec = LimitsSpec()):
        self._spec = spec
        self._max_chars = limits.max_example_chars
        self._env = env = build_environment(limits)
        parts = {"system": spec.system, "prompt": spec.prompt, "completion": spec.completion, "tools": spec.tools,
                 "preferred": spec.preferred, "non_preferred": spec.non_preferred}
        for index, m in enumerate(spec.messages or ()):
            parts.update({f"{index}.content": m.content, f"{index}.name": m.name,
                          f"{index}.tool_calls": m.tool_calls, f"{index}.tool_call_id": m.tool_call_id,
                          f"{index}.thinking": m.thinking})
        self._names = [name for name, source in parts.items() if source is not None]
        sources = [parts[name] for name in self._names]
        self._parts = [env.from_string(source) for source in sources]
        # The columns each text part prints: a part that renders empty because one of them is
        # null is reported as null_field, naming the column.
        self._part_columns = {name: sorted(meta.find_undeclared_variables(env.parse(source)))
                              for name, source in zip(self._names, sources) if not name.endswith(("tools", "tool_calls", "thinking"))}
        try:
            self._whole = env.from_string(_SEPARATOR.join(sources)) if len(sources) > 1 else None
        except jinja2.TemplateSyntaxError:  # parts that parse alone but not joined: render them apart
            self._whole = None
        compiled = [compile_simple(env.parse(source)) for source in sources]
        self._compiled = list(zip(self._names, compiled)) if all(compiled) else None

    def _render_compiled(self, fields: dict[str, Any]) -> dict[str, str] | None:
        """The parts without Jinja, or None where the sandbox must render them: a value that is
        not text, or an example over the size limit (the sandbox words that rejection)."""
        try:
            parts = {name: render(fields) for name, render in self._compiled}
        except NotSimple:
            return None
        return parts if sum(map(len, parts.values())) <= self._max_chars else None

    def _bounded(self, template: jinja2.Template, fields: dict[str, Any], separators: int = 0) -> str:
        """Render, stopping once the output passes max_chars: a loop in a template can multiply a
        large value many times over, and the example must not take the worker's memory with it."""
        chunks, size, limit = [], 0, self._max_chars + separators * len(_SEPARATOR)
        for chunk in template.generate(fields):
            size += len(chunk)
            if size > limit:
                raise TemplateError(f"the example renders to more than {self._max_chars:,} characters "
                                    "(limits.max_example_chars)", EXAMPLE_TOO_LARGE)
            chunks.append(chunk)
        return "".join(chunks)

    def _render_parts(self, fields: dict[str, Any]) -> dict[str, str]:
        rendered = None
        if self._whole is not None:
            rendered = self._bounded(self._whole, fields, separators=len(self._names) - 1).split(_SEPARATOR)
        if rendered is None or len(rendered) != len(self._names):  # no joined template, or separator in the data
            rendered = [self._bounded(part, fields) for part in self._parts]
        return dict(zip(self._names, rendered))

    def _check_nulls(self, fields: dict[str, Any], parts: dict[str, str]) -> None:
        for name, text in parts.items():
            if not text.strip():
                nulls = [column for column in self._part_columns.get(name, ()) if fields.get(column) is None]
                if nulls:
                    index, _, key = name.partition(".")
                    where = f"messages[{index}].{key}" if index.isdigit() else name
                    raise TemplateError(f"{where} renders empty: column(s) {', '.join(nulls)} null in this row", NULL_FIELD)

    def _conversation(self, fields: dict[str, Any], parts: dict[str, str]) -> list[dict[str, Any]]:
        messages = []
        if "system" in parts:
            messages.append({"role": "system", "content": parts["system"]})
        if self._spec.messages_column is not None:
            messages.extend(conversation_from_cell(fields.get(self._spec.messages_column), self._spec.messages_column))
        for index, spec in enumerate(self._spec.messages or ()):
            message: dict[str, Any] = {"role": spec.role}
            content = parts.get(f"{index}.content")
            if f"{index}.tool_calls" in parts:
                message["tool_calls"] = _parse_json(parts[f"{index}.tool_calls"], f"messages[{index}].tool_calls")
                content = content or None  # an assistant that only calls tools has null content
            message["content"] = content
            if f"{index}.name" in parts:
                message["name"] = parts[f"{index}.name"]
            if f"{index}.tool_call_id" in parts:
                message["tool_call_id"] = parts[f"{index}.tool_call_id"]
            if parts.get(f"{index}.thinking"):
                message["thinking"] = parts[f"{index}.thinking"]
            if spec.weight is not None:
                message["weight"] = spec.weight
            messages.append(message)
        return messages

    def render(self, fields: dict[str, Any]) -> dict[str, Any]:
        parts = self._render_compiled(fields) if self._compiled is not None else None
        if parts is None:
            parts = self._render_sandboxed(fields)
        self._check_nulls(fields, parts)
        return self._example(fields, parts)

    def _render_sandboxed(self, fields: dict[str, Any]) -> dict[str, str]:
        budget = self._env.budget
        budget.start()  # reads the thread's CPU clock: only for renders Jinja runs
        try:
            return self._render_parts(fields)
        except TemplateError:
            raise
        except BudgetExceeded as error:
            raise TemplateError(str(error), error.code) from None
        except Exception as error:  # noqa: BLE001 - whatever the user's template raises (SecurityError,
            # a filter's TypeError, the sandbox's OverflowError for a huge range) is this row's template error
            raise TemplateError(f"{type(error).__name__}: {error}") from error
        finally:
            budget.stop()

    def _example(self, fields: dict[str, Any], parts: dict[str, str]) -> dict[str, Any]:
        if self._spec.format == "completion":
            return {"prompt": parts["prompt"], "completion": parts["completion"]}
        body: dict[str, Any] = {"messages": self._conversation(fields, parts)}
        if "tools" in parts:
            body["tools"] = _parse_json(parts["tools"], "tools")
        if self._spec.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = self._spec.parallel_tool_calls
        if self._spec.format == "chat":
            return body
        return {
            "input": body,
            "preferred_output": [{"role": "assistant", "content": parts["preferred"]}],
            "non_preferred_output": [{"role": "assistant", "content": parts["non_preferred"]}],
        }


def conversation_from_cell(cell: Any, column: str) -> list[dict[str, Any]]:
    """A conversation held in one cell: a JSON string or a list of ``{role, content}`` mappings."""
    if isinstance(cell, (str, bytes)):
        try:
            cell = orjson.loads(cell)
        except orjson.JSONDecodeError as error:
            raise TemplateError(f"column {column!r} does not hold JSON: {error}") from error
    if not isinstance(cell, list):
        raise TemplateError(f"column {column!r} holds {type(cell).__name__}, expected a list of messages")
    messages = []
    for index, message in enumerate(cell):
        if not isinstance(message, dict):
            raise TemplateError(f"column {column!r} message {index} is {type(message).__name__}, not an object")
        # Arrow structs give every field of the struct type; absent ones come back as None.
        messages.append({k: v for k, v in message.items() if v is not None or k == "content"})
    return messages


class _RenderFn(BatchDoFn):
    STAGE = "RenderTemplate"

    def __init__(self, spec: TemplateSpec, limits: LimitsSpec):
        super().__init__()
        self._spec = spec
        self._limits = limits
        self._template: ExampleTemplate | None = None

    def setup(self):
        self._template = ExampleTemplate(self._spec, limits=self._limits)

    def handle(self, item: Item, emit) -> None:
        try:
            example = self._template.render(item.fields if item.fields is not None else item.row)
        except TemplateError as error:
            emit(REJECTED, self.reject(item, Rejection(error.code, str(error))))
            return
        item.example = example
        emit(KEPT, item)


class RenderExamples(BatchStage):
    """Render each record through the recipe's template; returns ``(batches, rejected)``."""

    def __init__(self, *, template: TemplateSpec, limits: LimitsSpec = LimitsSpec()):
        referenced_columns(template)  # a template that does not parse fails here, not on a worker
        super().__init__(_RenderFn(template, limits))


class _AsIsFn(BatchDoFn):
    STAGE = "TakeExamples"

    def __init__(self, fmt: str):
        super().__init__()
        self._format = fmt

    def handle(self, item: Item, emit) -> None:
        example = normalize_preference(item.row) if self._format == PREFERENCE else item.row
        item.example = example
        emit(KEPT, item)


class TakeExamples(BatchStage):
    """Rows that already are examples (``ftprep validate``): legacy preference keys get their current names."""

    def __init__(self, *, format: str):
        if format not in FORMATS:
            raise ValueError(f"unknown example format {format!r}; known: {', '.join(FORMATS)}")
        super().__init__(_AsIsFn(format))
