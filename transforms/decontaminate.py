"""Decontamination: training examples that share text with an evaluation set are dropped.

Evaluation items are the text values of the evaluation sets' rows. Texts on both sides are cut
into words the same way: ``\\w+`` runs of the text as dedup normalises it (NFKC, case-folded,
whitespace collapsed), so a copy re-spaced, re-cased or with other punctuation is still a copy.
An item of at least ``ngram`` words contributes every run of ``ngram`` consecutive words; an
item of ``min_words`` to ``ngram - 1`` words contributes itself, whole, so that a short question
embedded in a longer answer is found; shorter items are not checked (a two-word answer is in a
great many texts), and stats.json counts them.

The launcher reads the evaluation sets once and writes the runs' 64-bit hashes, sorted, with
the set, file and row each came from (``EvalIndex``), to one file; the workers load it in
``setup()`` and look up a batch's runs with one binary search per run length. The training
records never move for it. A record is dropped (``contaminated``) when one of its texts holds a
run the index has, naming the evaluation row of the first such run and the words it shares.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

from apache_beam.io.filesystems import FileSystems

from schemas.formats import example_texts
from schemas.recipe import DecontaminateSpec
from schemas.records import CONTAMINATED, KEPT, Dropped, Item
from transforms.files import write_bytes
from transforms.minhash import longer_windows, window_hashes
from transforms.stage import BatchDoFn, BatchStage
from transforms.text import normalize_text

_NON_WORD = re.compile(r"\W+")
# Which code points are word characters, as \w means it for str patterns (``str.isalnum`` or
# "_"): one table for all of Unicode, made on first use (1.1 MB, a fraction of a second).
_WORD_CHARS: np.ndarray | None = None


def _word_chars() -> np.ndarray:
    global _WORD_CHARS
    if _WORD_CHARS is None:
        table = np.fromiter((chr(c).isalnum() for c in range(0x110000)), dtype=bool, count=0x110000)
        table[ord("_")] = True
        _WORD_CHARS = table
    return _WORD_CHARS


def words_of(text: str) -> list[str]:
    """The words decontamination compares: ``\w+`` runs of the normalised text."""
    return _NON_WORD.sub(" ", normalize_text(text)).split()


def texts_in(value: Any) -> Iterator[str]:
    """Every string inside a value (a cell, a list of choices, a conversation), in order."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for inner in value.values():
            yield from texts_in(inner)
    elif isinstance(value, (list, tuple)):
        for inner in value:
            yield from texts_in(inner)


@dataclass
class _Runs:
    """The runs of ``length`` words of many texts at once: their hashes, the text each is in and
    where in it it starts."""

    hashes: np.ndarray
    text: np.ndarray
    start: np.ndarray


class _Words:
    """The words of many texts at once (``words_of`` each) in numpy, code point by code point:
    texts normalised as dedup normalises them (ASCII ones only lower-cased: NFKC and
    case-folding are the identity there, and whitespace is a separator anyway), cut at code
    points that are no word character, each word hashed as the sum of (code point + 1) times a
    fixed random weight for its offset in the word. Runs of each length come from the previous
    length's when asked in order."""

    def __init__(self, texts: list[str]):
        cleaned = [text if text.isascii() else normalize_text(text) for text in texts]
        # Texts joined by a character that is no word's: no word runs across two texts.
        points = np.frombuffer("\n".join(cleaned).encode("utf-32-le"), dtype=np.uint32) if cleaned else np.zeros(0, np.uint32)
        text_starts = np.cumsum([0] + [len(text) + 1 for text in cleaned[:-1]]) if cleaned else np.zeros(0, np.int64)
        self.hashes, word_starts = _hash_words(points)
        text_of_word = np.searchsorted(text_starts, word_starts, side="right") - 1
        counts = np.bincount(text_of_word, minlength=len(texts)).astype(np.int64)
        self.counts = counts
        self.ends = np.cumsum(counts)
        self.starts = self.ends - counts
        self.total = int(self.ends[-1]) if len(counts) else 0
        self.owner = text_of_word
        self._last: tuple[int, np.ndarray] | None = None

    def runs(self, length: int) -> _Runs:
        """Every run of ``length`` words that lies within one text (windows across two texts
        left out)."""
        if self.total < length:
            empty = np.zeros(0, dtype=np.int64)
            return _Runs(np.zeros(0, dtype=np.uint64), empty, empty)
        if self._last is not None and self._last[0] == length - 1:
            hashes = longer_windows(self._last[1], self.hashes, length)
        else:
            hashes = window_hashes(self.hashes, length)
        self._last = (length, hashes)
        owner = self.owner[: len(hashes)]
        positions = np.flatnonzero(np.arange(len(hashes)) + length <= self.ends[owner])
        return _Runs(hashes[positions], owner[positions], positions - self.starts[owner[positions]])


_WEIGHTS = np.random.default_rng(0xDEC0).integers(1, 1 << 63, size=64, dtype=np.uint64) | np.uint64(1)


def _hash_words(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The words of a text's code points (runs of word characters, ASCII capitals lower-cased):
    each one's 64-bit hash, and where it starts."""
    is_word = _word_chars()[points]
    starts_mask = is_word.copy()
    starts_mask[1:] &= ~is_word[:-1]
    word_starts = np.flatnonzero(starts_mask)
    if not len(word_starts):
        return np.zeros(0, dtype=np.uint64), word_starts
    positions = np.flatnonzero(is_word)
    chars = points[positions].astype(np.uint64)
    chars[(chars >= 65) & (chars <= 90)] += np.uint64(32)
    word_of = np.cumsum(starts_mask)[positions] - 1
    offsets = (positions - word_starts[word_of]) & (len(_WEIGHTS) - 1)
    with np.errstate(over="ignore"):
        values = (chars + np.uint64(1)) * _WEIGHTS[offsets]
    # Each word's first character among the word characters: where its sum starts.
    firsts = np.flatnonzero(np.concatenate(([True], word_of[1:] != word_of[:-1])))
    return np.add.reduceat(values, firsts), word_starts


# The lookup table of indexed hashes' top bits: 16 MB, a few per cent full for 100,000s of runs.
_SEEN_BITS = 24

# One indexed run: its hash, and the evaluation row it came from.
RUN_RECORD = np.dtype([("hash", "<u8"), ("set", "<u2"), ("file", "<u4"), ("row", "<u8")])


@dataclass
class SetSummary:
    """What was indexed of one evaluation set, for stats.json and the report."""

    files: int = 0
    rows: int = 0
    items: int = 0  # texts of at least min_words words: checked
    whole: int = 0  # of which shorter than ngram: matched whole
    too_short: int = 0  # texts under min_words: not checked

    def to_json(self) -> dict:
        return {"files": self.files, "rows": self.rows, "items_checked": self.items,
                "items_matched_whole": self.whole, "items_too_short": self.too_short}


@dataclass
class EvalIndex:
    """Sorted run hashes by run length, each with the (set, file, row) it came from."""

    ngram: int
    sets: list[str]
    files: list[str]
    runs: dict[int, np.ndarray] = field(default_factory=dict)  # length -> RUN_RECORD sorted by hash
    summary: dict[str, SetSummary] = field(default_factory=dict)
    _seen: np.ndarray | None = field(default=None, repr=False, compare=False)
    _keys: dict = field(default_factory=dict, repr=False, compare=False)

    def _lookups(self) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """A table of the indexed hashes' top bits (any length), and each length's hashes as one
        contiguous array: made once per worker, on first use."""
        if self._seen is None:
            self._seen = np.zeros(1 << _SEEN_BITS, dtype=bool)
            for runs in self.runs.values():
                self._seen[runs["hash"] >> np.uint64(64 - _SEEN_BITS)] = True
            self._keys = {length: np.ascontiguousarray(runs["hash"]) for length, runs in self.runs.items()}
        return self._seen, self._keys

    def save(self, path: str) -> str:
        buffer = io.BytesIO()
        np.savez(buffer, ngram=np.array(self.ngram), sets=np.array(self.sets, dtype=str),
                 files=np.array(self.files, dtype=str), **{f"runs_{length}": runs for length, runs in self.runs.items()})
        write_bytes(path, buffer.getvalue())
        return path

    @classmethod
    def load(cls, path: str) -> "EvalIndex":
        with FileSystems.open(path) as f:
            saved = np.load(io.BytesIO(f.read()), allow_pickle=False)
            runs = {int(name.removeprefix("runs_")): saved[name] for name in saved.files if name.startswith("runs_")}
            return cls(int(saved["ngram"]), saved["sets"].tolist(), saved["files"].tolist(), runs)

    def matches(self, texts_per_record: list[list[str]]) -> list[dict | None]:
        """For each record (its texts), the first evaluation row it shares a run with, as
        ``{"eval", "file", "row", "match"}``, or None. Runs of ``ngram`` words are looked up
        first, then the whole short items, shortest first."""
        texts, owners = [], []
        for record, record_texts in enumerate(texts_per_record):
            texts.extend(record_texts)
            owners.extend([record] * len(record_texts))
        found: list[dict | None] = [None] * len(texts_per_record)
        words = _Words(texts)
        # Computed shortest first (each length's runs from the last's), looked up runs of
        # ``ngram`` words first: a record's attribution prefers a full run.
        every = {length: words.runs(length) for length in sorted(self.runs)}
        seen, keys = self._lookups()
        for length in sorted(self.runs, key=lambda n: (n != self.ngram, n)):
            index = self.runs[length]
            runs = every[length]
            # Almost every run is in no evaluation set: a table lookup on the hash's top bits
            # rules those out; only the rest are searched for.
            maybe = np.flatnonzero(seen[runs.hashes >> np.uint64(64 - _SEEN_BITS)])
            at = np.minimum(np.searchsorted(keys[length], runs.hashes[maybe]), len(index) - 1)
            equal = keys[length][at] == runs.hashes[maybe]
            for hit, entry_at in zip(maybe[equal].tolist(), at[equal].tolist()):
                record = owners[int(runs.text[hit])]
                if found[record] is not None:
                    continue
                entry = index[entry_at]
                start = int(runs.start[hit])
                shared = words_of(texts[int(runs.text[hit])])[start : start + length]
                found[record] = {"eval": self.sets[int(entry["set"])], "file": self.files[int(entry["file"])],
                                 "row": int(entry["row"]), "match": " ".join(shared)}
        return found


def build_index(spec: DecontaminateSpec, sets: Iterable[tuple[str, list[str], Iterable[tuple[int, int, dict]]]]) -> EvalIndex:
    """The index of ``sets``: ``(name, files, rows)`` with rows as ``(file's index in files, row
    number, row)``, read with ``spec.evals``' fields."""
    fields = {s.name: s.fields for s in spec.evals}
    names, all_files, parts = [], [], {}
    summary: dict[str, SetSummary] = {}
    for set_index, (name, files, rows) in enumerate(sets):
        names.append(name)
        first_file = len(all_files)
        all_files.extend(files)
        counts = summary[name] = SetSummary(files=len(files))
        texts, where = [], []
        for file, row_number, row in rows:
            counts.rows += 1
            values = [row.get(name) for name in fields[name]] if fields[name] else list(row.values())
            for text in (t for value in values for t in texts_in(value)):
                texts.append(text)
                where.append((first_file + file, row_number))
        words = _Words(texts)
        checked = words.counts >= spec.min_words
        counts.items = int(checked.sum())
        counts.whole = int((checked & (words.counts < spec.ngram)).sum())
        counts.too_short = len(texts) - counts.items
        origins = np.array(where, dtype=np.uint64).reshape(-1, 2)
        for length in sorted({min(int(n), spec.ngram) for n in words.counts[checked]}):
            runs = words.runs(length)
            # Runs of ngram words of the long items; the whole of the items of that many words.
            size = words.counts[runs.text]
            mine = size >= spec.ngram if length == spec.ngram else size == length
            block = np.zeros(int(mine.sum()), dtype=RUN_RECORD)
            block["hash"], block["set"] = runs.hashes[mine], set_index
            block["file"], block["row"] = origins[runs.text[mine], 0], origins[runs.text[mine], 1]
            parts.setdefault(length, []).append(block)
    runs = {}
    for length, blocks in parts.items():
        merged = np.concatenate(blocks)
        merged = merged[np.lexsort((merged["row"], merged["file"], merged["set"], merged["hash"]))]
        # One entry per run: the first set, file and row that has it.
        firsts = np.concatenate(([True], merged["hash"][1:] != merged["hash"][:-1])) if len(merged) else np.zeros(0, bool)
        runs[length] = merged[firsts]
    return EvalIndex(spec.ngram, names, all_files, runs, summary)


class _DecontaminateFn(BatchDoFn):
    STAGE = "Decontaminate"

    def __init__(self, index_path: str):
        super().__init__()
        self._index_path = index_path
        self._index: EvalIndex | None = None
        self._found: dict[int, dict] = {}

    def setup(self):
        if self._index is None:
            self._index = EvalIndex.load(self._index_path)

    def process(self, batch: list):
        # The whole batch's runs are looked up at once; handle() reads the result per record.
        hits = self._index.matches([list(example_texts(item.example)) for item in batch])
        self._found = {id(item): hit for item, hit in zip(batch, hits) if hit is not None}
        try:
            yield from super().process(batch)
        finally:
            self._found = {}

    def handle(self, item: Item, emit) -> None:
        hit = self._found.get(id(item))
        if hit is None:
            emit(KEPT, item)
            return
        self._counters.dropped(CONTAMINATED).inc()
        emit(CONTAMINATED, Dropped(item.source, CONTAMINATED, item.row, contaminated_by=hit))


class Decontaminate(BatchStage):
    """Drop examples that share a run of words with an evaluation set (see the module
    docstring). ``index_path``: the ``EvalIndex`` file the launcher wrote. Returns
    ``(batches, rejected, contaminated)``."""

    def __init__(self, *, index_path: str):
        if not index_path:
            raise ValueError("decontamination needs the evaluation sets' index")
        super().__init__(_DecontaminateFn(index_path), extra_outputs=(CONTAMINATED,))
