"""Records as they travel through the pipeline and as they are written.

Output formats (one JSON object per line):

* train / validation: exactly the platform's example, e.g. ``{"messages": [...]}`` for
  chat or ``{"prompt": ..., "completion": ...}`` for completion; no extra keys.
* rejected: ``{"source": {"file", "row"}, "errors": [{"code", "message"}],
  "record": <original row>, "example": <rendered example, when it got that far>}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

# Rejection codes. Kept in one place: stats, tests and docs refer to these names.
INVALID_JSON = "invalid_json"
DATA_TYPE = "data_type"
MALFORMED_ROW = "malformed_row"
# Bytes that are not text in the file's encoding (the row is kept in rejected/ with U+FFFD).
DECODE_ERROR = "decode_error"
# A value longer than limits.max_field_chars (a JSONL line counts as one value).
FIELD_TOO_LARGE = "field_too_large"
# A column the template renders as text holds a list, a mapping or bytes.
WRONG_TYPE = "wrong_type"
# A part of the example renders empty because a column it uses is null (or absent).
NULL_FIELD = "null_field"
# The rendered example is longer than limits.max_example_chars.
EXAMPLE_TOO_LARGE = "example_too_large"
# More messages than limits.max_messages.
TOO_MANY_MESSAGES = "too_many_messages"
TEMPLATE_ERROR = "template_error"
MISSING_MESSAGES_LIST = "missing_messages_list"
MESSAGE_MISSING_KEY = "message_missing_key"
MESSAGE_UNRECOGNIZED_KEY = "message_unrecognized_key"
UNRECOGNIZED_ROLE = "unrecognized_role"
MISSING_CONTENT = "missing_content"
EXAMPLE_MISSING_ASSISTANT_MESSAGE = "example_missing_assistant_message"
INVALID_WEIGHT = "invalid_weight"
INVALID_TOOL_CALL = "invalid_tool_call"
INVALID_IMAGE = "invalid_image"
INVALID_PREFERENCE = "invalid_preference"
INVALID_COMPLETION = "invalid_completion"
TOO_MANY_TOKENS = "too_many_tokens"
# The target model's chat template (or the harmony renderer) refused or failed on the example.
CHAT_TEMPLATE_ERROR = "chat_template_error"
# A field holds personal data or a secret of a kind the recipe rejects on.
PII_FOUND = "pii"
# Scanning a row for personal data took more than limits.max_pii_seconds (its values are withheld).
PII_TIMEOUT = "pii_timeout"
# An exception nobody expected; the message carries its type and text.
INTERNAL_ERROR = "internal_error"

# Warnings: counted in stats.json under "warnings"; the example is kept.
MISSING_SYSTEM_MESSAGE = "missing_system_message"
MISSING_USER_MESSAGE = "missing_user_message"
# Every assistant message has weight 0: the example costs tokens and teaches nothing.
NO_TRAINED_MESSAGE = "no_trained_message"
# Messages after the last assistant message are billed but never trained on.
TRAILING_UNTRAINED_MESSAGES = "trailing_untrained_messages"
# Content that is only whitespace: the platform accepts it, but it is rarely intended.
BLANK_CONTENT = "blank_content"
# A top-level key the format does not define; the platform may reject the file for it.
UNRECOGNIZED_EXAMPLE_KEY = "unrecognized_example_key"
# An assistant message has weight 0, which TRL-style training cannot honour (it has no
# per-message weight): for the open-weights targets the message is trained on like the others.
WEIGHT_NOT_APPLIED = "weight_not_applied"
# Over the model's limit but kept (tokens.over_limit: truncate): the platform truncates it.
TRUNCATED_TO_LIMIT = "truncated_to_limit"
# An assistant turn with content counts no trained tokens: the model's chat template renders it
# otherwise within the conversation than as its last turn (it rewrites earlier turns, as Qwen3
# drops their reasoning), so its span was not found. A template with {% generation %} blocks
# (TRL's training templates) marks every turn exactly.
UNTRAINED_ASSISTANT_TURNS = "untrained_assistant_turns"

TRAIN = "train"
VALIDATION = "validation"
SPLITS = (TRAIN, VALIDATION)

# What becomes of a record, named once: the stages' outputs and the output directories use these.
KEPT = "kept"
REJECTED = "rejected"
DROPPED = "dropped"
REJECTED_DIR = REJECTED
DROPPED_DIR = DROPPED

# Why a valid record was dropped (stats.json records.dropped, dropped/<reason>/): the quality
# filters, in the order they are checked, then deduplication.
FILTER_MIN_CHARS = "filter_min_chars"
FILTER_MAX_CHARS = "filter_max_chars"
FILTER_MIN_TOKENS = "filter_min_tokens"
FILTER_MAX_TOKENS = "filter_max_tokens"
FILTER_REPETITION = "filter_repetition"
FILTER_BLOCKLIST = "filter_blocklist"
FILTER_ECHO = "filter_echo"
FILTER_REASONS = (FILTER_MIN_CHARS, FILTER_MAX_CHARS, FILTER_MIN_TOKENS, FILTER_MAX_TOKENS, FILTER_REPETITION,
                  FILTER_BLOCKLIST, FILTER_ECHO)
DUPLICATE_EXACT = "duplicate_exact"
DUPLICATE_NEAR = "duplicate_near"
DUPLICATE_REASONS = (DUPLICATE_EXACT, DUPLICATE_NEAR)
# Shares an n-gram with an evaluation set (transforms/decontaminate.py).
CONTAMINATED = "contaminated"
# Left out of a weighted mixture of sources (transforms/mixing.py).
DOWNSAMPLED = "downsampled"
# Decided after pass 1, for the whole run, as blocks of decisions (transforms/dedup.py).
DECIDED_REASONS = (*DUPLICATE_REASONS, DOWNSAMPLED)


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record came from: the input file and the 0-based row (line) within it."""

    file: str
    row: int

    def to_json(self) -> dict:
        return {"file": self.file, "row": self.row}


@dataclass(frozen=True, slots=True)
class Rejection:
    code: str
    message: str

    def to_json(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class TokenCount:
    """Tokens of one example.

    ``total``: every token the platform bills for the example (messages, tool definitions,
    OpenAI's per-message overhead). ``context``: the longest sequence the model sees, which
    the per-example limit applies to (equal to ``total`` except for preference pairs).
    ``trained``: tokens of the messages the model learns from. ``by_role``: ``total`` split by
    message role (``prompt``/``completion`` for the completion format), each message's overhead
    included; ``assistant_content``: the cookbook's content-only count of the assistant messages. ``estimated``: the
    count includes parts with no published counting method (tool calls, tools, images).
    """

    total: int
    context: int
    trained: int
    by_role: tuple[tuple[str, int], ...] = ()
    estimated: bool = False
    # The OpenAI cookbook's "assistant tokens": the assistant messages' content alone, without the
    # per-message overhead and role that ``by_role`` includes (tiktoken counting only; else 0).
    assistant_content: int = 0
    # A model's chat template: assistant turns with content whose trained span was not found.
    untrained_turns: int = 0


@dataclass(slots=True)
class Item:
    """One input row on its way to becoming an example.

    ``row`` is the row as read (kept for rejected output); ``fields`` is the cleaned copy the
    template sees; ``example``, ``target_row`` and ``tokens`` are filled in by later stages.
    """

    source: Source
    row: dict[str, Any]
    fields: dict[str, Any] | None = None
    example: dict[str, Any] | None = None
    # The row written for the example, in the target's shape, where it differs from the example
    # (made once, transforms/target_rules.py).
    target_row: dict[str, Any] | None = None
    tokens: "TokenCount | None" = None
    split: str | None = None
    warnings: tuple[str, ...] = ()
    # Digest of the normalised example, once something computed it (exact dedup, the split).
    content_key: bytes | None = None
    # What deduplication compares (see transforms/dedup.py): the exact digest, the band hashes
    # and the MinHash signature (uint32 array) the candidate pairs are verified with.
    dedup_key: bytes | None = None
    bands: tuple[int, ...] | None = None
    signature: Any = None


@dataclass(slots=True)
class Rejected:
    source: Source
    errors: list[Rejection]
    record: Any
    example: dict[str, Any] | None = None

    @classmethod
    def of(cls, item: Item, errors: list[Rejection]) -> "Rejected":
        return cls(item.source, errors, item.row, item.example)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(sorted({e.code for e in self.errors}))

    def to_json(self) -> dict:
        doc = {
            "source": self.source.to_json(),
            "errors": [e.to_json() for e in self.errors],
            "record": self.record,
        }
        if self.example is not None and self.example is not self.record:  # validate: the row is the example
            doc["example"] = self.example
        return doc


@dataclass(frozen=True, slots=True)
class FailedFile:
    """A file (or a part of it) that could not be read: corrupt, truncated, or without a column
    the recipe uses. Not a row: under ``input.on_bad_file: skip`` it is listed in stats.json."""

    path: str
    error: str

    def to_json(self) -> dict:
        return {"path": self.path, "error": self.error}


@dataclass(slots=True)
class Dropped:
    """A valid record the recipe chose not to keep: filtered, a duplicate of ``duplicate_of``, or
    sharing text with an evaluation set (``contaminated_by``: the set, its file and row, the words
    shared)."""

    source: Source
    reason: str
    record: Any
    duplicate_of: Source | None = None
    contaminated_by: dict | None = None

    def to_json(self) -> dict:
        doc = {"source": self.source.to_json(), "reason": self.reason}
        if self.duplicate_of is not None:
            doc["duplicate_of"] = self.duplicate_of.to_json()
        if self.contaminated_by is not None:
            doc["contaminated_by"] = self.contaminated_by
        doc["record"] = self.record
        return doc


def _json_default(value):
    # Parquet cells can hold bytes, dates, decimals: the rejected file must still say what was there.
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def dumps_line(doc: Any) -> bytes:
    return orjson.dumps(doc, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
