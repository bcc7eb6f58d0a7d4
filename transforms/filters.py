"""Quality filters: records that are valid but not worth training on, dropped with a named reason.

Each filter is a plain check on a rendered example (and the row's fields); the first one that
fails names the drop reason (``FILTER_REASONS`` in ``schemas/records.py``). Drops are not
rejections: the record was fine, the recipe chose not to keep it.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import numpy as np

from schemas.formats import example_texts
from schemas.recipe import WHOLE_EXAMPLE, FiltersSpec
from schemas.records import (
    FILTER_BLOCKLIST, FILTER_ECHO, FILTER_MAX_CHARS, FILTER_MAX_TOKENS, FILTER_MIN_CHARS, FILTER_MIN_TOKENS,
    FILTER_REPETITION, KEPT, Dropped, Item,
)
from transforms.stage import BatchDoFn, BatchStage
from transforms.text import normalize_text

# Repetition is measured on texts long enough for it to mean something.
WORD_NGRAM, MIN_WORDS = 3, 12
CHAR_NGRAM, MIN_CHARS_FOR_REPETITION = 10, 100
_WORD = re.compile(r"\w+")


def _duplicate_share(values: np.ndarray, n: int) -> float:
    """Share of the n-grams of ``values`` (integer codes) that repeat an earlier one.

    N-grams are hashed with a polynomial over the codes, vectorised: exact up to hash
    collisions, which at 64 bits do not matter here.
    """
    count = len(values) - n + 1
    if count <= 0:
        return 0.0
    values = values.astype(np.uint64)
    hashes = np.zeros(count, dtype=np.uint64)
    for offset in range(n):
        hashes = hashes * np.uint64(1_000_003) + values[offset : offset + count]
    return 1.0 - len(set(hashes.tolist())) / count  # a set beats np.unique on short arrays


def repetition(text: str) -> float:
    """The larger of the duplicated word-3-gram share and the duplicated character-10-gram share.

    "Eat a banana! " * 2000 scores close to 1; ordinary prose close to 0.
    """
    word_share = char_share = 0.0
    words = _WORD.findall(text.casefold())
    if len(words) >= MIN_WORDS:
        codes: dict[str, int] = {}
        word_share = _duplicate_share(np.array([codes.setdefault(w, len(codes)) for w in words]), WORD_NGRAM)
    if len(text) >= MIN_CHARS_FOR_REPETITION:
        char_share = _duplicate_share(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32), CHAR_NGRAM)
    return max(word_share, char_share)


def is_echo(example: dict[str, Any]) -> bool:
    """The answer repeats the prompt: an assistant message equal to the user message before it."""
    if "prompt" in example:
        return normalize_text(str(example.get("prompt"))) == normalize_text(str(example.get("completion")))
    messages = list(example.get("messages") or (example.get("input") or {}).get("messages") or ())
    messages += list(example.get("preferred_output") or ())
    last_user = None
    for message in messages:
        content = message.get("content")
        if not isinstance(content, str):
            continue
        if message.get("role") == "user":
            last_user = normalize_text(content)
        elif message.get("role") == "assistant" and last_user is not None and normalize_text(content) == last_user:
            return True
    return False


def blocklist_pattern(terms: Iterable[str]) -> re.Pattern | None:
    terms = [t for t in terms if t]
    if not terms:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in terms) + r")(?!\w)", re.IGNORECASE)


class ExampleFilter:
    """Applies a ``FiltersSpec``; ``reason(item)`` is the first failing filter's reason, or None."""

    def __init__(self, spec: FiltersSpec, counter=None):
        """``counter``: the target's token counter (its ``text(str) -> int``), for token bounds on fields."""
        self._spec = spec
        self._blocklist = blocklist_pattern(spec.blocklist)
        self._count = counter.text if counter is not None else None

    def _value(self, item: Item, name: str, measure: str) -> int | None:
        if name == WHOLE_EXAMPLE:
            if measure == "tokens":
                return item.tokens.total if item.tokens is not None else None
            return sum(len(t) for t in example_texts(item.example))
        value = (item.fields or item.row).get(name)
        if not isinstance(value, str):
            return 0 if value is None else None
        return self._count(value) if measure == "tokens" else len(value)

    def _outside(self, item: Item, bounds: dict[str, int], measure: str, below: bool) -> bool:
        for name, bound in bounds.items():
            value = self._value(item, name, measure)
            if value is not None and (value < bound if below else value > bound):
                return True
        return False

    def reason(self, item: Item) -> str | None:
        spec = self._spec
        if self._outside(item, spec.min_chars, "chars", below=True):
            return FILTER_MIN_CHARS
        if self._outside(item, spec.max_chars, "chars", below=False):
            return FILTER_MAX_CHARS
        if self._outside(item, spec.min_tokens, "tokens", below=True):
            return FILTER_MIN_TOKENS
        if self._outside(item, spec.max_tokens, "tokens", below=False):
            return FILTER_MAX_TOKENS
        texts = example_texts(item.example)
        if spec.max_repetition is not None and any(repetition(t) > spec.max_repetition for t in texts):
            return FILTER_REPETITION
        if self._blocklist is not None and any(self._blocklist.search(t) for t in texts):
            return FILTER_BLOCKLIST
        if spec.drop_echoes and is_echo(item.example):
            return FILTER_ECHO
        return None


class _FilterFn(BatchDoFn):
    STAGE = "FilterExamples"

    def __init__(self, spec: FiltersSpec, source):
        super().__init__()
        self._spec = spec
        self._source = source
        self._filter: ExampleFilter | None = None

    def setup(self):
        counter = self._source.load() if self._spec.needs_encoding() else None
        self._filter = ExampleFilter(self._spec, counter)

    def handle(self, item: Item, emit) -> None:
        reason = self._filter.reason(item)
        if reason is None:
            emit(KEPT, item)
            return
        self._counters.dropped(reason).inc()
        emit(reason, Dropped(item.source, reason, item.row))


class FilterExamples(BatchStage):
    """Drop examples the recipe's filters reject. Returns ``(batches, rejected, *dropped)``, one
    dropped PCollection (of batches) per reason in ``spec.reasons()``. ``source``: the target's
    token source (``TiktokenSource``, ...), needed by token bounds on fields."""

    def __init__(self, *, spec: FiltersSpec, source=None):
        if spec.needs_encoding() and source is None:
            raise ValueError("token filters on fields need the model's encoding")
        super().__init__(_FilterFn(spec, source), extra_outputs=spec.reasons())
