"""Basic text cleaning on the fields a recipe names.

Every step is idempotent, so cleaning a cleaned value changes nothing.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from typing import Any, Callable, Iterable, Sequence

import apache_beam as beam

from schemas.recipe import DEFAULT_CLEAN_STEPS
from schemas.records import Item
from transforms.stage import RecordStage, StageCounters

# Zero-width characters that carry no meaning in training text. ZWJ/ZWNJ (U+200D/U+200C) stay:
# they join emoji sequences and shape Persian and Indic scripts.
_ZERO_WIDTH = "\u200b\u2060\ufeff\u180e"
# C0/C1 controls except tab and newline, plus the zero-width set above.
_CONTROL = re.compile(
    "[" + "".join(chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)))
    + _ZERO_WIDTH + "]"
)
_LINE_BREAKS = re.compile(r"\r\n?|\u2028|\u2029")
# Two or more spaces after a non-space: leading indentation (code) is left alone.
_SPACE_RUNS = re.compile(r"(?<=\S)[ \u00a0]{2,}")


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def strip_control(text: str) -> str:
    return _CONTROL.sub("", _LINE_BREAKS.sub("\n", text))


def collapse_spaces(text: str) -> str:
    return _SPACE_RUNS.sub(" ", text)


def trim(text: str) -> str:
    return text.strip()


STEPS: dict[str, Callable[[str], str]] = {
    "nfc": nfc,
    "strip_control": strip_control,
    "collapse_spaces": collapse_spaces,
    "trim": trim,
}


def clean_text(text: str, steps: Sequence[str] = DEFAULT_CLEAN_STEPS) -> str:
    for step in steps:
        text = STEPS[step](text)
    return text


def clean_fields(
    row: dict[str, Any], steps: Sequence[str], fields: Iterable[str] | None = None
) -> dict[str, Any]:
    """A copy of ``row`` with the named string fields cleaned (every string field when None)."""
    names = row.keys() if fields is None else fields
    cleaned = dict(row)
    for name in names:
        value = row.get(name)
        if isinstance(value, str):
            cleaned[name] = clean_text(value, steps)
    return cleaned


class _CleanFn(beam.DoFn):
    def __init__(self, steps: tuple[str, ...], fields: tuple[str, ...] | None):
        self._steps = steps
        self._fields = fields
        self._counters = StageCounters("CleanFields")

    def process(self, item: Item):
        self._counters.total.inc()
        cleaned = clean_fields(item.row, self._steps, self._fields)
        self._counters.kept.inc()
        yield dataclasses.replace(item, fields=cleaned)


class CleanFields(RecordStage):
    """Clean the named fields of each record; returns ``(items, rejected)``."""

    def __init__(self, *, steps: Sequence[str] = DEFAULT_CLEAN_STEPS, fields: Sequence[str] | None = None):
        unknown = [s for s in steps if s not in STEPS]
        if unknown:
            raise ValueError(f"unknown cleaning step(s) {unknown}; known: {', '.join(STEPS)}")
        super().__init__(_CleanFn(tuple(steps), None if fields is None else tuple(fields)))
