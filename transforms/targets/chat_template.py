"""Hugging Face chat templates, rendered as ``transformers``' ``apply_chat_template`` renders them.

An open-weights model's tokens, limit and loss mask come from its chat template (Jinja, in
``tokenizer_config.json`` or ``chat_template.jinja``) and its tokenizer, not from OpenAI's
accounting. This module renders a conversation through the template with the semantics
``transformers`` gives it — ``trim_blocks``/``lstrip_blocks``, loop controls, its ``tojson``,
``raise_exception`` and ``strftime_now``, the tokenizer's special tokens as variables,
``add_generation_prompt`` false — and reports the character spans the loss trains on: the
template's ``{% generation %}`` blocks where it has them, else each assistant message's span
(what follows the generation prompt up to the next message). Templates come from the hub and
are untrusted: they render in ftprep's bounded sandbox (``transforms/sandbox.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension

from schemas.recipe import LimitsSpec
from transforms.sandbox import BoundedEnvironment, RenderBudget, bounded_filter
from transforms.tokens import NotCountable


class ChatTemplateError(NotCountable):
    """The chat template cannot be used, or failed on an example; the message says why."""


@dataclass(frozen=True)
class ChatTemplate:
    """A template's source and the special tokens it sees as variables (``bos_token``, ...)."""

    source: str
    special_tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_tokenizer_config(cls, config: dict[str, Any], template: str | None = None) -> "ChatTemplate":
        """From ``tokenizer_config.json`` (its ``chat_template``, or ``template`` when the model
        ships ``chat_template.jinja``); a config with several named templates uses ``default``."""
        source = template if template is not None else config.get("chat_template")
        if isinstance(source, list):  # [{"name": ..., "template": ...}, ...]
            named = {entry.get("name"): entry.get("template") for entry in source if isinstance(entry, dict)}
            source = named.get("default")
        if not isinstance(source, str) or not source.strip():
            raise ChatTemplateError("the tokenizer has no chat template (tokenizer_config.json chat_template, "
                                    "or chat_template.jinja beside it)")
        return cls(source, special_tokens(config))


def special_tokens(config: dict[str, Any]) -> dict[str, str]:
    """``bos_token``, ``eos_token``, ... of a ``tokenizer_config.json``, as the template sees them."""
    tokens = {}
    for name, value in config.items():
        if not name.endswith("_token"):
            continue
        text = value.get("content") if isinstance(value, dict) else value
        if isinstance(text, str):
            tokens[name] = text
    return tokens


class _Generation(Extension):
    """``{% generation %}...{% endgeneration %}``: records where the block's text lands in the
    rendered output (the renderer collects the output as it is generated)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_mark"), [], [], body).set_lineno(lineno)

    def _mark(self, caller) -> str:
        text = caller()
        state = getattr(self.environment, "generation_state", None)
        if state is not None:
            blocks, spans = state
            start = sum(map(len, blocks))
            spans.append((start, start + len(text)))
        return text


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    # Not Jinja's own tojson, which escapes HTML characters: templates expect plain JSON.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


# Names a message's reasoning goes by; a template reads one of them (Qwen3 and DeepSeek
# reasoning_content, gpt-oss thinking). transformers 5 fills both from whichever is given before
# it renders (``_alias_reasoning_fields`` in transformers/utils/chat_template_utils.py).
REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def alias_reasoning_fields(messages: Sequence[dict]) -> list[dict]:
    """Each message with its reasoning under ``thinking`` and ``reasoning_content`` alike, as
    transformers renders it: ``thinking`` first unless the message has it, ``reasoning_content`` last."""
    aliased = []
    for message in messages:
        if isinstance(message, dict):
            reasoning = next((message[key] for key in REASONING_FIELDS if message.get(key) is not None), None)
            if reasoning is not None:
                message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        aliased.append(message)
    return aliased


@dataclass(frozen=True)
class Rendered:
    text: str
    # Character spans [start, end) of ``text`` the loss trains on.
    trained: tuple[tuple[int, int], ...]
    # True when the spans are the template's own {% generation %} blocks.
    marked: bool
    # Assistant turns with content whose trained span was not found: they count no trained tokens.
    missed: int = 0


class ChatTemplateRenderer:
    """Compiles a ``ChatTemplate`` once; ``render(messages, tools=...)`` per example."""

    def __init__(self, template: ChatTemplate, *, limits: LimitsSpec = LimitsSpec(),
                 variables: Sequence[tuple[str, Any]] = ()):
        env = BoundedEnvironment(
            budget=RenderBudget(limits), trim_blocks=True, lstrip_blocks=True,
            extensions=[_Generation, "jinja2.ext.loopcontrols"],
        )
        # transformers' tojson, behind the same budget as every other filter (its indent is a size).
        env.filters["tojson"] = bounded_filter("tojson", _tojson)
        env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
        env.generation_state = None
        self._env = env
        # The special tokens, and what the trainer passes the template (chat_template_kwargs).
        self._special = {**dict(template.special_tokens), **dict(variables)}
        try:
            self._template = env.from_string(template.source)
        except jinja2.TemplateSyntaxError as error:
            raise ChatTemplateError(f"the chat template does not parse: {error.message} (line {error.lineno})") from None
        self.has_generation_blocks = any(
            isinstance(block.call.node, nodes.ExtensionAttribute) and block.call.node.name == "_mark"
            for block in env.parse(template.source).find_all(nodes.CallBlock))

    def _text(self, messages: Sequence[dict], tools: Sequence[dict] | None, add_generation_prompt: bool,
              spans: list | None = None) -> str:
        blocks: list[str] = []
        context = {**self._special, "messages": list(messages), "tools": list(tools) if tools else None,
                   "add_generation_prompt": add_generation_prompt}
        budget = self._env.budget
        self._env.generation_state = (blocks, spans) if spans is not None else None
        budget.again()  # the example's clock runs on (render() started it); its sizes start over
        try:
            for block in self._template.generate(**context):
                blocks.append(block)
        except Exception as error:  # noqa: BLE001 - whatever the template raises is this example's error
            raise ChatTemplateError(f"the chat template failed: {type(error).__name__}: {error}") from error
        finally:
            budget.stop()
            self._env.generation_state = None
        return "".join(blocks)

    def render(self, messages: Sequence[dict], *, tools: Sequence[dict] | None = None) -> Rendered:
        """The example's text and trained spans. All the renders it takes share one CPU budget."""
        self._env.budget.start()
        messages = alias_reasoning_fields(messages)
        spoken = sum(1 for m in messages if m.get("role") == "assistant" and (m.get("content") or m.get("tool_calls")))
        if self.has_generation_blocks:
            spans: list[tuple[int, int]] = []
            text = self._text(messages, tools, False, spans)
            return Rendered(text, tuple(spans), True, spoken if not any(end > start for start, end in spans) else 0)
        text = self._text(messages, tools, False)
        spans, missed = self._assistant_spans(messages, tools, text)
        return Rendered(text, spans, False, missed)

    def _assistant_spans(self, messages: Sequence[dict], tools, text: str) -> tuple[tuple[tuple[int, int], ...], int]:
        """Without generation blocks: each assistant turn's span in the one rendering the trainer
        trains on, from the end of its header (the generation prompt) to the end of the turn.
        Where the conversation up to the turn renders as a prefix of the whole, the span is what
        the turn adds after the generation prompt. A template that rewrites earlier turns (Qwen3
        drops the think block of turns before the last question) renders a turn otherwise when it
        is last than in the whole: that turn is found in the whole by its header, its content and
        what follows its content when last (the end-of-turn marker). A turn found neither way is
        counted as missed (the caller warns); the later turns are still looked for."""
        spans, missed, cursor = [], 0, 0
        for index, message in enumerate(messages):
            if message.get("role") != "assistant":
                continue
            prompt = self._text(messages[:index], tools, True)
            through = self._text(messages[: index + 1], tools, False)
            if text.startswith(through) and through.startswith(prompt):
                if len(through) > len(prompt):
                    spans.append((len(prompt), len(through)))
                cursor = len(through)
                continue
            span = self._rewritten_turn(messages, index, tools, text, cursor, prompt, through)
            if span is not None:
                spans.append(span)
                cursor = span[1]
            elif message.get("content") or message.get("tool_calls"):
                missed += 1
        return tuple(spans), missed

    def _rewritten_turn(self, messages: Sequence[dict], index: int, tools, text: str, cursor: int, prompt: str,
                        through: str) -> tuple[int, int] | None:
        """The span of turn ``index`` in ``text``, a rendering that rewrote it, or None."""
        content = messages[index].get("content")
        before = self._text(messages[:index], tools, False)
        if not (isinstance(content, str) and content.strip() and prompt.startswith(before) and through.startswith(prompt)):
            return None
        content = content.strip()
        header, turn = prompt[len(before):], through[len(prompt):]
        at = turn.rfind(content)
        start = text.find(header, cursor) if header else -1
        if at < 0 or start < 0:
            return None
        tail = turn[at + len(content):]
        begin = start + len(header)
        found = text.find(content, begin)
        # The content must follow this header, before any other turn's header, and end as the turn ends.
        if found < 0 or text.find(header, begin, found) >= 0 or not text.startswith(tail, found + len(content)):
            return None
        return begin, found + len(content) + len(tail)


def trl_training_template(source: str) -> tuple[str, str] | None:
    """TRL's training version of the chat template ``source`` — ``(its name, its text)`` — when an
    installed ``trl`` ships one, else None. TRL's SFTTrainer, asked for ``assistant_only_loss``,
    recognises a model's template by comparing it with the originals in ``trl/chat_templates/``
    and renders with ``<name>_training.jinja`` instead, whose ``{% generation %}`` blocks make its
    masks (``get_training_chat_template``; the folder's README says why). ``trl`` is found, not
    imported: it installs with ``--no-deps`` and its package imports torch."""
    import importlib.util
    from pathlib import Path

    try:
        spec = importlib.util.find_spec("trl")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "chat_templates"
    if not folder.is_dir():
        return None
    for original in sorted(folder.glob("*.jinja")):
        training = original.with_name(f"{original.stem}_training.jinja")
        if original.stem.endswith("_training") or not training.is_file():
            continue
        if original.read_text(encoding="utf-8") == source:
            return training.name, training.read_text(encoding="utf-8")
    return None


def trained_mask(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[int]:
    """1 for each token (by its character offsets) that overlaps a trained span, else 0:
    a token cut by a span's edge is trained, as ``transformers`` masks it."""
    mask, span = [0] * len(offsets), 0
    for index, (start, end) in enumerate(offsets):
        while span < len(spans) and start >= spans[span][1]:
            span += 1
        if span == len(spans):
            break
        if end > spans[span][0]:
            mask[index] = 1
    return mask
