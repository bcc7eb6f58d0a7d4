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
from schemas.models import ModelSpec
from schemas.recipe import Recipe
from schemas.records import REJECTED_DIR, SPLITS, Item
from transforms.clean import CleanFields
from transforms.read import CsvDialect, InputError, ReadShards, expand_paths, infer_format, peek_columns
from transforms.split import SplitExamples
from transforms.stats import ComputeStats
from transforms.template import RenderExamples, TemplateError, referenced_columns
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
    columns: frozenset[str]
    model: ModelSpec
    output: str


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


def plan_job(recipe: Recipe, *, overwrite: bool = False) -> JobPlan:
    try:
        files = expand_paths([_absolute(p) for p in recipe.input.paths])
        if recipe.input.format is None:
            for url in files:
                infer_format(url)
        needed = referenced_columns(recipe.template)
    except (InputError, TemplateError) as error:
        raise JobError(str(error)) from None
    check_columns(files, recipe, needed | set(recipe.clean.fields or ()))
    model = recipe.model_spec()
    try:
        resolve_encoding_bytes(model.encoding, encodings_url=recipe.tokens.encodings_url)
    except EncodingError as error:
        raise JobError(str(error)) from None
    output = _absolute(recipe.output.path)
    check_output(output, overwrite=overwrite)
    return JobPlan(recipe=recipe, files=files, columns=frozenset(needed), model=model, output=output)


def rejected_to_json(record):
    return record.to_json()


def example_to_json(item: Item):
    return item.example


def build_pipeline(p: beam.Pipeline, plan: JobPlan) -> None:
    recipe = plan.recipe
    items, read_rejected = p | "ReadShards" >> ReadShards(
        urls=plan.files,
        format=recipe.input.format,
        columns=plan.columns | set(recipe.clean.fields or ()),
        csv_dialect=CsvDialect(**recipe.input.csv.model_dump()),
    )
    cleaned, clean_rejected = items | "CleanFields" >> CleanFields(steps=recipe.clean.steps, fields=recipe.clean.fields)
    rendered, render_rejected = cleaned | "RenderTemplate" >> RenderExamples(template=recipe.template)
    valid, invalid = rendered | "ValidateExamples" >> ValidateExamples(format=recipe.template.format)
    counted, over_limit = valid | "CountTokens" >> CountTokens(
        model=plan.model, encodings_url=recipe.tokens.encodings_url
    )
    splits = counted | "SplitTrainValidation" >> SplitExamples(
        validation_fraction=recipe.split.validation_fraction, seed=recipe.split.seed
    )
    rejected = (
        read_rejected,
        clean_rejected,
        render_rejected,
        invalid,
        over_limit,
    ) | "CollectRejected" >> beam.Flatten()
    read = (items, read_rejected) | "CollectRead" >> beam.Flatten()

    shards = dict(num_shards=recipe.output.num_shards, max_shard_bytes=recipe.output.max_shard_bytes)
    written = [
        splits[split]
        | f"Write{split.title()}" >> WriteJsonl(directory=join(plan.output, split), to_json=example_to_json, **shards)
        for split in SPLITS
    ]
    written.append(
        rejected
        | "WriteRejected"
        >> WriteJsonl(directory=join(plan.output, REJECTED_DIR), to_json=rejected_to_json, **shards)
    )
    stats = {"read": read, "rejected": rejected, **splits} | "ComputeStats" >> ComputeStats(
        files=plan.files,
        model=plan.model,
        context={
            "format": recipe.template.format,
            "split": {"validation_fraction": recipe.split.validation_fraction, "seed": recipe.split.seed},
        },
    )
    stats | "WriteStats" >> WriteStatsAndMarker(output=plan.output, after=written)
