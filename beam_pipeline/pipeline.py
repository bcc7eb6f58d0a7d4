"""Pre-flight checks and the one function that wires the graph.

``plan_job`` turns a recipe into everything the graph needs and fails, before any worker
starts, on what can be known up front: inputs that match nothing, columns the template needs
but the data lacks, an output path that already holds a run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_pipeline.errors import UsageError
from schemas.formats import detect_format
from schemas.models import ModelSpec
from schemas.recipe import Recipe
from schemas.records import REJECTED_DIR, SPLITS, Item
from transforms.clean import CleanFields
from transforms.read import (
    CsvDialect,
    InputError,
    ReadShards,
    expand_paths,
    first_json_object,
    infer_format,
    not_jsonl_reason,
    peek_columns,
)
from transforms.split import SplitExamples
from transforms.stats import ComputeStats
from transforms.template import RenderExamples, TakeExamples, TemplateError, referenced_columns
from transforms.tokens import CountTokens, EncodingError, resolve_encoding_bytes
from transforms.validate import ValidateExamples
from transforms.write import WriteJsonl, WriteStatsAndMarker, join

LOGGER = logging.getLogger(__name__)


class JobError(UsageError):
    """The job cannot start; the message says what to fix."""


@dataclass(frozen=True)
class JobPlan:
    recipe: Recipe
    files: list[str]
    # The columns to read; None reads whole rows (the rows already are examples).
    columns: frozenset[str] | None
    model: ModelSpec
    output: str
    example_format: str


def _absolute(path: str) -> str:
    # Workers may run elsewhere or in another directory: local paths travel absolute.
    return path if "://" in path else os.path.abspath(path)


def check_columns(files: list[str], recipe: Recipe, needed: set[str]) -> None:
    first = files[0]
    dialect = CsvDialect(**recipe.input.csv.model_dump())
    try:
        present = peek_columns(first, recipe.input.format or infer_format(first), dialect)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise JobError(f"cannot read the columns of {first}: {type(error).__name__}: {error}") from None
    if not present:  # a JSONL file whose first line is not an object: rows will be rejected one by one
        return
    missing = sorted(needed - set(present))
    if missing:
        raise JobError(
            f"the recipe uses column(s) {', '.join(missing)} that {first} does not have; "
            f"its columns are: {', '.join(present)}"
        )


def check_output(output: str, *, overwrite: bool) -> None:
    existing = [m.path for m in FileSystems.match([join(output, "**")])[0].metadata_list]
    if not existing:
        return
    if not overwrite:
        raise JobError(f"output path {output} is not empty; pass --overwrite to replace it")
    LOGGER.info("--overwrite: deleting %d files under %s", len(existing), output)
    FileSystems.delete(existing)


def check_jsonl_heads(files: list[str], limit: int = 100) -> None:
    """Catch files that are not JSONL at all (Parquet, CSV, a binary) before reading them line by line."""
    for url in files[:limit]:
        try:
            problem = not_jsonl_reason(url)
        except (OSError, ValueError) as error:
            raise JobError(f"cannot read {url}: {type(error).__name__}: {error}") from None
        if problem:
            raise JobError(f"{url} is not JSONL: {problem}")


def resolve_example_format(recipe: Recipe, files: list[str]) -> str:
    if recipe.example_format is not None:
        return recipe.example_format
    first = first_json_object(files[0])
    fmt = detect_format(first)
    if fmt is None:
        keys = ", ".join(sorted(first)) if isinstance(first, dict) else "no object"
        raise JobError(
            f"cannot tell the example format of {files[0]} (first line has: {keys}); "
            "pass --format chat, completion or preference"
        )
    LOGGER.info("examples are in %s format (detected from %s)", fmt, files[0])
    return fmt


def plan_job(recipe: Recipe, *, overwrite: bool = False) -> JobPlan:
    try:
        files = expand_paths([_absolute(p) for p in recipe.input.paths])
        formats = {url: recipe.input.format or infer_format(url) for url in files}
        needed = referenced_columns(recipe.template) if recipe.template is not None else set()
    except (InputError, TemplateError) as error:
        raise JobError(str(error)) from None
    jsonl = [url for url in files if formats[url] == "jsonl"]
    check_jsonl_heads(jsonl)
    if recipe.template is not None:
        check_columns(files, recipe, needed | set(recipe.clean.fields or ()))
    example_format = resolve_example_format(recipe, jsonl or files)
    model = recipe.model_spec()
    try:
        resolve_encoding_bytes(model.encoding, encodings_url=recipe.tokens.encodings_url)
    except EncodingError as error:
        raise JobError(str(error)) from None
    output = _absolute(recipe.output.path)
    check_output(output, overwrite=overwrite)
    columns = frozenset(needed | set(recipe.clean.fields or ())) if recipe.template is not None else None
    return JobPlan(
        recipe=recipe, files=files, columns=columns, model=model, output=output, example_format=example_format
    )


def rejected_to_json(record):
    return record.to_json()


def example_to_json(item: Item):
    return item.example


def job_config(plan: JobPlan) -> dict:
    finetune = plan.recipe.finetune
    method = plan.recipe.finetune.method or ("dpo" if plan.example_format == "preference" else "supervised")
    hyperparameters = {
        "n_epochs": finetune.n_epochs,
        "batch_size": finetune.batch_size,
        "learning_rate_multiplier": finetune.learning_rate_multiplier,
    }
    if method == "dpo":
        hyperparameters["beta"] = finetune.beta
    return {
        "model": plan.model.name,
        "method": method,
        "hyperparameters": hyperparameters,
        "suffix": finetune.suffix,
        "seed": finetune.seed,
    }


def build_pipeline(p: beam.Pipeline, plan: JobPlan) -> None:
    recipe = plan.recipe
    fmt = plan.example_format
    items, read_rejected = p | "ReadShards" >> ReadShards(
        urls=plan.files,
        format=recipe.input.format,
        columns=plan.columns,
        csv_dialect=CsvDialect(**recipe.input.csv.model_dump()),
    )
    if recipe.template is not None:
        cleaned, clean_rejected = items | "CleanFields" >> CleanFields(
            steps=recipe.clean.steps, fields=recipe.clean.fields
        )
        rendered, render_rejected = cleaned | "RenderTemplate" >> RenderExamples(template=recipe.template)
        early_rejected = [clean_rejected, render_rejected]
    else:
        # The rows already are examples: checked as they are, never rewritten.
        rendered, take_rejected = items | "TakeExamples" >> TakeExamples(format=fmt)
        early_rejected = [take_rejected]
    valid, invalid = rendered | "ValidateExamples" >> ValidateExamples(
        format=fmt, reject_blank=recipe.template is not None
    )
    counted, over_limit = valid | "CountTokens" >> CountTokens(
        model=plan.model,
        format=fmt,
        truncate=recipe.tokens.over_limit == "truncate",
        encodings_url=recipe.tokens.encodings_url,
    )
    splits = counted | "SplitTrainValidation" >> SplitExamples(
        validation_fraction=recipe.split.validation_fraction, seed=recipe.split.seed
    )
    rejected = (read_rejected, *early_rejected, invalid, over_limit) | "CollectRejected" >> beam.Flatten()

    shards = dict(num_shards=recipe.output.num_shards, max_shard_bytes=recipe.output.max_shard_bytes)
    written = {
        split: splits[split]
        | f"Write{split.title()}" >> WriteJsonl(directory=join(plan.output, split), to_json=example_to_json, **shards)
        for split in SPLITS
    }
    written["rejected"] = rejected | "WriteRejected" >> WriteJsonl(
        directory=join(plan.output, REJECTED_DIR), to_json=rejected_to_json, **shards
    )
    n_epochs = recipe.finetune.n_epochs
    outcomes = {"read": items, "read_rejected": read_rejected, "rejected": rejected, **splits}
    stats = outcomes | "ComputeStats" >> ComputeStats(
        files=plan.files,
        model=plan.model,
        format=fmt,
        context={"split": {"validation_fraction": recipe.split.validation_fraction, "seed": recipe.split.seed}},
        n_epochs=None if n_epochs == "auto" else n_epochs,
        price_per_million_tokens=recipe.finetune.price_per_million_tokens,
    )
    stats | "WriteStats" >> WriteStatsAndMarker(output=plan.output, written=written, job=job_config(plan))
