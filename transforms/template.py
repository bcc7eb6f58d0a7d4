"""Rendering a cleaned row into a fine-tuning example through Jinja2 templates.

Templates come from recipes and DAG parameters, so they run in Jinja's
``SandboxedEnvironment``; ``StrictUndefined`` turns a misspelt column into an error
instead of an empty string.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import apache_beam as beam
import jinja2
import orjson
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from schemas.formats import FORMATS, PREFERENCE, normalize_preference
from schemas.recipe import TemplateSpec
from schemas.records import TEMPLATE_ERROR, Item, Rejection
from transforms.stage import RecordStage, StageCounters, reject


class TemplateError(ValueError):
    pass


def _none_as_empty(value):
    # A null cell renders as "" rather than "None"; validation then reports the empty content.
    return "" if value is None else value


def build_environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        finalize=_none_as_empty,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _template_sources(spec: TemplateSpec) -> list[str]:
    sources = [spec.system, spec.prompt, spec.completion, spec.tools, spec.preferred, spec.non_preferred]
    for message in spec.messages or ():
        sources.extend([message.content, message.name, message.tool_calls, message.tool_call_id])
    return [s for s in sources if s is not None]


def referenced_columns(spec: TemplateSpec) -> set[str]:
    """Columns the template reads: its free variables plus ``messages_column``.

    Raises ``TemplateError`` when a template does not parse.
    """
    env = build_environment()
    columns: set[str] = set()
    for source in _template_sources(spec):
        try:
            columns |= meta.find_undeclared_variables(env.parse(source))
        except jinja2.TemplateSyntaxError as error:
            raise TemplateError(f"template {source!r} does not parse: {error.message} (line {error.lineno})") from error
    columns -= set(env.globals)
    if spec.messages_column:
        columns.add(spec.messages_column)
    return columns


def _render_json(template: jinja2.Template, fields: dict[str, Any], what: str) -> Any:
    rendered = template.render(fields)
    try:
        return orjson.loads(rendered)
    except orjson.JSONDecodeError as error:
        raise TemplateError(f"{what} rendered to {rendered[:80]!r}, which is not JSON: {error}") from error


class ExampleTemplate:
    """A compiled template; ``render(fields)`` returns the example or raises ``TemplateError``."""

    def __init__(self, spec: TemplateSpec):
        self._spec = spec
        env = build_environment()

        def compile_(source: str | None):
            return None if source is None else env.from_string(source)

        self._system = compile_(spec.system)
        self._prompt = compile_(spec.prompt)
        self._completion = compile_(spec.completion)
        self._tools = compile_(spec.tools)
        self._preferred = compile_(spec.preferred)
        self._non_preferred = compile_(spec.non_preferred)
        self._messages = [
            (m, compile_(m.content), compile_(m.name), compile_(m.tool_calls), compile_(m.tool_call_id))
            for m in spec.messages or ()
        ]

    def _conversation(self, fields: dict[str, Any]) -> list[dict[str, Any]]:
        messages = []
        if self._system is not None:
            messages.append({"role": "system", "content": self._system.render(fields)})
        if self._spec.messages_column is not None:
            messages.extend(conversation_from_cell(fields.get(self._spec.messages_column), self._spec.messages_column))
        for index, (spec, content, name, tool_calls, tool_call_id) in enumerate(self._messages):
            message: dict[str, Any] = {"role": spec.role}
            rendered = None if content is None else content.render(fields)
            if tool_calls is not None:
                message["tool_calls"] = _render_json(tool_calls, fields, f"messages[{index}].tool_calls")
                rendered = rendered or None  # an assistant that only calls tools has null content
            message["content"] = rendered
            if name is not None:
                message["name"] = name.render(fields)
            if tool_call_id is not None:
                message["tool_call_id"] = tool_call_id.render(fields)
            if spec.weight is not None:
                message["weight"] = spec.weight
            messages.append(message)
        return messages

    def _with_tools(self, body: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        if self._tools is not None:
            body["tools"] = _render_json(self._tools, fields, "tools")
        if self._spec.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = self._spec.parallel_tool_calls
        return body

    def render(self, fields: dict[str, Any]) -> dict[str, Any]:
        try:
            if self._spec.format == "completion":
                return {"prompt": self._prompt.render(fields), "completion": self._completion.render(fields)}
            body = self._with_tools({"messages": self._conversation(fields)}, fields)
            if self._spec.format == "chat":
                return body
            return {
                "input": body,
                "preferred_output": [{"role": "assistant", "content": self._preferred.render(fields)}],
                "non_preferred_output": [{"role": "assistant", "content": self._non_preferred.render(fields)}],
            }
        except jinja2.TemplateError as error:
            raise TemplateError(f"{type(error).__name__}: {error}") from error


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


class _RenderFn(beam.DoFn):
    def __init__(self, spec: TemplateSpec):
        self._spec = spec
        self._template: ExampleTemplate | None = None
        self._counters = StageCounters("RenderTemplate")

    def setup(self):
        self._template = ExampleTemplate(self._spec)

    def process(self, item: Item):
        self._counters.total.inc()
        try:
            example = self._template.render(item.fields if item.fields is not None else item.row)
        except TemplateError as error:
            yield reject(item, self._counters, Rejection(TEMPLATE_ERROR, str(error)))
            return
        self._counters.kept.inc()
        yield dataclasses.replace(item, example=example)


class RenderExamples(RecordStage):
    """Render each record through the recipe's template; returns ``(items, rejected)``."""

    def __init__(self, *, template: TemplateSpec):
        referenced_columns(template)  # a template that does not parse fails here, not on a worker
        super().__init__(_RenderFn(template))


class _AsIsFn(beam.DoFn):
    def __init__(self, fmt: str):
        self._format = fmt
        self._counters = StageCounters("TakeExamples")

    def process(self, item: Item):
        self._counters.total.inc()
        example = normalize_preference(item.row) if self._format == PREFERENCE else item.row
        self._counters.kept.inc()
        yield dataclasses.replace(item, example=example)


class TakeExamples(RecordStage):
    """Rows that already are examples (``ftprep validate``): legacy preference keys get their current names."""

    def __init__(self, *, format: str):
        if format not in FORMATS:
            raise ValueError(f"unknown example format {format!r}; known: {', '.join(FORMATS)}")
        super().__init__(_AsIsFn(format))
