"""Run statistics, computed in the graph with one combiner.

Each outcome is counted into a ``StatsAccumulator`` by name where it happens (``add_read``,
``add_kept`` with a ``KeptExample``, ``add_rejected``, ``add_dropped``, ``add_pii``,
``add_failed``) — per read unit in pass 1; the examples dedup drops afterwards are taken back
(``take_back``) by the step that writes them to dropped/ — and the accumulators combine into
one ``stats.json`` document. ``records.read`` is counted at the reader and the outcomes where
they are written, so the invariant ``read == train + validation + rejected + sum(dropped)`` is
a real check.
"""

from __future__ import annotations


import functools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, NamedTuple

import apache_beam as beam

from schemas.models import ModelSpec
from schemas.recipe import FinetuneSpec, SplitSpec
from schemas.records import DUPLICATE_REASONS, SPLITS, TRAIN, VALIDATION, TokenCount
from transforms.dedup import NO_SURVIVOR, read_block, reason_counts
from transforms.packing import packing_estimate

PERCENTILES = (50, 90, 95, 99)
# OpenAI's default epochs, as its cookbook's data-prep notebook derives them: aim for 3 epochs,
# but at least 100 and at most 25,000 example passes, within 1 to 25 epochs.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25


def default_n_epochs(n_train: int) -> int:
    if n_train <= 0:
        return TARGET_EPOCHS
    if n_train * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_train)
    if n_train * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_train)
    return TARGET_EPOCHS


def training_estimate(
    *, n_train: int, billed_tokens_per_epoch: int, n_epochs: int | Literal["auto"] = "auto",
    price_per_million_tokens: float | None = None,
) -> dict[str, Any]:
    """``estimate`` in stats.json: epochs (the recipe's ``finetune.n_epochs``, or for ``"auto"``
    the platform's default), billed tokens and, given a price, the cost."""
    from_recipe = n_epochs != "auto"
    epochs = n_epochs if from_recipe else default_n_epochs(n_train)
    billed = epochs * billed_tokens_per_epoch
    estimate = {
        "train_examples": n_train,
        "n_epochs": epochs,
        "n_epochs_from": "recipe" if from_recipe else "default",
        "billed_tokens_per_epoch": billed_tokens_per_epoch,
        "billed_tokens": billed,
    }
    if price_per_million_tokens is not None:
        estimate["price_per_million_tokens"] = price_per_million_tokens
        estimate["cost"] = round(billed / 1_000_000 * price_per_million_tokens, 4)
    return estimate


class KeptExample(NamedTuple):
    """What the stats count of a kept example: pass 1 adds it, pass 2 takes a duplicate's back
    (from its index entry). A named tuple: one is made per kept record, on the hot path."""

    split: str
    tokens: TokenCount
    warnings: tuple[str, ...]
    messages: int
    billed: int  # tokens billed per epoch: the total, capped at the model's per-example limit

    @classmethod
    def of(cls, split: str, tokens: TokenCount, warnings, messages: int, limit: int) -> "KeptExample":
        return cls(split, tokens, tuple(warnings), messages, min(limit, tokens.total))


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
    # Records dropped as contaminated, by the evaluation set they share text with.
    contaminated: Counter = field(default_factory=Counter)
    # Duplicates of earlier runs' examples (dedup.against), by reason.
    against: Counter = field(default_factory=Counter)
    # path -> the first error (in sort order: the same whatever order the parts arrive in)
    failed_files: dict = field(default_factory=dict)

    def _observe(self, name: str, value: int, sign: int = 1) -> None:
        histogram = self.histograms.get(name)
        if histogram is None:  # not setdefault: it would build a Counter on every call
            histogram = self.histograms[name] = Counter()
        histogram[value] += sign

    def add_read(self, file: str, count: int = 1) -> None:
        self.rows_per_file[file] += count

    def add_kept(self, example: "KeptExample", sign: int = 1) -> None:
        split, tokens, warnings, messages, billed = example
        self.kept[split] += sign
        self.tokens[split] += sign * tokens.total
        self.tokens["trained"] += sign * tokens.trained
        self._observe("total", tokens.total, sign)
        self._observe("trained", tokens.trained, sign)
        if tokens.assistant_content:
            self.tokens["assistant_content"] += sign * tokens.assistant_content
            self._observe("assistant_content", tokens.assistant_content, sign)
        if split == TRAIN:  # what packing packs: the sequences the model sees
            self._observe("train_context", tokens.context, sign)
        for role, n in tokens.by_role:
            self.tokens[f"role:{role}"] += sign * n
            self._observe(f"role:{role}", n, sign)
        if messages:
            self._observe("messages", messages, sign)
        if split == TRAIN:
            self.billed_train_tokens += sign * billed
        self.estimated += sign * tokens.estimated
        for warning in warnings:
            self.warnings[warning] += sign

    def take_back(self, example: "KeptExample") -> "StatsAccumulator":
        """Pass 1 counts every example it writes; the ones dedup drops afterwards are taken back
        by the step that writes them to dropped/."""
        self.add_kept(example, -1)
        return self

    def add_rejected(self, codes: Iterable[str]) -> None:
        self.rejected += 1
        self.rejection_codes.update(codes)

    def add_dropped(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] += count

    def add_contaminated(self, eval_set: str, count: int = 1) -> None:
        self.contaminated[eval_set] += count

    def add_pii(self, found: Iterable[tuple[str, int]]) -> None:
        """``found``: ``(kind, count)`` pairs, as the PII step reports a record's findings."""
        self.pii.update(dict(found))

    def add_failed(self, path: str, error: str) -> None:
        if path not in self.failed_files or error < self.failed_files[path]:
            self.failed_files[path] = error

    _COUNTERS = ("rows_per_file", "kept", "tokens", "warnings", "rejection_codes", "dropped", "pii", "contaminated", "against")
    _NUMBERS = ("billed_train_tokens", "estimated", "rejected")

    def to_json(self) -> dict:
        """Plain JSON (pairs keep each counter's order and its keys' types): pass 1 saves it beside
        a unit's file so that ``--resume`` can reuse the unit."""
        return {**{name: list(getattr(self, name).items()) for name in self._COUNTERS},
                **{name: getattr(self, name) for name in self._NUMBERS},
                "histograms": [[name, list(h.items())] for name, h in self.histograms.items()],
                "failed_files": list(self.failed_files.items())}

    @classmethod
    def from_json(cls, doc: dict) -> "StatsAccumulator":
        # .get: a unit saved by an earlier version lacks the newer counters (--resume).
        stats = cls(**{name: Counter(dict(doc.get(name, ()))) for name in cls._COUNTERS},
                    **{name: doc[name] for name in cls._NUMBERS})
        stats.histograms = {name: Counter(dict(pairs)) for name, pairs in doc["histograms"]}
        stats.failed_files = dict(doc["failed_files"])
        return stats

    def merge(self, other: "StatsAccumulator") -> "StatsAccumulator":
        for name in self._COUNTERS:
            getattr(self, name).update(getattr(other, name))
        for name, histogram in other.histograms.items():
            self.histograms.setdefault(name, Counter()).update(histogram)
        for path, error in other.failed_files.items():
            self.add_failed(path, error)
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
    n_epochs: int | Literal["auto"] = "auto",
    price_per_million_tokens: float | None = None,
    dropped_reasons: Iterable[str] = (),
    target: str = "openai",
    tokenizer: str | None = None,
    packing: bool = False,
    packed: bool = False,
    target_info: dict | None = None,
    decontamination: dict | None = None,
    references: list[str] | None = None,
    sources: dict | None = None,
    mix: dict | None = None,
    by_file: Counter | None = None,
) -> dict:
    """The ``stats.json`` document (see ``schemas/stats.schema.json``); every reason in
    ``dropped_reasons`` is listed, with 0 when nothing was dropped for it. ``decontamination``:
    what was indexed of each evaluation set (``{"ngram", "min_words", "sets": {name: {...}}}``),
    to which each set's drops are added."""
    # Examples taken back (dedup) leave zero counts behind: they are not values any example has.
    acc.histograms = {name: Counter({v: n for v, n in h.items() if n > 0}) for name, h in acc.histograms.items()}
    acc.histograms = {name: h for name, h in acc.histograms.items() if h}
    acc.warnings = Counter({w: n for w, n in acc.warnings.items() if n > 0})
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
            # The OpenAI cookbook's "assistant tokens": content only (by_role.assistant adds each
            # message's overhead and role).
            "assistant_content": acc.tokens["assistant_content"],
            "assistant_content_per_example": per_example_summary(acc.histograms.get("assistant_content", {})),
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
        "target": {"kind": target, "tokenizer": tokenizer or model.encoding,
                   "max_tokens_per_example": model.max_tokens_per_example,
                   **_with_checks(target_info or {}, acc)},
        **({"packing": packing_estimate(acc.histograms.get("train_context", {}), model.max_tokens_per_example,
                                        written=packed)}
           if packing else {}),
        **({"dedup_against": {"references": list(references),
                              **{reason: acc.against.get(reason, 0) for reason in DUPLICATE_REASONS
                                 if reason in dropped_reasons}}} if references else {}),
        **({"sources": source_figures(acc, sources, mix or {}, by_file or Counter(), files)} if sources else {}),
        **({"decontamination": {**decontamination, "sets": {
            name: {**indexed, "dropped": acc.contaminated.get(name, 0)}
            for name, indexed in decontamination["sets"].items()}}} if decontamination else {}),
        "files": {
            "read": [{"path": path, "rows": acc.rows_per_file.get(path, 0)} for path in sorted(set(files))],
            "failed": [{"path": path, "error": error} for path, error in sorted(acc.failed_files.items())],
        },
        **context,
    }


def source_figures(acc: StatsAccumulator, sources: dict, mix: dict, by_file: Counter, files: Iterable[str]) -> dict:
    """Per source (input.sources): weight, requested and achieved share of the train split, rows
    read, rejected, dropped by reason, examples and tokens kept."""
    names = sorted(set(files))
    train_total = sum(figures["train"] for figures in mix.values()) or 1
    found = {}
    for name, settings in sources.items():
        figures = mix.get(name, {})
        mine = settings["files"]
        dropped = Counter()
        for file in mine:
            dropped.update({key[1].removeprefix("dropped:"): n for key, n in by_file.items()
                            if key[0] == file and key[1].startswith("dropped:")})
        dropped.update(figures.get("duplicates", {}))
        if figures.get("downsampled"):
            dropped["downsampled"] += figures["downsampled"]
        found[name] = {
            "weight": settings["weight"],
            "requested_share": round(settings["requested_share"], 6),
            "achieved_share": round(figures.get("train", 0) / train_total, 6),
            "read": sum(acc.rows_per_file.get(names[file], 0) for file in mine if file < len(names)),
            "rejected": sum(by_file.get((file, "rejected"), 0) for file in mine),
            "dropped": dict(sorted(dropped.items())),
            "kept_before_mixing": figures.get("kept_before_mixing", 0),
            "train": figures.get("train", 0),
            "validation": figures.get("validation", 0),
            "train_tokens": figures.get("train_tokens", 0),
        }
    return found


def _per_file(unit) -> Counter:
    """A unit's rejected and dropped counts, keyed by its file: the sources' figures add them up."""
    counts = Counter({(unit.file, "rejected"): unit.stats.rejected})
    counts.update({(unit.file, f"dropped:{reason}"): n for reason, n in unit.stats.dropped.items()})
    return counts


def _with_checks(info: dict, acc: StatsAccumulator) -> dict:
    """A hosted provider's per-file limits checked against the counts: ``checks``, one per limit."""
    if "limits" not in info:
        return info
    counts = {"min_train_examples": acc.kept[TRAIN], "max_train_examples": acc.kept[TRAIN],
              "max_validation_examples": acc.kept[VALIDATION]}
    checks = [{"rule": rule, "limit": limit, "actual": counts[rule],
               "ok": counts[rule] >= limit if rule.startswith("min_") else counts[rule] <= limit}
              for rule, limit in info["limits"].items()]
    return {**info, "checks": checks}


class StatsCombineFn(beam.CombineFn):
    """Accumulators combined. ``count(acc, element)`` counts an element that is not one (a
    duplicate decision, say) into ``acc``; by default the elements are accumulators."""

    def __init__(self, count: Callable[[StatsAccumulator, Any], Any] | None = None):
        self._count = count

    def create_accumulator(self):
        return StatsAccumulator()

    def add_input(self, acc, element):
        if self._count is None:
            return acc.merge(element)
        self._count(acc, element)
        return acc

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for acc in accumulators:
            merged.merge(acc)
        return merged

    def extract_output(self, acc):
        return acc


def _count_duplicates(acc: StatsAccumulator, path: str, run_files: int | None = None) -> None:
    """A block of dedup decisions (its file: ``transforms/dedup.py``), counted by reason; those
    whose survivor is an earlier run's (a file numbered from ``run_files`` on) also as ``against``."""
    block = read_block(path)
    for reason, count in reason_counts(block).items():
        acc.add_dropped(reason, count)
    if run_files is not None:
        theirs = (block["survivor_file"] >= run_files) & (block["survivor_file"] != NO_SURVIVOR)
        for reason, count in reason_counts(block[theirs]).items():
            acc.against[reason] += count


class ComputeStats(beam.PTransform):
    """The run's statistics, combined into the single ``stats.json`` document.

    Input: a dict of PCollections: ``units`` (pass 1's results: rows read, examples kept,
    rejections, filter drops, PII, failed files, as each unit's ``stats``), ``taken_back``
    (``StatsAccumulator``s of the examples dedup dropped, taken back by the writers of
    dropped/) and ``decisions`` (the duplicates dropped: paths of blocks). ``split`` and ``finetune`` are the
    recipe's sections (the split goes into the document; the epochs and price into its estimate).
    """

    def __init__(
        self,
        *,
        files: Iterable[str],
        model: ModelSpec,
        format: str,
        split: SplitSpec = SplitSpec(),
        finetune: FinetuneSpec = FinetuneSpec(),
        dropped_reasons: Iterable[str] = (),
        target: str = "openai",
        packing: bool = False,
        packed: bool = False,
        tokenizer: str | None = None,
        target_info: dict | None = None,
        decontamination: dict | None = None,
        run_files: int | None = None,
        references: list[str] | None = None,
        sources: dict | None = None,
    ):
        super().__init__()
        self._run_files = run_files
        self._sources = sources
        self._files = sorted(set(files))
        self._model = model
        self._context = {"format": format, "split": split.model_dump()}
        self._options = {"n_epochs": finetune.n_epochs, "price_per_million_tokens": finetune.price_per_million_tokens,
                         "dropped_reasons": sorted(dropped_reasons), "target": target, "tokenizer": tokenizer,
                         "packing": packing, "packed": packed, "target_info": target_info,
                         "decontamination": decontamination, "references": references, "sources": sources}

    def expand(self, parts: dict):
        unknown = set(parts) - {"units", "taken_back", "decisions", "mix"}
        if unknown:
            raise ValueError(f"ComputeStats does not know {sorted(unknown)}")
        # Each part combined where it is made (the combine's first phase runs in the producing
        # step), so that a few partial results cross the pipeline, not one per unit or duplicate.
        partials = [parts["units"] | "UnitStats" >> beam.Map(lambda unit: unit.stats)
                    | "CombineUnits" >> beam.CombineGlobally(StatsCombineFn()).without_defaults()]
        if "taken_back" in parts:
            partials.append(parts["taken_back"]
                            | "CombineTakenBack" >> beam.CombineGlobally(StatsCombineFn()).without_defaults())
        if "decisions" in parts:
            partials.append(parts["decisions"]
                            | "CombineDuplicates" >> beam.CombineGlobally(StatsCombineFn(
                                functools.partial(_count_duplicates, run_files=self._run_files))).without_defaults())
        files, model, context, options = self._files, self._model, self._context, self._options
        combined = partials | "FlattenPartials" >> beam.Flatten() | "Combine" >> beam.CombineGlobally(StatsCombineFn())
        if self._sources is None:
            return combined | "BuildDocument" >> beam.Map(
                lambda acc: build_stats(acc, files=files, model=model, context=context, **options))
        # Per source: the mix step's figures, and the units' rejections and drops by file.
        by_file = (parts["units"] | "PerFile" >> beam.Map(_per_file)
                   | "CombinePerFile" >> beam.CombineGlobally(lambda counts: sum(counts, Counter())))
        return combined | "BuildDocument" >> beam.Map(
            lambda acc, mix, by_file: build_stats(acc, files=files, model=model, context=context, mix=mix,
                                                  by_file=by_file, **options),
            beam.pvalue.AsSingleton(parts["mix"]), beam.pvalue.AsSingleton(by_file))
