"""What a target is: everything the pipeline asks of the recipe's ``target``, answered in one place.

A ``Target`` (one subclass per kind, one module each, listed in ``registry.py``) is built from a
recipe before the run and travels to the workers. It answers: the model's spec and per-example
limit (``model``), where tokens are counted from (``token_source``: ``check()`` at launch,
``load()`` on a worker), the row written for an example (``to_row``, once per example; the
checked row is the written row, a ``TargetRuleError`` rejects it with the provider's rule as its
code), its output traits (formats, dataset card, job request, billing or packing in the summary)
and its description in ``stats.json``. Nothing outside the target modules looks at the kind.

The hosted providers beside OpenAI declare what their pages publish as a ``Provider``: the pages
their rules come from, the example formats they take, the model table (with the page each limit
is from), dataset limits, how tokens are counted (exactly, with a published tokenizer, or by a
documented estimate). A rule the pages do not publish is not guessed: ``unpublished`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

from schemas.layout import PROVENANCE_DIR
from schemas.models import ModelSpec


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
class Provider:
    """What a hosted provider's pages publish (see the module docstring)."""

    title: str
    sources: Mapping[str, str]  # what -> page
    formats: tuple[str, ...]  # example formats the provider takes
    models: Mapping[str, HostedModel]
    limits: DatasetLimits
    counting: Counting
    schema_file: str  # JSON Schema of a row, in schemas/targets/, written from the pages above
    # Can a model outside the table be used (with target.max_length)? Providers that tune any
    # model of a supported architecture (Together, Fireworks) say yes.
    open_model_list: bool = False
    unpublished: tuple[str, ...] = field(default_factory=tuple)


class TargetError(ValueError):
    """The recipe asks the target for what it does not take (a format, a model, a setting)."""


class Target:
    """The recipe's target, resolved: built by ``registry.target_for(recipe)`` before the run.

    Subclasses set ``kind`` and the traits below and implement ``resolve_model`` and
    ``token_source``; a target whose rows differ from ftprep's (OpenAI-shaped) example overrides
    ``to_row`` and sets ``converts``."""

    kind: ClassVar[str]
    title: ClassVar[str]
    example_formats: ClassVar[tuple[str, ...]] = ("chat", "completion", "preference")
    output_formats: ClassVar[tuple[str, ...]] = ("jsonl",)
    # The rows written are not the example as ftprep validated it: to_row runs on every example
    # (the CheckTarget step), and its row is what is counted (where the source reads rows) and written.
    converts: ClassVar[bool] = False
    # Assistant messages may carry their reasoning (template thinking); per-message weights are
    # warned of (weight_not_applied): the open-weights trainers have none.
    open_weights: ClassVar[bool] = False
    # The dataset card README.md, and the rows' type noted for it (and for Parquet).
    dataset_card: ClassVar[bool] = False
    # OpenAI's billing estimate and per-role token accounting in the summary and the report.
    openai_billing: ClassVar[bool] = False
    provenance_dir: ClassVar[str] = PROVENANCE_DIR

    def __init__(self, recipe):
        self.spec = recipe.target
        self.encodings_url = recipe.tokens.encodings_url
        if recipe.output.format not in self.output_formats:
            raise TargetError(f"output.format: {self.describe_kind()} takes {' or '.join(self.output_formats).upper()}"
                              + self._output_hint())
        if not self.open_weights and recipe.template is not None and any(
                m.thinking is not None for m in recipe.template.messages or ()):
            raise TargetError(f"template: thinking has no place in {self.describe_kind()}'s format; "
                              "it is for target hf or gpt-oss")
        self.tokens = recipe.output.tokens
        if self.tokens is not None and not self.writes_tokens():
            raise TargetError(f"output.tokens: {self.describe_kind()} does not write tokenized rows "
                              "(targets hf and gpt-oss with its chat template do)")
        if recipe.example_format is not None:
            self.check_format(recipe.example_format)
        self.model: ModelSpec = self.resolve_model(recipe)

    def describe_kind(self) -> str:
        return f"target {self.kind}"

    def _output_hint(self) -> str:
        return ""

    def writes_tokens(self) -> bool:
        """Can it write what the trainer trains on (output.tokens) instead of messages?"""
        return False

    def check_format(self, example_format: str) -> None:
        """The example format (the recipe's, or the one detected from the data) is one it takes."""
        if example_format not in self.example_formats:
            raise TargetError(f"{self.describe_kind()} takes {', '.join(self.example_formats)} examples, not {example_format}")
        if self.tokens is not None and example_format == "preference":
            raise TargetError("output.tokens: preference pairs are not written tokenized yet; leave output.tokens "
                              "out for TRL's preference rows")

    def resolve_model(self, recipe) -> ModelSpec:
        raise NotImplementedError

    def token_source(self):
        """Where the workers' counters come from (not yet checked: the caller calls ``check()``)."""
        raise NotImplementedError

    @property
    def packing(self) -> bool:
        """Estimate how the train split packs into max_length sequences (stats.json packing)."""
        return False

    @property
    def packs_rows(self) -> bool:
        """Write each split's tokenized rows packed into max_length sequences (``seq_lengths``)."""
        return False

    def to_row(self, example: dict[str, Any], fmt: str) -> dict[str, Any]:
        """The row the target's files hold for ``example``; TargetRuleError for what it cannot hold."""
        return example

    def job_request(self, *, finetune, example_format: str, train_files: Sequence[str],
                    validation_files: Sequence[str], n_epochs: int) -> dict[str, Any] | None:
        """The body of the call that starts the target's fine-tuning job (finetune_job.json), or
        None where training happens elsewhere. ``n_epochs``: the stats' estimate."""
        return None

    def describe(self, source) -> dict[str, Any]:
        """What stats.json says of the target beyond its kind and tokenizer."""
        return {}


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
