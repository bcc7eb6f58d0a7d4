"""Text cleaning on the fields a recipe names.

Steps always run in one fixed order (``STEP_ORDER``), whatever order a recipe lists them in:
the order is what makes cleaning idempotent (cleaning a cleaned value changes nothing).
Steps that can feed each other (HTML, NFKC, mojibake repair: ``&#xFF1C;b&#xFF1E;`` becomes a
tag only after both) are repeated until the text stops changing.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from typing import Any, Callable, Iterable, Mapping, Sequence

from schemas.recipe import DEFAULT_CLEAN_STEPS, CleanSpec
from schemas.records import KEPT, Item
from transforms.stage import BatchDoFn, BatchStage

# Zero-width characters that carry no meaning in training text. ZWJ/ZWNJ (U+200D/U+200C) stay:
# they join emoji sequences and shape Persian and Indic scripts.
_ZERO_WIDTH = "\u200b\u2060\ufeff\u180e"
# C0/C1 controls except tab and newline, plus the zero-width set above.
_CONTROL = re.compile(
    "[" + "".join(chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)))
    + _ZERO_WIDTH + "]"
)
_LINE_BREAKS = re.compile(r"\r\n?|\u2028|\u2029|\x85")
_CONTROL_OR_BREAK = re.compile(_CONTROL.pattern[:-1] + "\r\u2028\u2029]")
# Runs of horizontal whitespace after text on a line; leading indentation (code) is left alone.
_INNER_SPACE_RUNS = re.compile(r"(?<=\S)[ \t\u00a0\u3000]{2,}|(?<=\S)[\t\u00a0\u3000]")
_TRAILING_SPACE = re.compile(r"[ \t\u00a0\u3000]+$", re.MULTILINE)
_BLANK_LINE_RUNS = re.compile(r"\n{3,}")
_ANY_WHITESPACE = re.compile(r"\s+")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'`]+", re.IGNORECASE)
# Tag-shaped only: "a < b and c > d" is text, "<p class=x>" and "</div>" are tags.
_TAG = re.compile(r"<!--.*?-->|</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>", re.DOTALL)
_BLOCK_END = re.compile(r"<br\s*/?>|</(?:p|div|li|tr|h[1-6]|blockquote|pre)\s*>", re.IGNORECASE)


def fix_mojibake(text: str) -> str:
    """Repair text decoded with the wrong codec ("cafÃ©" -> "café"), and nothing else."""
    import ftfy

    return ftfy.fix_text(text, config=_ftfy_config())


@functools.lru_cache(maxsize=1)
def _ftfy_config():
    import ftfy

    # Only the encoding repairs: quotes, ligatures, widths and normalisation are other steps' business.
    return ftfy.TextFixerConfig(
        unescape_html=False,
        remove_terminal_escapes=True,
        fix_encoding=True,
        restore_byte_a0=True,
        replace_lossy_sequences=True,
        decode_inconsistent_utf8=True,
        fix_c1_controls=True,
        fix_latin_ligatures=False,
        fix_character_width=False,
        uncurl_quotes=False,
        fix_line_breaks=False,
        fix_surrogates=True,
        remove_control_chars=False,
        normalization=None,
    )


def strip_html(text: str) -> str:
    """Unescape entities and strip tags until neither changes anything; block ends become newlines.

    Text that mentions tags only in escaped form (``&lt;div&gt;``) loses them: after
    unescaping, a mention cannot be told from a tag.
    """
    while True:
        cleaned = html.unescape(_TAG.sub("", _BLOCK_END.sub("\n", text)))
        if cleaned == text:
            return text
        text = cleaned


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def strip_control(text: str) -> str:
    if not _CONTROL_OR_BREAK.search(text):  # one scan: most text has neither
        return text
    return _CONTROL.sub("", _LINE_BREAKS.sub("\n", text))


def strip_urls(text: str) -> str:
    return _URL.sub("", text)


_ODD_SPACES = ("\t", "\u00a0", "\u3000")


def collapse_whitespace(text: str) -> str:
    """Within lines, runs of spaces after text become one space; trailing spaces go; at most one
    blank line in a row. Newlines and leading indentation stay, so code keeps its shape."""
    # Substring checks first: most text needs none of the regexes, and `in` is far cheaper.
    odd = any(space in text for space in _ODD_SPACES)
    if odd or "  " in text:
        text = _INNER_SPACE_RUNS.sub(" ", text)
    if odd or " \n" in text or text.endswith(" "):
        text = _TRAILING_SPACE.sub("", text)
    if "\n\n\n" in text:
        text = _BLANK_LINE_RUNS.sub("\n\n", text)
    return text


def collapse_all_whitespace(text: str) -> str:
    """Every run of whitespace, newlines included, becomes one space."""
    return _ANY_WHITESPACE.sub(" ", text)


def trim(text: str) -> str:
    return text.strip()


STEPS: dict[str, Callable[[str], str]] = {
    "fix_mojibake": fix_mojibake,
    "html": strip_html,
    "strip_control": strip_control,
    "nfc": nfc,
    "nfkc": nfkc,
    "strip_urls": strip_urls,
    "collapse_whitespace": collapse_whitespace,
    "collapse_all_whitespace": collapse_all_whitespace,
    "trim": trim,
}
STEP_ORDER = tuple(STEPS)
# Steps whose output another step can change again (see the module docstring).
_INTERACTING = frozenset({"fix_mojibake", "html", "nfkc"})
_MAX_ROUNDS = 8


def ordered_steps(steps: Iterable[str]) -> tuple[str, ...]:
    chosen = set(steps)
    unknown = chosen - set(STEPS)
    if unknown:
        raise ValueError(f"unknown cleaning step(s) {sorted(unknown)}; known: {', '.join(STEP_ORDER)}")
    if {"collapse_whitespace", "collapse_all_whitespace"} <= chosen:
        raise ValueError("choose one of collapse_whitespace (keeps lines) and collapse_all_whitespace")
    return tuple(step for step in STEP_ORDER if step in chosen)


@functools.lru_cache(maxsize=64)
def _plan(steps: tuple[str, ...]) -> tuple[tuple[Callable[[str], str], ...], int]:
    """The step functions in their order, and how many rounds (see the module docstring)."""
    ordered = ordered_steps(steps)
    return tuple(STEPS[step] for step in ordered), _MAX_ROUNDS if _INTERACTING.intersection(ordered) else 1


def clean_text(text: str, steps: Sequence[str] = DEFAULT_CLEAN_STEPS) -> str:
    functions, rounds = _plan(tuple(steps))
    for _ in range(rounds):
        before = text
        for function in functions:
            text = function(text)
        if text == before:
            break
    return text


def clean_fields(
    row: dict[str, Any],
    steps: Sequence[str],
    fields: Iterable[str] | None = None,
    per_field: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """A copy of ``row`` with the named fields cleaned (every field when None), the strings inside
    lists and structs included; fields in ``per_field`` get their own steps."""
    per_field = per_field or {}
    names = set(row.keys() if fields is None else fields) | set(per_field)
    cleaned = dict(row)
    for name in names:
        value = row.get(name)
        if isinstance(value, str):
            cleaned[name] = clean_text(value, per_field.get(name, steps))
        elif isinstance(value, (list, tuple, dict)):
            cleaned[name] = clean_value(value, per_field.get(name, steps))
    return cleaned


def clean_value(value: Any, steps: Sequence[str]) -> Any:
    """Every string inside ``value`` cleaned, at any depth (lists, tuples, mapping values): the
    structs, lists, maps and conversations a column can hold. Keys and non-strings stay."""
    if isinstance(value, str):
        return clean_text(value, steps)
    if isinstance(value, list):
        return [clean_value(item, steps) for item in value]
    if isinstance(value, tuple):
        return tuple(clean_value(item, steps) for item in value)
    if isinstance(value, dict):
        return {key: clean_value(item, steps) for key, item in value.items()}
    return value


class _CleanFn(BatchDoFn):
    STAGE = "CleanFields"

    def __init__(self, steps: tuple[str, ...], fields: tuple[str, ...] | None, per_field: dict[str, tuple[str, ...]]):
        super().__init__()
        self._steps = steps
        self._fields = fields
        self._per_field = per_field

    def handle(self, item: Item, emit) -> None:
        source = item.fields if item.fields is not None else item.row
        item.fields = clean_fields(source, self._steps, self._fields, self._per_field)
        emit(KEPT, item)


class CleanFields(BatchStage):
    """Clean the fields the recipe's ``clean`` section names; returns ``(batches, rejected)``."""

    def __init__(self, *, spec: CleanSpec = CleanSpec()):
        per_field = {name: ordered_steps(field_steps) for name, field_steps in spec.per_field.items()}
        super().__init__(_CleanFn(ordered_steps(spec.steps), None if spec.fields is None else tuple(spec.fields), per_field))
