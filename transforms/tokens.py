"""Token counting with tiktoken, as the platform bills and limits examples (the encoding's
files are resolved offline by ``transforms/encodings.py``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from schemas.formats import truncated_row
from schemas.models import ENCODING_FILES, ModelSpec
from schemas.recipe import LimitsSpec, TokensSpec
from schemas.records import (
    CHAT_TEMPLATE_ERROR, KEPT, REJECTED, TOO_MANY_TOKENS, TRUNCATED_TO_LIMIT, UNTRAINED_ASSISTANT_TURNS, Item,
    Rejection, TokenCount,
)
from transforms.encodings import EncodingError, load_encoding, resolve_encoding_bytes
from transforms.stage import BatchDoFn, BatchStage

# OpenAI cookbook accounting for chat examples.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_PER_EXAMPLE = 3


@dataclass(frozen=True)
class ToolOverhead:
    """Tokens OpenAI adds when it renders function definitions into the prompt.

    From OpenAI's cookbook "How to count tokens with tiktoken" (section on tools): the
    constants it gives for gpt-4o/gpt-4o-mini (o200k) and gpt-3.5-turbo/gpt-4 (cl100k).
    """

    function_start: int
    properties_start: int
    property_key: int
    enum_start: int
    enum_item: int
    functions_end: int


TOOL_OVERHEAD = {
    "o200k_base": ToolOverhead(7, 3, 3, -3, 3, 12),
    "cl100k_base": ToolOverhead(10, 3, 3, -3, 3, 12),
}
# Estimates: OpenAI publishes no counting method for these.
# A tool call costs its function name and arguments plus a few tokens of framing.
TOKENS_PER_TOOL_CALL = 3
# Vision pricing: 85 tokens at detail "low"; at "high"/"auto" 85 + 170 per 512px tile, which
# depends on the image size we do not download; 765 is a 1024x1024 image.
IMAGE_TOKENS = {"low": 85, "high": 765, "auto": 765}


class TokenCounter:
    """Counts an example's tokens the way the platform bills them (see ``TokenCount``)."""

    def __init__(self, encoding, encoding_name: str):
        self._encode = encoding.encode_ordinary
        self._tools = TOOL_OVERHEAD.get(encoding_name, TOOL_OVERHEAD["o200k_base"])
        # Roles, a template's system prompt and other short repeated values: encoded once per worker.
        self._short: dict[str, int] = {}

    def text(self, text: str) -> int:
        if len(text) <= 64:
            cached = self._short.get(text)
            if cached is None and len(self._short) < 10_000:
                cached = self._short[text] = len(self._encode(text))
            if cached is not None:
                return cached
        return len(self._encode(text))

    def _call(self, call: dict) -> int:
        function = call.get("function", call)
        return TOKENS_PER_TOOL_CALL + sum(
            self.text(v) for v in (function.get("name"), function.get("arguments")) if isinstance(v, str)
        )

    def message(self, message: dict) -> tuple[int, bool]:
        """OpenAI's cookbook accounting: 3 per message, every string value, 1 more for a name."""
        tokens, estimated, _ = self._message(message)
        return tokens, estimated

    def _message(self, message: dict) -> tuple[int, bool, int]:
        """``message``'s tokens, whether estimated, and its string content's tokens alone (the
        cookbook's assistant count; counted in the same pass, not encoded twice)."""
        tokens, estimated, content = TOKENS_PER_MESSAGE, False, 0
        for key, value in message.items():
            if isinstance(value, str):
                n = self.text(value)
                tokens += n
                if key == "content":
                    content = n
                elif key == "name":
                    tokens += TOKENS_PER_NAME
            elif key == "content" and isinstance(value, list):
                for part in value:
                    if part.get("type") == "text":
                        tokens += self.text(part["text"])
                    else:
                        tokens += IMAGE_TOKENS.get(part["image_url"].get("detail", "auto"), IMAGE_TOKENS["auto"])
                        estimated = True
            elif key == "tool_calls":
                tokens += sum(self._call(call) for call in value)
                estimated = True
            elif key == "function_call":
                tokens += self._call(value)
                estimated = True
        return tokens, estimated, content

    def tool_definitions(self, functions: list[dict]) -> int:
        """Function definitions rendered into the prompt, by the cookbook's method (an estimate)."""
        if not functions:
            return 0
        o = self._tools
        tokens = 0
        for function in functions:
            tokens += o.function_start
            description = str(function.get("description", "")).removesuffix(".")
            tokens += self.text(f"{function.get('name', '')}:{description}")
            properties = (function.get("parameters") or {}).get("properties") or {}
            if properties:
                tokens += o.properties_start
                for key, spec in properties.items():
                    spec = spec if isinstance(spec, dict) else {}
                    tokens += o.property_key
                    if "enum" in spec:
                        tokens += o.enum_start
                        for item in spec["enum"]:
                            tokens += o.enum_item + self.text(str(item))
                    description = str(spec.get("description", "")).removesuffix(".")
                    tokens += self.text(f"{key}:{spec.get('type', '')}:{description}")
        return tokens + o.functions_end

    def _functions(self, example: dict) -> list[dict]:
        tools = [t["function"] for t in example.get("tools") or () if isinstance(t, dict) and "function" in t]
        return tools + list(example.get("functions") or ())

    def _messages(self, messages: list[dict]) -> tuple[dict[str, int], int, bool, int]:
        """By role, trained, estimated, and the assistant messages' content alone (the cookbook's
        ``num_assistant_tokens_from_messages``)."""
        by_role: dict[str, int] = {}
        trained, estimated, assistant_content = 0, False, 0
        for message in messages:
            tokens, approx, content = self._message(message)
            estimated |= approx
            by_role[message["role"]] = by_role.get(message["role"], 0) + tokens
            if message["role"] == "assistant":
                assistant_content += content
                if message.get("weight", 1) != 0:
                    trained += tokens
        return by_role, trained, estimated, assistant_content

    def chat(self, example: dict) -> TokenCount:
        by_role, trained, estimated, assistant_content = self._messages(example["messages"])
        functions = self._functions(example)
        total = sum(by_role.values()) + TOKENS_PER_EXAMPLE + self.tool_definitions(functions)
        return TokenCount(total, total, trained, tuple(sorted(by_role.items())), estimated or bool(functions),
                          assistant_content)

    def completion(self, example: dict) -> TokenCount:
        prompt, completion = self.text(example["prompt"]), self.text(example["completion"])
        return TokenCount(prompt + completion, prompt + completion, completion,
                          (("completion", completion), ("prompt", prompt)))

    def preference(self, example: dict) -> TokenCount:
        """Both sequences (input + preferred, input + non-preferred) are trained on: both are counted.

        How OpenAI bills DPO tokens is not published: this total is an estimate.
        """
        source = example["input"]
        by_role, _, _, _ = self._messages(source["messages"])
        shared = sum(by_role.values()) + TOKENS_PER_EXAMPLE + self.tool_definitions(self._functions(source))
        preferred, _ = self.message(example["preferred_output"][0])
        rejected, _ = self.message(example["non_preferred_output"][0])
        by_role = {role: 2 * n for role, n in by_role.items()}
        by_role["assistant"] = by_role.get("assistant", 0) + preferred + rejected
        return TokenCount(2 * shared + preferred + rejected, shared + max(preferred, rejected),
                          preferred + rejected, tuple(sorted(by_role.items())), True)

    def count(self, example: dict, fmt: str) -> TokenCount:
        return getattr(self, fmt)(example)


class NotCountable(ValueError):
    """A counter cannot count this example: the model's chat template (or renderer) refuses it —
    a role it has no branch for, its ``raise_exception``. The example's error, not the run's."""


class TokenSource(Protocol):
    """Where a target's token counter comes from: a small picklable value, ``check()``-ed at launch
    (it may pin what it found), ``load()``-ed on each worker. A source with ``reads_rows`` counts
    the row the target writes (``count_row``) instead of ftprep's example (``count``)."""

    @property
    def label(self) -> str: ...

    def check(self) -> "TokenSource": ...

    def load(self, limits: LimitsSpec = LimitsSpec()): ...


@dataclass(frozen=True)
class TiktokenSource:
    """Where an OpenAI model's counter comes from: a tiktoken encoding, resolved offline
    (``transforms/encodings.py``). Token sources travel to the workers and ``load`` there."""

    encoding: str
    encodings_url: str | None = None

    @property
    def label(self) -> str:
        return self.encoding

    def check(self) -> "TiktokenSource":
        """Fail before the run when the encoding's files cannot be found (EncodingError)."""
        if self.encoding not in ENCODING_FILES:
            raise EncodingError(f"unknown encoding {self.encoding!r}; known: {', '.join(sorted(ENCODING_FILES))}")
        resolve_encoding_bytes(self.encoding, encodings_url=self.encodings_url)
        return self

    def load(self, limits: LimitsSpec = LimitsSpec()) -> TokenCounter:
        return TokenCounter(load_encoding(self.encoding, encodings_url=self.encodings_url), self.encoding)


class CharEstimateCounter:
    """Tokens estimated from characters, for providers that publish no tokenizer: every text of a
    message (content, reasoning) at ``chars_per_token`` characters a token, rounded up per message.
    Every count is flagged ``estimated``."""

    def __init__(self, chars_per_token: float):
        self._ratio = chars_per_token

    def text(self, text: str) -> int:
        return math.ceil(len(text) / self._ratio)

    def _message(self, message: dict) -> int:
        content = message.get("content")
        parts = [content] if isinstance(content, str) else [
            p.get("text", "") for p in content or () if isinstance(p, dict) and p.get("type") == "text"]
        return sum(self.text(t) for t in (*parts, message.get("thinking") or "") if t)

    def _messages(self, messages: list[dict]) -> tuple[dict[str, int], int]:
        by_role: dict[str, int] = {}
        trained = 0
        for message in messages:
            n = self._message(message)
            by_role[message["role"]] = by_role.get(message["role"], 0) + n
            if message["role"] == "assistant" and message.get("weight", 1) != 0:
                trained += n
        return by_role, trained

    def count(self, example: dict, fmt: str) -> TokenCount:
        if fmt == "completion":
            prompt, completion = self.text(example["prompt"]), self.text(example["completion"])
            return TokenCount(prompt + completion, prompt + completion, completion,
                              (("completion", completion), ("prompt", prompt)), True)
        if fmt == "chat":
            by_role, trained = self._messages(example["messages"])
            total = sum(by_role.values())
            return TokenCount(total, total, trained, tuple(sorted(by_role.items())), True)
        by_role, _ = self._messages(example["input"]["messages"])
        shared = sum(by_role.values())
        preferred = self._message(example["preferred_output"][0])
        rejected = self._message(example["non_preferred_output"][0])
        return TokenCount(2 * shared + preferred + rejected, shared + max(preferred, rejected), preferred + rejected,
                          (), True)


@dataclass(frozen=True)
class CharEstimateSource:
    """A provider's documented characters-per-token estimate (``transforms/targets/``)."""

    provider: str
    chars_per_token: float

    @property
    def label(self) -> str:
        return f"estimate: {self.chars_per_token:g} characters a token ({self.provider})"

    def check(self) -> "CharEstimateSource":
        return self

    def load(self, limits: LimitsSpec = LimitsSpec()) -> CharEstimateCounter:
        return CharEstimateCounter(self.chars_per_token)


def over_limit(tokens: TokenCount, model: ModelSpec, *, limit_key: str | None = None) -> Rejection | None:
    """``limit_key``: the recipe key the limit comes from, named instead of the model's table."""
    if tokens.context <= model.max_tokens_per_example:
        return None
    allowed = (f"{limit_key} is {model.max_tokens_per_example}" if limit_key
               else f"{model.name} allows {model.max_tokens_per_example} per example")
    return Rejection(TOO_MANY_TOKENS, f"example has {tokens.context} tokens; {allowed}")


class _CountTokensFn(BatchDoFn):
    STAGE = "CountTokens"

    def __init__(self, model: ModelSpec, source, fmt: str, truncate: bool, limits: LimitsSpec):
        super().__init__()
        self._model = model
        self._source = source
        self._format = fmt
        self._truncate = truncate
        self._limits = limits
        self._counter = None

    def setup(self):
        self._counter = self._source.load(self._limits)
        # A source that reads rows counts the row the target made (CheckTarget), as it is written;
        # one that writes tokens (output.tokens) hands back the tokenized row, written instead.
        self._reads_rows = getattr(self._source, "reads_rows", False)
        self._tokens = getattr(self._source, "tokens", None)

    def handle(self, item: Item, emit) -> None:
        try:
            if self._tokens:
                tokens, tokenized = self._counter.tokenized(item.target_row, self._format, self._tokens)
            else:
                tokens = (self._counter.count_row(item.target_row, self._format) if self._reads_rows
                          else self._counter.count(item.example, self._format))
        except NotCountable as error:  # the model's template refuses this example (a role, a shape)
            emit(REJECTED, self.reject(item, Rejection(CHAT_TEMPLATE_ERROR, str(error))))
            return
        rejection = over_limit(tokens, self._model, limit_key=getattr(self._source, "LIMIT_KEY", None))
        if rejection and not self._truncate:
            emit(REJECTED, self.reject(item, rejection))
            return
        warnings = (item.warnings + ((TRUNCATED_TO_LIMIT,) if rejection else ())
                    + ((UNTRAINED_ASSISTANT_TURNS,) if tokens.untrained_turns else ()))
        if self._tokens:  # the platform would truncate: the written tokens are cut where it cuts
            item.target_row = truncated_row(tokenized, self._model.max_tokens_per_example) if rejection else tokenized
        item.tokens, item.warnings = tokens, warnings
        emit(KEPT, item)


class CountTokens(BatchStage):
    """Count tokens per example; reject (or, under ``spec.over_limit: truncate``, flag) those over
    the model's limit. ``source``: where the counter comes from (the target's; default the
    model's tiktoken encoding); ``spec``: the recipe's ``tokens`` section."""

    def __init__(self, *, model: ModelSpec, format: str, spec: TokensSpec = TokensSpec(), source=None,
                 limits: LimitsSpec = LimitsSpec()):
        if source is None:
            if model.encoding not in ENCODING_FILES:
                raise EncodingError(f"unknown encoding {model.encoding!r}; known: {', '.join(sorted(ENCODING_FILES))}")
            source = TiktokenSource(model.encoding, spec.encodings_url)
        if format not in ("chat", "completion", "preference"):
            raise ValueError(f"unknown example format {format!r}")
        super().__init__(_CountTokensFn(model, source, format, spec.over_limit == "truncate", limits))
