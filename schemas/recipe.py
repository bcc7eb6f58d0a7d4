"""The recipe: one YAML document that describes a job.

Every model forbids unknown keys so that a typo (``valdation_fraction``) fails at load
time instead of silently falling back to a default.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, PrivateAttr, Tag, field_validator, model_validator,
)

from schemas.models import ModelSpec, lookup_model
from schemas.records import (
    CONTAMINATED, DOWNSAMPLED, DUPLICATE_EXACT, DUPLICATE_NEAR, FILTER_BLOCKLIST, FILTER_ECHO, FILTER_MAX_CHARS, FILTER_MAX_TOKENS,
    FILTER_MIN_CHARS, FILTER_MIN_TOKENS, FILTER_REASONS, FILTER_REPETITION,
)

InputFormat = Literal["parquet", "csv", "jsonl"]
ExampleFormat = Literal["chat", "completion", "preference"]
# Paths or globs (fsspec URLs); a single string is one path.
Paths = Annotated[list[str], BeforeValidator(lambda value: [value] if isinstance(value, str) else value)]
CleanStep = Literal[
    "fix_mojibake", "html", "strip_control", "nfc", "nfkc", "strip_urls", "collapse_whitespace",
    "collapse_all_whitespace", "trim",
]
DEFAULT_CLEAN_STEPS: tuple[CleanStep, ...] = ("strip_control", "nfc", "collapse_whitespace", "trim")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CsvOptions(_Strict):
    delimiter: str = Field(",", min_length=1, max_length=1)
    quotechar: str = Field('"', min_length=1, max_length=1)
    encoding: str = "utf-8"


class SourceSpec(_Strict):
    """One source of a mixture: its files, and its weight, the share of the kept train split it
    should make up (relative to the other sources' weights)."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    paths: Annotated[Paths, Field(min_length=1)]
    weight: Annotated[float, Field(gt=0)] = 1.0


class InputSpec(_Strict):
    paths: Paths = []
    # A weighted mixture (transforms/mixing.py), instead of paths read as one pool.
    sources: list[SourceSpec] | None = None
    format: InputFormat | None = None
    csv: CsvOptions = CsvOptions()
    # The rows already are fine-tuning examples in this format (no template): ftprep validate.
    examples: ExampleFormat | Literal["auto"] | None = None
    # A file that cannot be read (corrupt, truncated, missing a column the recipe uses): fail the
    # run naming it, or skip it and list it in stats.json under files.failed.
    on_bad_file: Literal["fail", "skip"] = "fail"

    @model_validator(mode="after")
    def _paths_or_sources(self):
        if self.sources is not None and self.paths:
            raise ValueError("give input.paths or input.sources, not both (--input replaces input.paths: with "
                             "sources, change their paths in the recipe or with --set)")
        if self.sources is None and not self.paths:
            raise ValueError("input.paths: give at least one path or glob (or input.sources)")
        if self.sources is not None:
            names = [source.name for source in self.sources]
            repeated = sorted({name for name in names if names.count(name) > 1})
            if not names or repeated:
                raise ValueError(f"input.sources: give one or more sources with different names"
                                 + (f" ({', '.join(repeated)} given twice)" if repeated else ""))
        return self

    def all_paths(self) -> list[str]:
        """Every path read: ``paths``, or every source's."""
        return list(self.paths) if self.sources is None else [p for source in self.sources for p in source.paths]


class CleanSpec(_Strict):
    # Run in one fixed order whatever the order here (see transforms/clean.py).
    steps: list[CleanStep] = list(DEFAULT_CLEAN_STEPS)
    # None cleans every column the template uses.
    fields: list[str] | None = None
    # Other steps for some fields: {answer: [html, trim]} (cleaned even when not in fields).
    per_field: dict[str, list[CleanStep]] = {}

    @field_validator("steps")
    @classmethod
    def _one_whitespace_mode(cls, steps):
        if {"collapse_whitespace", "collapse_all_whitespace"} <= set(steps):
            raise ValueError("choose one of collapse_whitespace (keeps lines) and collapse_all_whitespace")
        return steps

    @field_validator("per_field")
    @classmethod
    def _one_whitespace_mode_per_field(cls, per_field):
        for steps in per_field.values():
            cls._one_whitespace_mode(steps)
        return per_field


class MessageTemplate(_Strict):
    """One message; every string is a Jinja2 template over the row's columns."""

    role: Literal["system", "user", "assistant", "tool", "function"]
    content: str | None = None
    name: str | None = None
    weight: Literal[0, 1] | None = None
    # Renders to a JSON list of tool calls, e.g. "{{ calls }}" over a column holding JSON.
    tool_calls: str | None = None
    tool_call_id: str | None = None
    # The assistant's reasoning before its answer: written as the message's "thinking" for the
    # open-weights targets (gpt-oss's analysis channel); OpenAI's format has no place for it.
    thinking: str | None = None

    @model_validator(mode="after")
    def _content_or_calls(self):
        if self.content is None and self.tool_calls is None:
            raise ValueError("a message template needs content (or, for an assistant, tool_calls)")
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("only assistant messages have tool_calls")
        if self.weight is not None and self.role != "assistant":
            raise ValueError("only assistant messages have a weight")
        if self.thinking is not None and self.role != "assistant":
            raise ValueError("only assistant messages have thinking")
        return self


class TemplateSpec(_Strict):
    format: ExampleFormat = "chat"
    system: str | None = None
    messages: list[MessageTemplate] | None = None
    # A column that already holds a conversation: a JSON string or a list of {role, content}.
    messages_column: str | None = None
    # Renders to a JSON list of tool definitions ({"type": "function", "function": {...}}).
    tools: str | None = None
    parallel_tool_calls: bool | None = None
    prompt: str | None = None
    completion: str | None = None
    # Preference (DPO): the input is system/messages; these are the two assistant answers.
    preferred: str | None = None
    non_preferred: str | None = None

    @model_validator(mode="after")
    def _fields_fit_format(self):
        chat_fields = {"system": self.system, "messages": self.messages, "messages_column": self.messages_column,
                       "tools": self.tools, "parallel_tool_calls": self.parallel_tool_calls}
        allowed = {
            "chat": set(chat_fields),
            "preference": set(chat_fields) | {"preferred", "non_preferred"},
            "completion": {"prompt", "completion"},
        }[self.format]
        given = {k for k, v in {**chat_fields, "prompt": self.prompt, "completion": self.completion,
                                "preferred": self.preferred, "non_preferred": self.non_preferred}.items() if v is not None}
        if given - allowed:
            raise ValueError(f"{', '.join(sorted(given - allowed))} do(es) not belong to format: {self.format}")
        if self.format == "completion":
            if self.prompt is None or self.completion is None:
                raise ValueError("a completion template needs both prompt and completion")
        elif (self.messages is None) == (self.messages_column is None):
            raise ValueError(f"a {self.format} template needs exactly one of messages or messages_column")
        if self.format == "preference" and (self.preferred is None or self.non_preferred is None):
            raise ValueError("a preference template needs both preferred and non_preferred")
        return self


class ModelChoice(_Strict):
    """A model with the table's encoding or limit overridden, or a model outside the table
    (e.g. an open model on another platform), which then needs both."""

    name: str
    encoding: str | None = None
    max_tokens_per_example: int | None = Field(None, gt=0)

    def spec(self) -> ModelSpec:
        return lookup_model(self.name, encoding=self.encoding, max_tokens_per_example=self.max_tokens_per_example)


class OpenAITarget(_Strict):
    """OpenAI fine-tuning (the reference): its formats and rules, tiktoken counts by the cookbook's
    method, the model table's per-example limit, ``finetune_job.json``."""

    kind: Literal["openai"] = "openai"


class HfTarget(_Strict):
    """Training an open-weights model (TRL, Axolotl, Unsloth): counted with the model's own
    tokenizer and chat template, limited by the sequence length training uses."""

    kind: Literal["hf"]
    # A folder or fsspec URL holding tokenizer.json and tokenizer_config.json, or a hub id
    # (found in Hugging Face's local cache, else downloaded where allowed).
    tokenizer: str = Field(min_length=1)
    revision: str = "main"
    # File name -> sha256: a source whose file differs is refused.
    sha256: dict[str, Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = {}
    allow_download: bool = True
    # The training sequence length (TRL's max_length): longer examples are rejected (too_many_tokens).
    max_length: int = Field(gt=0)
    # Estimate how many max_length sequences the train split packs into (stats.json: packing).
    packing: bool = False


class GptOssTarget(_Strict):
    """OpenAI's open-weight gpt-oss models, trained with TRL: counted with the model's own chat
    template (the assistant's reasoning, ``thinking``, in the analysis channel), or with
    ``openai-harmony``'s renderer (``counting: harmony``)."""

    kind: Literal["gpt-oss"]
    # chat_template: what TRL tokenizes (the model's template with its tokenizer files, below);
    # harmony: openai-harmony's rendering (o200k_harmony; no tokenizer files needed).
    counting: Literal["chat_template", "harmony"] = "chat_template"
    # As for target hf: a folder or fsspec URL with tokenizer.json, tokenizer_config.json and the
    # chat template, or a hub id.
    tokenizer: str = Field("openai/gpt-oss-20b", min_length=1)
    revision: str = "main"
    sha256: dict[str, Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = {}
    allow_download: bool = True
    # Default: the models' context (max_position_embeddings 131,072 in gpt-oss-20b/120b's config).
    max_length: int = Field(131_072, gt=0)
    packing: bool = False
    # What the harmony system message says (it is part of every example's tokens).
    reasoning_effort: Literal["low", "medium", "high"] = "medium"
    conversation_start_date: str | None = None


class HostedTargetSpec(_Strict):
    """Another provider's hosted fine-tuning (``transforms/targets/<kind>.py``): its row format,
    rules, model table, limits, token counting and job request. ``model`` names the provider's
    model. ``kind`` is any provider the targets' registry lists (checked when the recipe is
    loaded), so that a new provider is its module and its registry line, not a change here."""

    kind: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    # A model outside ftprep's table for this provider (its per-example token limit), or a lower limit.
    max_length: int | None = Field(None, gt=0)
    # Together and Fireworks tune open-weights models: the model's tokenizer (as for target hf)
    # makes their counts exact instead of estimated.
    tokenizer: str | None = None
    revision: str = "main"
    sha256: dict[str, Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = {}
    allow_download: bool = True


def _target_settings(value) -> str:
    """Which settings a target takes: OpenAI's (the default), hf's, gpt-oss's, or a hosted provider's."""
    kind = value.get("kind", "openai") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind if kind in ("openai", "hf", "gpt-oss") else "hosted"


Target = Annotated[
    Annotated[OpenAITarget, Tag("openai")] | Annotated[HfTarget, Tag("hf")] | Annotated[GptOssTarget, Tag("gpt-oss")]
    | Annotated[HostedTargetSpec, Tag("hosted")],
    Discriminator(_target_settings),
]


class SplitSpec(_Strict):
    validation_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0


class OutputSpec(_Strict):
    path: str
    # parquet: for the open-weights targets (what datasets.load_dataset and TRL read directly);
    # OpenAI takes JSONL.
    format: Literal["jsonl", "parquet"] = "jsonl"
    num_shards: int | None = Field(None, ge=1)
    max_shard_bytes: int | None = Field(None, ge=1024)
    # Also write provenance/<split>/: the source file and row of every kept example (lineage:
    # which rows made the training set, e.g. to honour a deletion request).
    provenance: bool = False
    # Targets hf and gpt-oss: write what the trainer trains on instead of messages — trl:
    # input_ids with assistant_masks (conversations) or completion_mask (prompt/completion), as
    # TRL's SFTTrainer takes processed data; labels: input_ids, attention_mask and labels (-100
    # where nothing is trained), as Axolotl, LLaMA-Factory and Together's pre-tokenized files.
    tokens: Literal["trl", "labels"] | None = None


PiiKind = Literal["email", "phone", "ip", "card", "iban", "secret"]
PII_KINDS: tuple[PiiKind, ...] = get_args(PiiKind)
PiiAction = Literal["redact", "reject"]


class PiiSpec(_Strict):
    # None: every column the template uses.
    fields: list[str] | None = None
    kinds: list[PiiKind] = list(PII_KINDS)
    # One action for every kind, or one per kind ({secret: reject}; kinds not named are redacted).
    action: PiiAction | dict[PiiKind, PiiAction] = "redact"
    # Regions whose national phone formats are recognised (ISO 3166 codes); +CC numbers always are.
    phone_regions: list[str] = ["US"]
    replacements: dict[PiiKind, str] = {}

    def actions(self) -> dict[str, str]:
        if isinstance(self.action, str):
            return {kind: self.action for kind in self.kinds}
        return {kind: self.action.get(kind, "redact") for kind in self.kinds}


# In a filter's bounds, the whole rendered example rather than one field.
WHOLE_EXAMPLE = "example"


class FiltersSpec(_Strict):
    """Each bound maps a field name, or ``example`` (``WHOLE_EXAMPLE``) for the whole example, to a limit."""

    min_chars: dict[str, Annotated[int, Field(ge=0)]] = {}
    max_chars: dict[str, Annotated[int, Field(ge=0)]] = {}
    min_tokens: dict[str, Annotated[int, Field(ge=0)]] = {}
    max_tokens: dict[str, Annotated[int, Field(ge=0)]] = {}
    # Highest share of repeated word 3-grams or character 10-grams in any message.
    max_repetition: Annotated[float, Field(gt=0, le=1)] | None = None
    blocklist: list[str] = []
    # Drop examples whose answer repeats the prompt (assistant == the user message before it).
    drop_echoes: bool = False

    def reasons(self) -> tuple[str, ...]:
        """The drop reasons these filters can give, in the order they are checked."""
        active = {
            FILTER_MIN_CHARS: self.min_chars, FILTER_MAX_CHARS: self.max_chars, FILTER_MIN_TOKENS: self.min_tokens,
            FILTER_MAX_TOKENS: self.max_tokens, FILTER_REPETITION: self.max_repetition is not None,
            FILTER_BLOCKLIST: self.blocklist, FILTER_ECHO: self.drop_echoes,
        }
        return tuple(reason for reason in FILTER_REASONS if active[reason])

    def needs_encoding(self) -> bool:
        """Token bounds on single fields count those fields' tokens themselves."""
        return any(name != WHOLE_EXAMPLE for name in (*self.min_tokens, *self.max_tokens))


class NearDedupSpec(_Strict):
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.8
    shingle: Annotated[int, Field(ge=1)] = 5
    num_perm: Annotated[int, Field(ge=16, le=1024)] = 128


class DedupSpec(_Strict):
    exact: bool = False
    near: NearDedupSpec | None = None
    # Compare these fields instead of the whole rendered example.
    fields: list[str] | None = None
    # Earlier ftprep outputs (or their dedup_index/ directories): an example equal (exact) or
    # near (near on) to one they hold is dropped as its duplicate. Only their indexes are read.
    against: Paths = []

    @model_validator(mode="after")
    def _against_compares_something(self):
        if self.against and not self.enabled:
            raise ValueError("dedup.against compares with exact or near dedup: set dedup.exact: true or dedup.near")
        return self

    def reasons(self) -> tuple[str, ...]:
        return (*((DUPLICATE_EXACT,) if self.exact else ()), *((DUPLICATE_NEAR,) if self.near is not None else ()))

    @property
    def enabled(self) -> bool:
        return self.exact or self.near is not None


class EvalSetSpec(_Strict):
    """An evaluation set training data must not contain: files (fsspec paths or globs) and the
    columns whose text is compared (every text value of the row when not given; a list or
    conversation column's texts each)."""

    name: str = Field(min_length=1)
    paths: Annotated[Paths, Field(min_length=1)]
    fields: list[str] | None = None
    format: InputFormat | None = None
    csv: CsvOptions = CsvOptions()


class DecontaminateSpec(_Strict):
    """Drop training examples that share a run of ``ngram`` words with an evaluation item (words
    as dedup normalises them, punctuation aside); an item shorter than that but of at least
    ``min_words`` words is matched whole; shorter items are not checked (counted in stats.json)."""

    evals: list[EvalSetSpec] = Field(min_length=1)
    ngram: Annotated[int, Field(ge=3, le=64)] = 13
    min_words: Annotated[int, Field(ge=1)] = 8

    @model_validator(mode="after")
    def _names_once(self):
        names = [spec.name for spec in self.evals]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"evaluation set names must differ: {', '.join(repeated)} given twice")
        if self.min_words > self.ngram:
            raise ValueError(f"min_words ({self.min_words}) cannot exceed ngram ({self.ngram})")
        return self


class TokensSpec(_Strict):
    # A directory (fsspec URL) holding <encoding>.tiktoken files for workers without egress.
    encodings_url: str | None = None
    # Over the model's per-example limit: reject (default), or keep and flag as the platform
    # would truncate it (warning truncated_to_limit; billed as the limit).
    over_limit: Literal["reject", "truncate"] = "reject"


Auto = Literal["auto"]


class FinetuneSpec(_Strict):
    """The fine-tuning job to write to finetune_job.json; bounds are the platform's."""

    method: Literal["supervised", "dpo"] | None = None  # default: dpo for preference data
    n_epochs: Annotated[int, Field(ge=1, le=50)] | Auto = "auto"
    batch_size: Annotated[int, Field(ge=1, le=256)] | Auto = "auto"
    learning_rate_multiplier: Annotated[float, Field(gt=0)] | Auto = "auto"
    beta: Annotated[float, Field(gt=0, le=2)] | Auto = "auto"
    suffix: str | None = Field(None, max_length=64)
    seed: int | None = None
    price_per_million_tokens: float | None = Field(None, ge=0)


class LimitsSpec(_Strict):
    """Size limits that keep one giant row from exhausting a worker (each rejects with its code)."""

    # field_too_large: a cell, or a JSONL line, longer than this many characters.
    max_field_chars: int = Field(default=1_000_000, gt=0)
    # example_too_large: a rendered example longer than this (a template loop can multiply text);
    # template_error: a value the template builds (a string times a number, a padding filter) over it.
    max_example_chars: int = Field(default=4_000_000, gt=0)
    # too_many_messages
    max_messages: int = Field(default=1_000, gt=0)
    # template_error: CPU seconds one row's template may take to render (a loop, a recursive macro).
    max_render_seconds: float = Field(default=2.0, gt=0, le=600)
    # pii_timeout: CPU seconds one row's scan for personal data may take (libphonenumber is slow
    # on a field of thousands of numbers); a row not scanned in time is rejected, its values withheld.
    max_pii_seconds: float = Field(default=2.0, gt=0, le=600)
    # The run stops (exit 1, no _SUCCESS) when the first this many rows a worker reads are all
    # rejected with the same code: a recipe that fails on every row says so in seconds, not at
    # the end. 0 turns it off.
    fail_fast_rows: int = Field(default=20, ge=0)
    # The run stops when more than this share of the rows a worker has read (once it has read
    # fail_fast_rows of them) is rejected. None: no limit.
    max_rejected_fraction: float | None = Field(default=None, ge=0, le=1)


class Recipe(_Strict):
    input: InputSpec
    template: TemplateSpec | None = None
    # The model to fine-tune; for the open-weights targets only a name for the outputs (default:
    # the tokenizer, or gpt-oss).
    model: str | ModelChoice | None = None
    target: Target = OpenAITarget()
    clean: CleanSpec = CleanSpec()
    pii: PiiSpec | None = None
    filters: FiltersSpec = FiltersSpec()
    dedup: DedupSpec = DedupSpec()
    decontaminate: DecontaminateSpec | None = None
    split: SplitSpec = SplitSpec()
    output: OutputSpec
    tokens: TokensSpec = TokensSpec()
    finetune: FinetuneSpec = FinetuneSpec()
    limits: LimitsSpec = LimitsSpec()
    # The recipe as its author wrote it (comments and all), and what the command line changed,
    # for the report; None when it was built in code.
    _source_text: str | None = PrivateAttr(default=None)
    _overrides: tuple = PrivateAttr(default=())

    def with_source(self, text: str, overrides=()) -> "Recipe":
        self._source_text, self._overrides = text, tuple(overrides)
        return self

    @property
    def source_text(self) -> str | None:
        return self._source_text

    @property
    def overrides(self) -> tuple:
        return self._overrides

    @field_validator("target", mode="before")
    @classmethod
    def _kind_alone(cls, value):
        # target: gpt-oss is short for {kind: gpt-oss}.
        return {"kind": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _template_or_examples(self):
        if (self.template is None) == (self.input.examples is None):
            raise ValueError("give a template, or input.examples when the rows already are examples")
        if self.finetune.method == "dpo" and self.example_format not in (None, "preference"):
            raise ValueError("finetune.method dpo needs preference examples")
        might_be_dpo = self.finetune.method == "dpo" or (
            self.finetune.method is None and self.example_format in (None, "preference")
        )
        if self.finetune.beta != "auto" and not might_be_dpo:
            raise ValueError("finetune.beta only applies to method dpo")
        return self

    @property
    def example_format(self) -> str | None:
        """chat, completion or preference; None while input.examples is still auto."""
        if self.template is not None:
            return self.template.format
        return None if self.input.examples == "auto" else self.input.examples

    def dropped_reasons(self) -> tuple[str, ...]:
        """Every reason this recipe can drop a record for (stats.json lists each, 0 included)."""
        contaminated = (CONTAMINATED,) if self.decontaminate is not None else ()
        downsampled = (DOWNSAMPLED,) if self.input.sources is not None else ()
        return (*self.filters.reasons(), *contaminated, *self.dedup.reasons(), *downsampled)
