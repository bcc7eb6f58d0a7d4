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
from typing import Any, Callable, Iterable, Iterator

import apache_beam as beam
import numpy as np

from apache_beam.io.filesystems import FileSystems

from schemas.formats import example_texts
from schemas.recipe import DecontaminateSpec
from schemas.records import CONTAMINATED, KEPT, Dropped, Item
from transforms.files import write_bytes
from transforms.minhash import _word_hashes, window_hashes
from transforms.stage import BatchDoFn, BatchStage
from transforms.text import normalize_text

_WORD = re.compile(r"\w+")


def words_of(text: str) -> list[str]:
    """The words decontamination compares: ``\\w+`` runs of the normalised text."""
    return _WORD.findall(normalize_text(text))


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


def _runs(texts_words: list[list[str]], length: int) -> _Runs:
    """Every run of ``length`` words that lies within one text, for all texts at once: the words
    hashed in one pass over their joined bytes, windows across two texts left out."""
    counts = np.array([len(words) for words in texts_words], dtype=np.int64)
    total = int(counts.sum())
    if total < length:
        empty = np.zeros(0, dtype=np.int64)
        return _Runs(np.zeros(0, dtype=np.uint64), empty, empty)
    joined = " ".join(word for words in texts_words for word in words).encode()
    words = _word_hashes(np.frombuffer(joined, dtype=np.uint8))[0]
    hashes = window_hashes(words, length)
    ends = np.cumsum(counts)
    starts = ends - counts
    owner = np.repeat(np.arange(len(texts_words)), counts)[: len(hashes)]
    inside = np.arange(len(hashes)) + length <= ends[owner]
    positions = np.flatnonzero(inside)
    return _Runs(hashes[positions], owner[positions], positions - starts[owner[positions]])


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
        texts_words, owners = [], []
        for record, texts in enumerate(texts_per_record):
            for text in texts:
                texts_words.append(words_of(text))
                owners.append(record)
        found: list[dict | None] = [None] * len(texts_per_record)
        for length in sorted(self.runs, key=lambda n: (n != self.ngram, n)):
            index = self.runs[length]
            runs = _runs(texts_words, length)
            at = np.minimum(np.searchsorted(index["hash"], runs.hashes), len(index) - 1)
            for hit in np.flatnonzero(index["hash"][at] == runs.hashes).tolist():
                record = owners[int(runs.text[hit])]
                if found[record] is not None:
                    continue
                entry = index[at[hit]]
                start = int(runs.start[hit])
                words = texts_words[int(runs.text[hit])][start : start + length]
                found[record] = {"eval": self.sets[int(entry["set"])], "file": self.files[int(entry["file"])],
                                 "row": int(entry["row"]), "match": " ".join(words)}
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
                words = words_of(text)
                if len(words) < spec.min_words:
                    counts.too_short += 1
                    continue
                counts.items += 1
                counts.whole += len(words) < spec.ngram
                texts.append(words)
                where.append((first_file + file, row_number))
        for length in sorted({min(len(words), spec.ngram) for words in texts}):
            chosen = [i for i, words in enumerate(texts) if min(len(words), spec.ngram) == length]
            runs = _runs([texts[i] for i in chosen], length)
            block = np.zeros(len(runs.hashes), dtype=RUN_RECORD)
            block["hash"], block["set"] = runs.hashes, set_index
            origin = np.array([where[i] for i in chosen], dtype=np.uint64).reshape(-1, 2)[runs.text]
            block["file"], block["row"] = origin[:, 0], origin[:, 1]
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
