"""The platform's format rules for a rendered example, as plain functions that never raise.

Core rules here (roles, content, an assistant message, weights); the token limit is checked
where tokens are counted.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from schemas.records import (
    DATA_TYPE,
    EXAMPLE_MISSING_ASSISTANT_MESSAGE,
    INVALID_COMPLETION,
    INVALID_WEIGHT,
    MESSAGE_MISSING_KEY,
    MESSAGE_UNRECOGNIZED_KEY,
    MISSING_CONTENT,
    MISSING_MESSAGES_LIST,
    UNRECOGNIZED_ROLE,
    Item,
    Rejection,
)
from transforms.stage import RecordStage, StageCounters, reject

ROLES = frozenset({"system", "user", "assistant", "tool", "function"})
MESSAGE_KEYS = frozenset({"role", "content", "name", "weight", "function_call", "tool_calls", "tool_call_id"})


def _validate_message(index: int, message: Any) -> list[Rejection]:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        return [Rejection(DATA_TYPE, f"{where} is {type(message).__name__}, expected an object")]
    errors = []
    for key in ("role", "content"):
        if key not in message:
            errors.append(Rejection(MESSAGE_MISSING_KEY, f"{where} has no {key!r}"))
    for key in sorted(set(message) - MESSAGE_KEYS):
        errors.append(Rejection(MESSAGE_UNRECOGNIZED_KEY, f"{where} has unrecognized key {key!r}"))
    role = message.get("role")
    if "role" in message and not (isinstance(role, str) and role in ROLES):
        errors.append(
            Rejection(UNRECOGNIZED_ROLE, f"{where}.role is {role!r}; expected one of {', '.join(sorted(ROLES))}")
        )
    content = message.get("content")
    if "content" in message and not (isinstance(content, str) and content.strip()):
        errors.append(Rejection(MISSING_CONTENT, f"{where}.content is empty or not a string"))
    if "weight" in message:
        if role != "assistant":
            errors.append(Rejection(INVALID_WEIGHT, f"{where}.weight is only allowed on assistant messages"))
        elif type(message["weight"]) is not int or message["weight"] not in (0, 1):
            errors.append(Rejection(INVALID_WEIGHT, f"{where}.weight is {message['weight']!r}; expected 0 or 1"))
    return errors


def validate_chat(example: Any) -> list[Rejection]:
    if not isinstance(example, dict):
        return [Rejection(DATA_TYPE, f"example is {type(example).__name__}, expected an object")]
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return [Rejection(MISSING_MESSAGES_LIST, "example has no non-empty 'messages' list")]
    errors = []
    for index, message in enumerate(messages):
        errors.extend(_validate_message(index, message))
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        errors.append(Rejection(EXAMPLE_MISSING_ASSISTANT_MESSAGE, "example has no assistant message"))
    return errors


def validate_completion(example: Any) -> list[Rejection]:
    if not isinstance(example, dict):
        return [Rejection(DATA_TYPE, f"example is {type(example).__name__}, expected an object")]
    errors = []
    for key in ("prompt", "completion"):
        value = example.get(key)
        if not isinstance(value, str):
            errors.append(Rejection(INVALID_COMPLETION, f"{key!r} is {type(value).__name__}, expected a string"))
    completion = example.get("completion")
    if isinstance(completion, str) and not completion.strip():
        errors.append(Rejection(INVALID_COMPLETION, "'completion' is empty"))
    for key in sorted(set(example) - {"prompt", "completion"}):
        errors.append(Rejection(INVALID_COMPLETION, f"unrecognized key {key!r}"))
    return errors


VALIDATORS = {"chat": validate_chat, "completion": validate_completion}


def validate_example(example: Any, fmt: str) -> list[Rejection]:
    return VALIDATORS[fmt](example)


class _ValidateFn(beam.DoFn):
    def __init__(self, fmt: str):
        self._validate = VALIDATORS[fmt]
        self._counters = StageCounters("ValidateExamples")

    def process(self, item: Item):
        self._counters.total.inc()
        errors = self._validate(item.example)
        if errors:
            yield reject(item, self._counters, *errors)
            return
        self._counters.kept.inc()
        yield item


class ValidateExamples(RecordStage):
    """Check each example against the platform's format rules; returns ``(items, rejected)``."""

    def __init__(self, *, format: str):
        if format not in VALIDATORS:
            raise ValueError(f"unknown example format {format!r}; known: {', '.join(VALIDATORS)}")
        super().__init__(_ValidateFn(format))
