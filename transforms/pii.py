"""Finding and redacting personal data and secrets in text fields.

Detectors favour precision: a card number must pass the Luhn check and start like a card
network's number, an IBAN must pass its mod-97 check, an IP address must parse, and phone
numbers are found by Google's libphonenumber (``phonenumbers``), which tells a valid number
from a date, a version string or an order number. Redacted values never leave this module:
callers get the redacted text and counts per kind.
"""

from __future__ import annotations

import ipaddress
import re
import time
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, Sequence

from schemas.recipe import PII_KINDS, LimitsSpec, PiiSpec
from schemas.records import KEPT, PII_FOUND, PII_TIMEOUT, REJECTED, Item, Rejection
from transforms.stage import BatchDoFn, BatchStage

# The kinds are the recipe's (schemas/recipe.py PII_KINDS); this module only orders them.
EMAIL, PHONE, IP, CARD, IBAN, SECRET = "email", "phone", "ip", "card", "iban", "secret"
# Detection order: where two detectors claim overlapping text, the earlier kind wins
# (a key inside a URL is a secret, an IBAN's digits are not a phone number).
DETECTION_ORDER = (SECRET, EMAIL, IBAN, CARD, IP, PHONE)
DEFAULT_REPLACEMENTS = {kind: f"[{kind.upper()}]" for kind in PII_KINDS}
PII_OUTPUT = "pii"

# A private key runs from its BEGIN line to its END line. Not one regex: ``BEGIN.*?END`` tries
# every BEGIN against the rest of the text, quadratic in a text of many BEGINs and no END.
_KEY_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_KEY_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_SECRETS = re.compile(
    "|".join(
        [
            r"\bsk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",  # OpenAI, Anthropic
            r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",  # AWS access key ids
            r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{22,}",  # GitHub
            r"\bxox[abposr]-[A-Za-z0-9-]{10,}",  # Slack tokens
            r"https://hooks\.slack\.com/services/[A-Za-z0-9/]+",
            r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWTs
        ]
    ),
    re.DOTALL,
)
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d.-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
# "v1.2.3.4", "version 10.0.0.1": a version string, not an address.
_VERSION_BEFORE = re.compile(r"(?:\bv|version\s*|build\s*)$", re.IGNORECASE)
_DATA_URL = re.compile(r"data:[\w.+-]+/[\w.+-]+(?:;[\w=.-]+)*;base64,")
_PHONE_CANDIDATE = re.compile(r"\d(?:[\s().-]*\d){6,}")
_GROUPED = re.compile(r"\d[\s().-]+\d|^\(")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_network(digits: str) -> bool:
    """Starts like a card network's number (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay)."""
    two, four = int(digits[:2]), int(digits[:4])
    return (
        digits[0] == "4"
        or 51 <= two <= 55
        or 2221 <= four <= 2720
        or two in (34, 37, 36, 38, 62, 65)
        or four == 6011
        or 644 <= int(digits[:3]) <= 649
        or 3528 <= four <= 3589
        or 300 <= int(digits[:3]) <= 305
    )


def iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


# Cheap tests that rule a detector out before its regex runs: most text has no "@", no digit.
_SECRET_MARKERS = ("sk-", "AKIA", "ASIA", "ABIA", "ACCA", "gh", "github_pat_", "xox", "hooks.slack", "eyJ", "PRIVATE KEY")
_DIGIT = re.compile(r"\d")


def _emails(text: str) -> Iterable[tuple[int, int]]:
    if "@" not in text:
        return ()
    return (m.span() for m in _EMAIL.finditer(text))


def _private_keys(text: str) -> Iterable[tuple[int, int]]:
    position = 0
    while (begin := _KEY_BEGIN.search(text, position)) is not None:
        end = _KEY_END.search(text, begin.end())
        if end is None:  # no END after this BEGIN: none after any later BEGIN either
            return
        yield begin.start(), end.end()
        position = end.end()


def _secrets(text: str) -> Iterable[tuple[int, int]]:
    if not any(marker in text for marker in _SECRET_MARKERS):
        return
    if "PRIVATE KEY" in text:
        yield from _private_keys(text)
    yield from (m.span() for m in _SECRETS.finditer(text))


def _ibans(text: str) -> Iterable[tuple[int, int]]:
    if not _DIGIT.search(text):
        return ()
    return (m.span() for m in _IBAN.finditer(text) if iban_valid(m.group()))


def _cards(text: str) -> Iterable[tuple[int, int]]:
    if not _DIGIT.search(text):
        return
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if 13 <= len(digits) <= 19 and _card_network(digits) and luhn_valid(digits):
            yield m.span()


def _ips(text: str) -> Iterable[tuple[int, int]]:
    if ":" not in text and not _DIGIT.search(text):
        return
    for m in _IPV4.finditer(text):
        if not _VERSION_BEFORE.search(text[max(0, m.start() - 12) : m.start()]):
            yield m.span()
    for m in _IPV6.finditer(text):
        if m.group().count(":") >= 2 and any(c.isalnum() for c in m.group()):
            try:
                ipaddress.IPv6Address(m.group())
            except ValueError:
                continue
            yield m.span()


# libphonenumber's matcher reads a long text in windows: between two windows the row's time
# budget is checked. A window sees PHONE_CONTEXT characters on both sides of the part it owns,
# far more than any phone number, so a number across a window's edge is found whole, once.
PHONE_WINDOW = 4_096
PHONE_CONTEXT = 128


def phone_windows(length: int) -> Iterable[tuple[int, int, int, int]]:
    """``(start, end, own_start, own_end)`` of each window over a text of ``length``: matches
    that start in ``[own_start, own_end)`` are the window's."""
    for own in range(0, length, PHONE_WINDOW):
        own_end = min(own + PHONE_WINDOW, length)
        yield max(0, own - PHONE_CONTEXT), min(length, own_end + PHONE_CONTEXT), own, own_end


class _Phones:
    def __init__(self, regions: Sequence[str]):
        # None finds numbers written in international format (+CC ...) whatever the region.
        self._regions = [None, *regions]

    def __call__(self, text: str, tick: Callable[[], None] = lambda: None) -> Iterable[tuple[int, int]]:
        if not _PHONE_CANDIDATE.search(text):  # libphonenumber is slow; most text has no number
            return
        import phonenumbers

        for region in self._regions:
            if region is None and "+" not in text and "\uff0b" not in text:  # international numbers start with +
                continue
            for start, end, own_start, own_end in phone_windows(len(text)):
                tick()
                window = text[start:end]
                if not _PHONE_CANDIDATE.search(window):
                    continue
                for match in phonenumbers.PhoneNumberMatcher(window, region, leniency=phonenumbers.Leniency.VALID):
                    if not own_start <= start + match.start < own_end:
                        continue
                    # Written nationally, a phone number is grouped ("(415) 555-2671"); a bare run of
                    # digits is an invoice, order or account number as often as a phone number.
                    if region is not None and not match.raw_string.startswith("+") and not _GROUPED.search(match.raw_string):
                        continue
                    yield start + match.start, start + match.end


class PiiTimeout(Exception):
    """A row's scan went over ``limits.max_pii_seconds``: its values could not be checked."""


# Text scanned between two reads of the CPU clock (a clock read is a system call).
CHARS_PER_CLOCK_READ = 4_096


@dataclass(frozen=True)
class PiiFinding:
    kind: str
    start: int
    end: int


class PiiScanner:
    """Finds the chosen kinds in text and redacts them. Build once per worker: it holds compiled state."""

    def __init__(
        self,
        kinds: Sequence[str] = PII_KINDS,
        *,
        phone_regions: Sequence[str] = ("US",),
        replacements: Mapping[str, str] | None = None,
        max_seconds: float | None = None,
    ):
        unknown = set(kinds) - set(PII_KINDS)
        if unknown:
            raise ValueError(f"unknown PII kind(s) {sorted(unknown)}; known: {', '.join(PII_KINDS)}")
        detectors = {SECRET: _secrets, EMAIL: _emails, IBAN: _ibans, CARD: _cards, IP: _ips, PHONE: _Phones(phone_regions)}
        self._detectors = [(kind, detectors[kind]) for kind in DETECTION_ORDER if kind in kinds]
        self._replacements = {**DEFAULT_REPLACEMENTS, **(replacements or {})}
        self._max_seconds = max_seconds
        self._deadline: float | None = None
        self._unclocked = 0  # characters scanned since the clock was last read

    def start(self) -> None:
        """A new row: with ``max_seconds``, its scan must end within that much CPU time."""
        if self._max_seconds is not None:
            self._deadline = time.thread_time() + self._max_seconds
            self._unclocked = 0

    def _tick(self) -> None:
        if self._deadline is not None and time.thread_time() > self._deadline:
            self._deadline = None  # one raise per row
            raise PiiTimeout(f"scanning for personal data took more than {self._max_seconds:g} s of CPU time "
                             "(limits.max_pii_seconds)")

    def _scanned(self, chars: int) -> None:
        self._unclocked += chars
        if self._unclocked >= CHARS_PER_CLOCK_READ:
            self._unclocked = 0
            self._tick()

    def find(self, text: str) -> list[PiiFinding]:
        # Taken spans, sorted and disjoint: a new span is checked against its two neighbours
        # (a text with 50,000 phone numbers is not 50,000 x 50,000 comparisons).
        starts: list[int] = []
        taken: list[PiiFinding] = []
        long = len(text) > CHARS_PER_CLOCK_READ
        for kind, detect in self._detectors:
            if long:
                self._tick()
            found = detect(text, self._tick) if isinstance(detect, _Phones) else detect(text)
            for start, end in found:
                index = bisect_right(starts, start)
                if (index and taken[index - 1].end > start) or (index < len(starts) and starts[index] < end):
                    continue
                starts.insert(index, start)
                taken.insert(index, PiiFinding(kind, start, end))
        return taken

    def redact(self, text: str) -> tuple[str, Counter]:
        """The text with every finding replaced, and the number of findings per kind."""
        findings = self.find(text)
        if not findings:
            return text, Counter()
        parts, position = [], 0
        for finding in findings:
            parts.append(text[position : finding.start])
            parts.append(self._replacements[finding.kind])
            position = finding.end
        parts.append(text[position:])
        return "".join(parts), Counter(f.kind for f in findings)

    def redact_nested(self, value: Any, where: str, findings: list[tuple[str, str]]) -> Any:
        """``value`` with every string inside it redacted, at any depth: lists, tuples (Arrow maps
        arrive as lists of pairs), mappings (keys too), as Parquet structs, JSON columns,
        conversations and examples hold them. Appends ``(path, kind)`` per finding to ``findings``;
        a path names where in the value it was (``conversation[2].content``), never what."""
        if isinstance(value, str):
            if _DATA_URL.match(value):  # an inlined image is base64, not text: a match there is noise
                return value
            self._scanned(len(value) + 64)
            text, counts = self.redact(value)
            findings.extend((where, kind) for kind, n in sorted(counts.items()) for _ in range(n))
            return text
        if isinstance(value, (bytes, bytearray)):
            # A template can decode bytes into the example ({{ blob.decode('utf-8') }}): scanned as
            # text; the bytes are kept as they were but for what is redacted.
            text = bytes(value).decode("utf-8", errors="surrogateescape")
            before = len(findings)
            redacted = self.redact_nested(text, where, findings)
            return redacted.encode("utf-8", errors="surrogateescape") if len(findings) > before else value
        if isinstance(value, (list, tuple)):
            items = [self.redact_nested(item, f"{where}[{index}]", findings) for index, item in enumerate(value)]
            return items if isinstance(value, list) else tuple(items)
        if isinstance(value, dict):
            redacted = {}
            for key, item in value.items():
                if isinstance(key, str):
                    key = self.redact_nested(key, f"{where} (a key)", findings)
                    while key in redacted:  # two keys redacted alike stay two keys
                        key += "#"
                redacted[key] = self.redact_nested(item, f"{where}.{key}" if where else str(key), findings)
            return redacted
        return value

    def redact_value(self, value: Any, found: Counter | None = None) -> Any:
        """Redact every string inside a JSON-like value (for rejected output); count into ``found``."""
        findings: list[tuple[str, str]] = []
        redacted = self.redact_nested(value, "", findings)
        if found is not None:
            found.update(kind for _, kind in findings)
        return redacted


def scanner_for(spec: PiiSpec, limits: LimitsSpec | None = None) -> PiiScanner:
    return PiiScanner(spec.kinds, phone_regions=spec.phone_regions, replacements=spec.replacements,
                      max_seconds=limits.max_pii_seconds if limits is not None else None)


class _RedactFn(BatchDoFn):
    STAGE = "RedactPii"

    def __init__(self, spec: PiiSpec, limits: LimitsSpec):
        super().__init__()
        self._spec = spec
        self._limits = limits
        self._actions = spec.actions()
        self._scanner: PiiScanner | None = None

    def setup(self):
        self._scanner = scanner_for(self._spec, self._limits)

    def handle(self, item: Item, emit) -> None:
        self._scanner.start()
        try:
            self._redact(item, emit)
        except PiiTimeout as error:
            # Values that could not be checked are not written anywhere, rejected/ included.
            item.row = withheld(item.row, "not scanned for personal data in time")
            item.fields = None
            emit(REJECTED, self.reject(item, Rejection(PII_TIMEOUT, str(error))))

    def _redact(self, item: Item, emit) -> None:
        fields = dict(item.fields if item.fields is not None else item.row)
        row = dict(item.row)  # copies: the input record is not ours to change
        findings: list[tuple[str, str]] = []
        for name in self._spec.fields or list(fields):
            value = fields.get(name)
            if value is None:
                continue
            before = len(findings)
            redacted = self._scanner.redact_nested(value, name, findings)
            if len(findings) > before:
                fields[name] = redacted
                row[name] = redacted  # rejected and dropped output show the row without the values
            elif row.get(name) is not None and row[name] is not value and row[name] != value:
                # Cleaning changed the value: what it removed (an HTML attribute, a URL) may hold
                # something the row in rejected/ and dropped/ must not show.
                raw = self._scanner.redact_nested(row[name], name, findings)
                if len(findings) > before:
                    row[name] = raw
        if not findings:  # the common case: the record passes unchanged
            emit(KEPT, item)
            return
        found = Counter(kind for _, kind in findings)
        emit(PII_OUTPUT, tuple(sorted(found.items())))
        item.row, item.fields = row, fields
        rejected_by = sorted({f"{where!r} contains {kind}" for where, kind in findings if self._actions[kind] == "reject"})
        if rejected_by:
            emit(REJECTED, self.reject(item, *(Rejection(PII_FOUND, f"field {message}") for message in rejected_by)))
        else:
            emit(KEPT, item)


class RedactPii(BatchStage):
    """Redact (or reject on) personal data and secrets in the chosen fields.

    Returns ``(batches, rejected, found)``; ``found`` holds, per batch, one ``((kind, count), ...)``
    tuple per record that had any, for the stats.
    """

    def __init__(self, *, spec: PiiSpec, limits: LimitsSpec = LimitsSpec()):
        super().__init__(_RedactFn(spec, limits), extra_outputs=(PII_OUTPUT,))


# Data quoted in a message (a file's first line, a header, a preview of an over-long cell) is
# redacted as a window this much longer than the quote, then cut: a secret across the cut is
# redacted whole, not left in part.
QUOTE_MARGIN = 1_000


@lru_cache(maxsize=1)
def _quote_scanner() -> PiiScanner:
    return PiiScanner(PII_KINDS, max_seconds=1.0)


def redacted_quote(text: str, limit: int) -> str:
    """``text`` as a message or preview may quote it: every kind of personal data and secret
    redacted (whatever the recipe's ``pii``), then cut to ``limit`` characters."""
    scanner = _quote_scanner()
    scanner.start()
    try:
        quoted, _ = scanner.redact(text[: limit + QUOTE_MARGIN])
    except PiiTimeout:
        return "<withheld: not scanned for personal data in time>"
    key = quoted.find("-----BEGIN")  # a private key whose END is past the window
    if key != -1:
        quoted = quoted[:key] + DEFAULT_REPLACEMENTS[SECRET]
    return quoted if len(quoted) <= limit else quoted[:limit] + "…"


def quoted_names(names: Sequence[str], limit: int = 20, chars: int = 60) -> str:
    """Column names for a message: each redacted (a headerless CSV's "header" is its first row)
    and cut, at most ``limit`` of them (a wide file has thousands)."""
    shown = ", ".join(redacted_quote(str(name), chars) for name in names[:limit])
    return shown + (f" … and {len(names) - limit:,} more" if len(names) > limit else "")


def withheld(row: dict, why: str) -> dict:
    """The row's keys with every value replaced by a note of why it is not shown."""
    return {name: f"<withheld: {why}>" for name in row}


def redact_document(scanner: PiiScanner, doc: dict) -> tuple[dict, tuple]:
    """A rejected or dropped document with every string redacted (rows that failed before the
    PII step still hold their values), and ``((kind, count), ...)`` found. A document that cannot
    be redacted is withheld, never written as it was."""
    counts: Counter = Counter()
    scanner.start()
    try:
        return scanner.redact_value(doc, counts), tuple(sorted(counts.items()))
    except Exception as error:  # noqa: BLE001 - never write what could not be redacted
        withheld = {**doc, "record": f"<withheld: redaction failed: {type(error).__name__}: {error}>",
                    **({"example": "<withheld>"} if "example" in doc else {})}
        return withheld, ()
