"""The recipe: one YAML document that describes a job.

Every model forbids unknown keys so that a typo (``valdation_fraction``) fails at load
time instead of silently falling back to a default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.models import ENCODING_FILES, ModelSpec, lookup_model

InputFormat = Literal["parquet", "csv", "jsonl"]
CleanStep = Literal["nfc", "strip_control", "collapse_spaces", "trim"]
DEFAULT_CLEAN_STEPS: tuple[CleanStep, ...] = ("nfc", "strip_control", "collapse_spaces", "trim")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CsvOptions(_Strict):
    delimiter: str = Field(",", min_length=1, max_length=1)
    quotechar: str = Field('"', min_length=1, max_length=1)
    encoding: str = "utf-8"


class InputSpec(_Strict):
    paths: list[str] = Field(min_length=1)
    format: InputFormat | None = None
    csv: CsvOptions = CsvOptions()

    @field_validator("paths", mode="before")
    @classmethod
    def _one_path_is_a_list(cls, value):
        return [value] if isinstance(value, str) else value


class CleanSpec(_Strict):
    steps: list[CleanStep] = list(DEFAULT_CLEAN_STEPS)
    # None cleans every text column that is read.
    fields: list[str] | None = None


class MessageTemplate(_Strict):
    role: str
    content: str
    name: str | None = None
    weight: Literal[0, 1] | None = None


class TemplateSpec(_Strict):
    format: Literal["chat", "completion"] = "chat"
    system: str | None = None
    messages: list[MessageTemplate] | None = None
    # A column that already holds a conversation: a JSON string or a list of {role, content}.
    messages_column: str | None = None
    prompt: str | None = None
    completion: str | None = None

    @model_validator(mode="after")
    def _fields_fit_format(self):
        if self.format == "chat":
            if (self.messages is None) == (self.messages_column is None):
                raise ValueError("a chat template needs exactly one of messages or messages_column")
            if self.prompt is not None or self.completion is not None:
                raise ValueError("prompt/completion belong to format: completion, not chat")
        else:
            if self.prompt is None or self.completion is None:
                raise ValueError("a completion template needs both prompt and completion")
            if self.messages is not None or self.messages_column is not None or self.system is not None:
                raise ValueError("messages, messages_column and system belong to format: chat")
        return self


class CustomModel(_Strict):
    """A model outside the built-in table, e.g. an open model on another platform."""

    name: str
    encoding: str
    max_tokens_per_example: int = Field(gt=0)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value):
        if value not in ENCODING_FILES:
            raise ValueError(f"unknown encoding {value!r}; known: {', '.join(sorted(ENCODING_FILES))}")
        return value


class SplitSpec(_Strict):
    validation_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0


class OutputSpec(_Strict):
    path: str
    num_shards: int | None = Field(None, ge=1)
    max_shard_bytes: int | None = Field(None, ge=1024)


class TokensSpec(_Strict):
    # A directory (fsspec URL) holding <encoding>.tiktoken files for workers without egress.
    encodings_url: str | None = None


class Recipe(_Strict):
    input: InputSpec
    template: TemplateSpec
    model: str | CustomModel
    clean: CleanSpec = CleanSpec()
    split: SplitSpec = SplitSpec()
    output: OutputSpec
    tokens: TokensSpec = TokensSpec()

    @field_validator("model")
    @classmethod
    def _known_model(cls, value):
        if isinstance(value, str):
            lookup_model(value)  # raises with the list of known models
        return value

    def model_spec(self) -> ModelSpec:
        if isinstance(self.model, CustomModel):
            return ModelSpec(self.model.name, self.model.encoding, self.model.max_tokens_per_example)
        return lookup_model(self.model)
