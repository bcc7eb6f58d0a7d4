"""A training run's metric files, read into one series per metric by step.

Three kinds, told apart by content, any fsspec URL:

* OpenAI's fine-tuning results file: CSV with ``step``, ``train_loss``, ``train_accuracy``,
  ``valid_loss``, ``valid_mean_token_accuracy`` and, at some steps, ``full_valid_loss`` and
  ``full_valid_mean_token_accuracy`` (the whole validation set: preferred where present).
* Hugging Face ``trainer_state.json`` (transformers, TRL, Axolotl, Unsloth): ``log_history``,
  a list of logged dicts with ``step``, ``epoch``, ``loss``, ``eval_loss``,
  ``mean_token_accuracy``, ``eval_mean_token_accuracy``.
* A plain CSV or JSONL of a ``step`` column and metric columns under common names.

Unknown columns are listed, not fatal; a file with no step or no known metric, an empty or
missing file and a value that is not a number are ``MetricsError``s naming the file and place.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field

import fsspec

from beam_pipeline.errors import UsageError

# The series ftprep knows, and the names each is found under (first match wins per row).
METRICS = {
    "train_loss": ("train_loss", "loss", "training_loss"),
    "valid_loss": ("full_valid_loss", "valid_loss", "eval_loss", "val_loss", "validation_loss"),
    "train_accuracy": ("train_accuracy", "mean_token_accuracy", "accuracy", "train_mean_token_accuracy"),
    "valid_accuracy": ("full_valid_mean_token_accuracy", "valid_mean_token_accuracy", "eval_mean_token_accuracy",
                       "valid_accuracy", "eval_accuracy", "val_accuracy"),
}
STEP, EPOCH = ("step", "global_step"), ("epoch",)
# Sane ranges: a step or an epoch past these is a broken file, and the work ftprep does (curves,
# epoch marks) must follow the file's size, not the values in it.
MAX_STEP = 10**9
MAX_EPOCH = 10_000
KNOWN = {name for names in METRICS.values() for name in names} | set(STEP) | set(EPOCH)


class MetricsError(UsageError):
    """A metrics file that cannot be used; the message names it and what is wrong."""


@dataclass
class Run:
    """Metric -> {step: value}; epoch per step where the file gives it."""

    kind: str
    sources: list[str] = field(default_factory=list)
    series: dict[str, dict[int, float]] = field(default_factory=lambda: {name: {} for name in METRICS})
    epochs: dict[int, float] = field(default_factory=dict)
    unknown_columns: set[str] = field(default_factory=set)
    # Metric -> how many NaN or infinite values were left out (a diverged run logs NaN loss).
    non_finite: dict[str, int] = field(default_factory=dict)

    def add(self, row: dict, where: str) -> None:
        step = _in_range(next((row[k] for k in STEP if row.get(k) not in (None, "")), None), f"{where} step",
                         MAX_STEP, whole=True)
        if step is None:
            return
        step = int(step)
        for metric, names in METRICS.items():
            for name in names:
                value = _number(row.get(name), f"{where} {name}")
                if value is None:
                    continue
                if math.isfinite(value):
                    self.series[metric][step] = value
                else:
                    self.non_finite[metric] = self.non_finite.get(metric, 0) + 1
                break
        epoch = _in_range(row.get("epoch"), f"{where} epoch", MAX_EPOCH)
        if epoch is not None:
            self.epochs[step] = epoch
        self.unknown_columns |= {k for k in row if k not in KNOWN}


def _number(value, where: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MetricsError(f"{where}: {value!r} is not a number") from None
    return number


def _in_range(value, where: str, maximum: int, whole: bool = False) -> float | None:
    number = _number(value, where)
    if number is None:
        return None
    if not (math.isfinite(number) and 0 <= number <= maximum) or (whole and number != int(number)):
        kind = "a whole number" if whole else "a number"
        raise MetricsError(f"{where}: {value!r} is out of range ({kind} from 0 to {maximum:,})")
    return number


def _read_text(url: str) -> str:
    try:
        with fsspec.open(url, "rt", encoding="utf-8", compression="infer") as f:
            return f.read()
    except FileNotFoundError:
        raise MetricsError(f"{url}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise MetricsError(f"{url}: cannot be read: {type(error).__name__}: {error}") from None


def read_run(urls: list[str]) -> Run:
    """Every file's rows into one run (a run's metrics may come in several files)."""
    run = Run(kind="")
    kinds = []
    for url in urls:
        text = _read_text(url)
        if not text.strip():
            raise MetricsError(f"{url}: the file is empty")
        kinds.append(_read_into(run, url, text))
        run.sources.append(url)
    run.kind = " + ".join(dict.fromkeys(kinds))
    if not any(run.series.values()):
        raise MetricsError(f"{', '.join(urls)}: no known metric column with a step; known columns: "
                           f"{', '.join(sorted(KNOWN))}" + (f"; found: {', '.join(sorted(run.unknown_columns))}"
                                                           if run.unknown_columns else ""))
    return run


def _read_into(run: Run, url: str, text: str) -> str:
    stripped = text.lstrip()
    if stripped.startswith("{") and not url.endswith(".jsonl"):
        try:
            state = json.loads(text)
        except json.JSONDecodeError as error:
            raise MetricsError(f"{url}: not valid JSON: {error}") from None
        history = state.get("log_history") if isinstance(state, dict) else None
        if not isinstance(history, list):
            raise MetricsError(f"{url}: a JSON file but no log_history list (expected a trainer_state.json)")
        for index, entry in enumerate(history):
            if isinstance(entry, dict):
                run.add(entry, f"{url} log_history[{index}]")
        return "trainer_state.json"
    if stripped.startswith("{"):
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    raise MetricsError(f"{url} line {number}: not valid JSON") from None
                if isinstance(row, dict):
                    run.add(row, f"{url} line {number}")
        return "jsonl"
    reader = csv.DictReader(io.StringIO(text))
    columns = set(reader.fieldnames or ())
    if not columns & set(STEP):
        raise MetricsError(f"{url}: no step column (a CSV needs 'step'); its columns: {', '.join(sorted(columns))}")
    for number, row in enumerate(reader, 2):
        run.add(row, f"{url} line {number}")
    return "openai results" if {"train_loss", "valid_mean_token_accuracy"} <= columns else "csv"
