"""Run statistics, computed in the graph with one lifted combiner.

Every stage's outputs are mapped to small events (a read row, a kept example with its tokens,
a rejection with its codes, a drop with its reason) and combined into one ``stats.json``
document. ``records.read`` is counted at the reader and the outcomes at the end, so the
invariant ``read == train + validation + rejected + sum(dropped)`` is a real check.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import apache_beam as beam

from schemas.models import ModelSpec
from schemas.records import SPLITS, TRAIN, Item, Rejected
from transforms.finetune import training_estimate
from transforms.tokens import message_count

READ = "read"
KEPT = "kept"
REJECTED = "rejected"
DROPPED = "dropped"
PII = "pii"
FAILED = "failed_files"
PERCENTILES = (50, 90, 95, 99)


@dataclass
class StatsAccumulator:
    rows_per_file: Counter = field(default_factory=Counter)
    kept: Counter = field(default_factory=Counter)
    tokens: Counter = field(default_factory=Counter)  # split -> tokens, plus "trained" and "role:<role>"
    # Exact percentiles with bounded memory: kept examples have at most the model's limit of tokens,
    # so each histogram has at most that many distinct values.
    histograms: dict = field(default_factory=dict)
    billed_train_tokens: int = 0
    estimated: int = 0
    warnings: Counter = field(default_factory=Counter)
    rejected: int = 0
    rejection_codes: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    pii: Counter = field(default_factory=Counter)
    # path -> the first error (in sort order: the same whatever order the parts arrive in)
    failed_files: dict = field(default_factory=dict)

    def _fail(self, path: str, error: str) -> None:
        if path not in self.failed_files or error < self.failed_files[path]:
            self.failed_files[path] = error

    def _observe(self, name: str, value: int) -> None:
        self.histograms.setdefault(name, Counter())[value] += 1

    def add(self, event: tuple) -> "StatsAccumulator":
        kind = event[0]
        if kind == READ:
            self.rows_per_file[event[1]] += 1
        elif kind == KEPT:
            _, split, tokens, warnings, messages, billed = event
            self.kept[split] += 1
            self.tokens[split] += tokens.total
            self.tokens["trained"] += tokens.trained
            self._observe("total", tokens.total)
            self._observe("trained", tokens.trained)
            for role, n in tokens.by_role:
                self.tokens[f"role:{role}"] += n
                self._observe(f"role:{role}", n)
            if messages:
                self._observe("messages", messages)
            if split == TRAIN:
                self.billed_train_tokens += billed
            self.estimated += tokens.estimated
            self.warnings.update(warnings)
        elif kind == REJECTED:
            self.rejected += 1
            self.rejection_codes.update(event[1])
        elif kind == DROPPED:
            self.dropped[event[1]] += 1
        elif kind == PII:
            self.pii.update(dict(event[1]))
        elif kind == FAILED:
            self._fail(event[1], event[2])
        else:
            raise ValueError(f"unknown stats event {event!r}")
        return self

    def merge(self, other: "StatsAccumulator") -> "StatsAccumulator":
        for name in ("rows_per_file", "kept", "tokens", "warnings", "rejection_codes", "dropped", "pii"):
            getattr(self, name).update(getattr(other, name))
        for name, histogram in other.histograms.items():
            self.histograms.setdefault(name, Counter()).update(histogram)
        for path, error in other.failed_files.items():
            self._fail(path, error)
        self.billed_train_tokens += other.billed_train_tokens
        self.estimated += other.estimated
        self.rejected += other.rejected
        return self


def percentile(histogram: dict[int, int], q: float) -> int | None:
    """Nearest-rank percentile of the values counted in ``histogram``."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q / 100 * total))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def per_example_summary(histogram: dict[int, int]) -> dict[str, Any]:
    count = sum(histogram.values())
    if count == 0:
        return {"count": 0, "min": None, "max": None, "mean": None, **{f"p{q}": None for q in PERCENTILES}}
    total = sum(value * n for value, n in histogram.items())
    return {
        "count": count,
        "min": min(histogram),
        "max": max(histogram),
        "mean": round(total / count, 2),
        **{f"p{q}": percentile(histogram, q) for q in PERCENTILES},
    }


def _nice(width: int) -> int:
    """``width`` rounded up to 1, 2, 2.5 or 5 times a power of ten (an integer): bin edges a
    reader can add up."""
    scale = 1
    while True:
        for step in (10, 20, 25, 50):
            if step * scale % 10 == 0 and step * scale // 10 >= width:
                return step * scale // 10
        scale *= 10


def token_histogram(histogram: dict[int, int], bins: int = 30) -> dict[str, Any]:
    """Tokens per example in about ``bins`` equal bins from 0: ``counts[i]`` examples have
    ``i * bin_width`` to ``(i + 1) * bin_width - 1`` tokens."""
    if not histogram:
        return {"bin_width": 0, "counts": []}
    width = _nice(max(1, math.ceil((max(histogram) + 1) / bins)))
    counts = [0] * (max(histogram) // width + 1)
    for value, n in histogram.items():
        counts[value // width] += n
    return {"bin_width": width, "counts": counts}


def build_stats(
    acc: StatsAccumulator,
    *,
    files: Iterable[str],
    model: ModelSpec,
    context: dict,
    n_epochs: int | None = None,
    price_per_million_tokens: float | None = None,
    dropped_reasons: Iterable[str] = (),
) -> dict:
    """The ``stats.json`` document (see ``schemas/stats.schema.json``); every reason in
    ``dropped_reasons`` is listed, with 0 when nothing was dropped for it."""
    roles = sorted(name.removeprefix("role:") for name in acc.histograms if name.startswith("role:"))
    return {
        "records": {
            "read": sum(acc.rows_per_file.values()),
            **{split: acc.kept[split] for split in SPLITS},
            "rejected": acc.rejected,
            "dropped": dict(sorted({**dict.fromkeys(dropped_reasons, 0), **acc.dropped}.items())),
        },
        "rejections": dict(sorted(acc.rejection_codes.items())),
        "warnings": dict(sorted(acc.warnings.items())),
        "pii": dict(sorted(acc.pii.items())),
        "tokens": {
            "encoding": model.encoding,
            "total": sum(acc.tokens[split] for split in SPLITS),
            **{split: acc.tokens[split] for split in SPLITS},
            "trained": acc.tokens["trained"],
            "by_role": {role: acc.tokens[f"role:{role}"] for role in roles},
            "estimated_examples": acc.estimated,
            "per_example": per_example_summary(acc.histograms.get("total", {})),
            "histogram": token_histogram(acc.histograms.get("total", {})),
            "trained_per_example": per_example_summary(acc.histograms.get("trained", {})),
            "by_role_per_example": {role: per_example_summary(acc.histograms[f"role:{role}"]) for role in roles},
        },
        "messages_per_example": per_example_summary(acc.histograms.get("messages", {})),
        "estimate": training_estimate(
            n_train=acc.kept[TRAIN],
            billed_tokens_per_epoch=acc.billed_train_tokens,
            n_epochs=n_epochs,
            price_per_million_tokens=price_per_million_tokens,
        ),
        "model": {"name": model.name, "max_tokens_per_example": model.max_tokens_per_example},
        "files": {
            "read": [{"path": path, "rows": acc.rows_per_file.get(path, 0)} for path in sorted(set(files))],
            "failed": [{"path": path, "error": error} for path, error in sorted(acc.failed_files.items())],
        },
        **context,
    }


class StatsCombineFn(beam.CombineFn):
    def create_accumulator(self):
        return StatsAccumulator()

    def add_input(self, acc, event):
        # Partial results of other combines merge in; see ComputeStats.expand.
        return acc.merge(event) if isinstance(event, StatsAccumulator) else acc.add(event)

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for acc in accumulators:
            merged.merge(acc)
        return merged

    def extract_output(self, acc):
        return acc


def summarize(batch: list, event: Callable[[Any], tuple]) -> StatsAccumulator:
    """One batch's partial statistics: per-record events added into one accumulator."""
    acc = StatsAccumulator()
    for record in batch:
        acc.add(event(record))
    return acc


def read_event(record: Item | Rejected) -> tuple:
    return (READ, record.source.file)


def rejected_event(record: Rejected) -> tuple:
    return (REJECTED, record.codes)


def kept_event(item: Item, *, fmt: str, limit: int) -> tuple:
    billed = min(limit, item.tokens.total)
    return (KEPT, item.split, item.tokens, item.warnings, message_count(item.example, fmt), billed)


def pii_event(found: tuple) -> tuple:
    return (PII, found)


def failed_event(failed) -> tuple:
    return (FAILED, failed.path, failed.error)


def dropped_event(reason: str):
    return lambda _record: (DROPPED, reason)


class ComputeStats(beam.PTransform):
    """Combine the run's outputs into the single ``stats.json`` document.

    Input: a dict of PCollections of batches: ``read`` and ``read_<anything>`` (everything the
    reader emitted, kept or rejected), one per split, ``rejected``, ``dropped_<reason>``, and
    ``pii``/``pii_<anything>`` (``((kind, count), ...)`` per record with findings), and
    ``failed_files`` (``FailedFile`` lists from the reader).
    """

    def __init__(
        self,
        *,
        files: Iterable[str],
        model: ModelSpec,
        format: str,
        context: dict | None = None,
        n_epochs: int | None = None,
        price_per_million_tokens: float | None = None,
    ):
        super().__init__()
        self._files = sorted(set(files))
        self._model = model
        self._format = format
        self._context = {"format": format, **(context or {})}
        self._estimate_options = {"n_epochs": n_epochs, "price_per_million_tokens": price_per_million_tokens}

    def expand(self, outputs: dict):
        partials = []
        for name, pcoll in sorted(outputs.items()):
            if name == READ or name.startswith(f"{READ}_"):
                mapper = read_event
            elif name in SPLITS:
                mapper = functools.partial(kept_event, fmt=self._format, limit=self._model.max_tokens_per_example)
            elif name == REJECTED:
                mapper = rejected_event
            elif name.startswith(f"{DROPPED}_"):
                mapper = dropped_event(name[len(DROPPED) + 1 :])
            elif name == PII or name.startswith(f"{PII}_"):
                mapper = pii_event
            elif name == FAILED:
                mapper = failed_event
            else:
                raise ValueError(f"ComputeStats does not know output {name!r}")
            label = name.title().replace("_", "")
            # One lifted combine per input, in the stage that produces it: only small partial
            # results cross stages (a Flatten of raw events would be buffered whole by the DirectRunner).
            partials.append(
                pcoll
                | f"{label}Events" >> beam.Map(summarize, mapper)
                | f"{label}Partial" >> beam.CombineGlobally(StatsCombineFn())
            )
        files, model, context = self._files, self._model, self._context
        reasons = sorted(name[len(DROPPED) + 1 :] for name in outputs if name.startswith(f"{DROPPED}_"))
        options = {**self._estimate_options, "dropped_reasons": reasons}
        return (
            partials
            | "FlattenPartials" >> beam.Flatten()
            | "Combine" >> beam.CombineGlobally(StatsCombineFn())
            | "BuildDocument" >> beam.Map(lambda acc: build_stats(acc, files=files, model=model, context=context, **options))
        )
