"""What a hosted fine-tuning provider takes, declared once per provider (``schemas/targets/<kind>.py``).

Each provider module declares a ``HostedTarget``: the pages its rules come from, the example
formats it accepts, its model table (with the page each limit is from), its dataset limits,
how its tokens are counted (exactly, with a published tokenizer, or by a documented estimate)
and two plain functions — ``to_row`` (ftprep's example, OpenAI-shaped, into the provider's row,
raising ``TargetRuleError`` with the provider's rule as its code for what the row cannot
express) and ``job_request`` (the body of the call that starts the provider's job). A rule the
pages do not publish is not guessed: the module says so in ``unpublished``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence


class TargetRuleError(ValueError):
    """The example breaks one of the provider's rules (``code``), or has what it cannot express."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class HostedModel:
    name: str
    max_tokens_per_example: int
    source: str  # the page the limit is from
    encoding: str | None = None  # tiktoken encoding, where the provider's counting is OpenAI's


@dataclass(frozen=True)
class DatasetLimits:
    """Per-file limits, checked on the run's counts (stats.json target.checks). None: not published."""

    min_train_examples: int | None = None
    max_train_examples: int | None = None
    max_validation_examples: int | None = None
    source: str = ""


@dataclass(frozen=True)
class Counting:
    """``exact``: tiktoken by OpenAI's method (``tiktoken``) or the model's tokenizer given as
    ``target.tokenizer``; otherwise ``chars_per_token`` characters per token, an estimate
    (every example counts in stats.json tokens.estimated_examples)."""

    method: str  # "tiktoken" | "estimate"
    chars_per_token: float | None = None
    source: str = ""


@dataclass(frozen=True)
class HostedTarget:
    kind: str
    title: str
    sources: Mapping[str, str]  # what -> page
    formats: tuple[str, ...]  # example formats the provider takes
    models: Mapping[str, HostedModel]
    limits: DatasetLimits
    counting: Counting
    to_row: Callable[[dict[str, Any], str], dict[str, Any]]
    job_request: Callable[..., dict[str, Any]]
    schema_file: str  # JSON Schema of a row, in schemas/targets/, written from the pages above
    # Can a model outside the table be used (with target.max_length)? Providers that tune any
    # model of a supported architecture (Together, Fireworks) say yes.
    open_model_list: bool = False
    unpublished: tuple[str, ...] = field(default_factory=tuple)


def text_of(content: Any, where: str, code: str) -> str:
    """A message's content as text: a string, or a list of text parts joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(p.get("text", "") for p in content)
    raise TargetRuleError(code, f"{where}: content other than text (an image or another part) is not expressible here")


def reject_tools(example: dict[str, Any], code: str, name: str) -> None:
    """Tool definitions, tool calls and tool answers: not in the provider's documented format."""
    if example.get("tools") or example.get("functions"):
        raise TargetRuleError(code, f"{name}'s fine-tuning format as documented has no tool definitions")
    for index, message in enumerate(example.get("messages") or ()):
        if message.get("tool_calls") or message.get("function_call") or message.get("role") in ("tool", "function"):
            raise TargetRuleError(code, f"messages[{index}]: {name}'s fine-tuning format as documented has no tool calls")


def weights_of(messages: Sequence[dict[str, Any]]) -> list[int]:
    return [m.get("weight", 1) for m in messages if m.get("role") == "assistant"]


def flat_job_body(names: Mapping[str, str], *, placeholder: str, model: str, train_files: Sequence[str],
                  validation_files: Sequence[str], n_epochs: int | None, suffix: str | None) -> dict[str, Any]:
    """A job request whose fields sit at the top level, under the provider's ``names`` for model,
    train, validation, epochs and suffix; files as ``<placeholder of train/part-…>``."""
    body: dict[str, Any] = {names["model"]: model, names["train"]: f"<{placeholder} of {' + '.join(train_files)}>"}
    if validation_files:
        body[names["validation"]] = f"<{placeholder} of {' + '.join(validation_files)}>"
    if n_epochs is not None:
        body[names["epochs"]] = n_epochs
    if suffix:
        body[names["suffix"]] = suffix
    return body
