"""The platform's rules applied to every example (``transforms/rules.py`` holds the rules)."""

from __future__ import annotations

from typing import Any

from schemas.recipe import LimitsSpec
from schemas.formats import known_keys_only
from schemas.records import KEPT, REJECTED, TOO_MANY_MESSAGES, UNRECOGNIZED_EXAMPLE_KEY, Item, Rejection
from transforms.rules import VALIDATORS, validate_example
from transforms.stage import BatchDoFn, BatchStage


def _message_list_length(example: Any, fmt: str) -> int:
    """Length of the example's message list, 0 where there is none (validation reports that)."""
    if not isinstance(example, dict):
        return 0
    holder = example.get("input") if fmt == "preference" else example
    messages = holder.get("messages") if isinstance(holder, dict) else None
    return len(messages) if isinstance(messages, list) else 0


class _ValidateFn(BatchDoFn):
    STAGE = "ValidateExamples"

    def __init__(self, fmt: str, reject_blank: bool, max_messages: int, open_weights: bool):
        super().__init__()
        self._open_weights = open_weights
        self._format = fmt
        self._reject_blank = reject_blank
        self._max_messages = max_messages

    def handle(self, item: Item, emit) -> None:
        count = _message_list_length(item.example, self._format)
        if count > self._max_messages:  # before the checks, whose cost grows with every message
            message = f"example has {count:,} messages; limits.max_messages is {self._max_messages:,}"
            emit(REJECTED, self.reject(item, Rejection(TOO_MANY_MESSAGES, message)))
            return
        found = validate_example(item.example, self._format, reject_blank=self._reject_blank,
                                 open_weights=self._open_weights)
        if found.errors:
            emit(REJECTED, self.reject(item, *found.errors))
            return
        trimmed = known_keys_only(item.example, self._format)
        if trimmed is not item.example:  # keys no platform reads (and perhaps personal data) are not written
            found.warnings.add(UNRECOGNIZED_EXAMPLE_KEY)
            item.example = trimmed
        if found.warnings:
            item.warnings = tuple(sorted(set(item.warnings) | found.warnings))
        emit(KEPT, item)


class ValidateExamples(BatchStage):
    """Check each example against the platform's format rules; returns ``(batches, rejected)``.

    ``reject_blank`` rejects whitespace-only content instead of warning about it; ``open_weights``
    (targets hf and gpt-oss) lets assistant messages carry their reasoning and warns of weights.
    """

    def __init__(self, *, format: str, reject_blank: bool = False, limits: LimitsSpec = LimitsSpec(),
                 open_weights: bool = False):
        if format not in VALIDATORS:
            raise ValueError(f"unknown example format {format!r}; known: {', '.join(VALIDATORS)}")
        super().__init__(_ValidateFn(format, reject_blank, limits.max_messages, open_weights))
