"""Pre-flight checks and the one function that wires the graph.

``plan_job`` turns a recipe into everything the graph needs and fails, before any worker
starts, on what can be known up front: inputs that match nothing, columns the template needs
but the data lacks, an output path that already holds a run.
"""

from __future__ import annotations

import atexit
import difflib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field

import apache_beam as beam
import yaml

from beam_pipeline.errors import UsageError, skip_hint
from beam_pipeline.evals import eval_index
from beam_pipeline.outputs.finalize import WriteStatsAndMarker
from beam_pipeline.outputs.location import (
    check_output_location, input_directories, prepare_output, refuse_a_file, run_fingerprint,
)
from beam_pipeline.outputs.lock import OutputLock
from beam_pipeline.progress import ProgressWriter
from schemas.formats import detect_format
from schemas.layout import DEDUP_DIR, DEDUP_INDEX_DIR, EVAL_INDEX_FILE, EVALS_DIR, TEMP_DIR, UNITS_DIR
from schemas.models import ModelSpec
from schemas.recipe import WHOLE_EXAMPLE, Recipe
from transforms.clean import CleanFields
from transforms.decontaminate import Decontaminate, EvalIndex
from transforms.dedup import DecideDuplicates, DedupKeys, read_decisions
from transforms.dedup_index import Against, Reference, ReferenceError, WriteDedupIndex, open_references, reference_files
from transforms.encodings import EncodingError
from transforms.files import join
from transforms.filters import FilterExamples
from transforms.mixing import MixSources
from transforms.pii import RedactPii, quoted_names, redacted_quote
from transforms.readers.base import InputError
from transforms.readers.paths import expand_paths, infer_format
from transforms.readers.planning import PlanUnits
from transforms.readers.probes import json_objects, not_jsonl_reason, peek_columns
from transforms.shards import ShardContext, WriteShards, plan_shards
from transforms.split import AssignSplit
from transforms.stage import BatchStage
from transforms.stats import ComputeStats
from transforms.target_rules import CheckTarget
from transforms.targets.chat_template import ChatTemplateError
from transforms.targets.hf_files import TokenizerFilesError
from transforms.targets.registry import Target, TargetError, target_for
from transforms.template import RenderExamples, TakeExamples, TemplateError, referenced_columns
from transforms.tokens import CountTokens, TokenSource
from transforms.units import ProcessUnits, UnitResult, UnitSettings
from transforms.validate import ValidateExamples

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
    # The recipe's target, resolved (transforms/targets/): everything the stages ask of it.
    target: Target
    # Where the workers' token counters come from (the target's, checked and pinned at launch).
    tokens: TokenSource
    # Files found unreadable before the run (on_bad_file: skip): url -> cause. They are read as
    # failed files, so that stats.json lists them with the others.
    bad_files: dict[str, str] = field(default_factory=dict)
    # Held from before the output is looked at until the run ends (a run that writes only).
    lock: OutputLock | None = None
    # What the run follows from (location.run_fingerprint); with resume, pass 1 reuses the
    # units an interrupted run with the same fingerprint completed.
    fingerprint: dict | None = None
    resume: bool = False
    # With decontaminate: the evaluation sets' index file the workers load, and what it holds
    # of each set (stats.json decontamination).
    eval_index: str | None = None
    decontamination: dict | None = None
    # dedup.against: the earlier runs' indexes, checked; their files are numbered after the run's.
    references: tuple[Reference, ...] = ()
    # input.sources: each file's source, by its index in recipe.input.sources (None: one pool).
    source_of_file: tuple[int, ...] | None = None


def _absolute(path: str) -> str:
    # Workers may run elsewhere or in another directory: local paths travel absolute.
    return path if "://" in path else os.path.abspath(path)


def check_columns(files: list[str], recipe: Recipe, needed: set[str]) -> None:
    """The recipe's columns against the first readable file: a misspelt column fails here, not
    on every row. A file that cannot be read fails the run now (on_bad_file: fail) or is left
    to the pipeline, which lists it as failed (skip)."""
    for url in files:
        try:
            present = peek_columns(url, recipe.input.format or infer_format(url), recipe.input.csv)
        except Exception as error:  # noqa: BLE001 - a corrupt or cut file: whatever its reader raises
            if recipe.input.on_bad_file == "fail":
                raise JobError(f"cannot read {url}: {type(error).__name__}: {error}{skip_hint(len(files))}") from None
            continue
        if not present:  # an empty file, or JSONL whose first line is not an object: look further
            continue
        missing = sorted(needed - set(present))
        fmt = recipe.input.format or infer_format(url)
        if missing and any(not c.isprintable() for name in present for c in name):
            # Binary read as text: name what it looks like, not its bytes.
            kind = "a Parquet file (it starts with PAR1)" if present[0].startswith("PAR1") else "binary, not text"
            raise JobError(f"{url} is read as {fmt} but looks like {kind}; set input.format to its format "
                           "(parquet, csv, jsonl)")
        if missing:
            close = {name: difflib.get_close_matches(name, present, n=1, cutoff=0.6) for name in missing}
            hints = "; ".join(f"{name}: did you mean {redacted_quote(match[0], 60)}?" for name, match in close.items() if match)
            raise JobError(
                f"the recipe uses column(s) {', '.join(missing)} that {url} does not have; "
                f"its columns are: {quoted_names(present)}" + (f" ({hints})" if hints else "")
            )
        return


def check_jsonl_heads(files: list[str], *, on_bad_file: str = "fail", limit: int = 100) -> dict[str, str]:
    """Catch files that are not JSONL at all (Parquet, CSV, a binary) before reading them line by
    line: under on_bad_file "fail" the run stops here; under "skip" they are returned (url -> cause)."""
    bad = {}
    for url in files[:limit]:
        try:
            problem = not_jsonl_reason(url)
        except Exception as error:  # noqa: BLE001 - a cut or corrupt file: whatever its reader raises
            problem = f"{type(error).__name__}: {error}"
            if on_bad_file == "fail":
                raise JobError(f"cannot read {url}: {problem}") from None
        else:
            if problem:
                problem = f"not JSONL: {problem}"
                if on_bad_file == "fail":
                    raise JobError(f"{url} is {problem}")
        if problem:
            bad[url] = problem
    return bad


def resolve_example_format(recipe: Recipe, files: list[str]) -> str:
    """The recipe's example format, else the format of the first line (of the first lines of the
    first files) that is an example of some format: a broken or foreign line before it is the
    run's to reject (invalid_json, ...), not a reason to stop."""
    if recipe.example_format is not None:
        return recipe.example_format
    seen = []
    for url in files[:10]:
        for value in json_objects(url):
            fmt = detect_format(value)
            if fmt is not None:
                LOGGER.info("examples are in %s format (detected from %s)", fmt, url)
                return fmt
            seen.append(", ".join(sorted(value)) if isinstance(value, dict) else type(value).__name__)
    found = f"lines with: {'; '.join(dict.fromkeys(seen[:3]))}" if seen else "no line that parses as JSON"
    raise JobError(
        f"cannot tell the example format of {files[0]} (none of its first lines is a chat, completion or "
        f"preference example; {found}); pass --format chat, completion or preference"
    )


def recipe_columns(recipe: Recipe) -> set[str]:
    """Every column the recipe names: the template's, and those cleaning, PII, filters and dedup use."""
    filters = recipe.filters
    named = [
        *(recipe.clean.fields or ()),
        *recipe.clean.per_field,
        *((recipe.pii.fields or ()) if recipe.pii else ()),
        *(recipe.dedup.fields or ()),
        *(name for bounds in (filters.min_chars, filters.max_chars, filters.min_tokens, filters.max_tokens) for name in bounds),
    ]
    return referenced_columns(recipe.template) | {name for name in named if name != WHOLE_EXAMPLE}


def plan_job(recipe: Recipe, *, overwrite: bool = False, resume: bool = False, writes: bool = True) -> JobPlan:
    """Check the recipe against its inputs and output before anything runs. ``writes=False``
    (``ftprep preview``) leaves the output alone; else the output is locked (``plan.lock``: the
    caller releases it) and prepared: emptied under ``overwrite``, an interrupted run's completed
    units kept under ``resume``."""
    try:
        files = expand_paths([_absolute(p) for p in recipe.input.all_paths()])
    except InputError as error:
        raise JobError(str(error)) from None
    except (OSError, ValueError, ImportError) as error:  # no access, unknown protocol, gcsfs/s3fs missing
        raise JobError(f"cannot list the inputs: {type(error).__name__}: {error}") from None
    source_of_file = _sources_of(recipe, files)
    try:
        formats = {url: recipe.input.format or infer_format(url) for url in files}
        needed = recipe_columns(recipe) if recipe.template is not None else set()
    except (InputError, TemplateError) as error:
        raise JobError(str(error)) from None
    jsonl = [url for url in files if formats[url] == "jsonl"]
    bad_files = check_jsonl_heads(jsonl, on_bad_file=recipe.input.on_bad_file)
    readable = [url for url in files if url not in bad_files]
    if recipe.template is not None:
        check_columns(readable, recipe, needed)
    example_format = resolve_example_format(recipe, [url for url in jsonl if url not in bad_files] or readable)
    try:
        target = target_for(recipe)
        target.check_format(example_format)
    except TargetError as error:
        raise JobError(str(error)) from None
    model = target.model
    try:
        tokens = target.token_source().check()
    except (EncodingError, TokenizerFilesError, ChatTemplateError) as error:
        raise JobError(f"target {target.kind}: {error}") from None
    # Read before the output is touched: an evaluation set or an earlier run's index that cannot
    # be used stops the run here.
    evals = eval_index(recipe.decontaminate) if recipe.decontaminate is not None else None
    try:
        references = tuple(open_references([_absolute(p) for p in recipe.dedup.against], recipe.dedup, len(files)))
    except ReferenceError as error:
        raise JobError(str(error)) from None
    output = _absolute(recipe.output.path)
    lock = fingerprint = None
    if writes:
        inputs = [_absolute(p) for p in recipe.input.all_paths()]
        check_output_location(output, input_files=files, input_dirs=input_directories(inputs))
        fingerprint = run_fingerprint(settings={"recipe": recipe.model_dump(mode="json"), "tokens": repr(tokens),
                                                "format": example_format, "bad_files": bad_files}, inputs=files)
        refuse_a_file(output)
        lock = OutputLock(output).acquire()
        try:
            prepare_output(output, overwrite=overwrite, resume=fingerprint if resume else None)
        except BaseException:
            lock.release()
            raise
    columns = frozenset(needed) if recipe.template is not None else None
    return JobPlan(
        recipe=recipe, files=files, columns=columns, model=model, output=output, example_format=example_format,
        target=target, tokens=tokens, bad_files=bad_files, lock=lock, fingerprint=fingerprint, resume=resume,
        eval_index=_save_eval_index(evals, output if writes else None, lock),
        decontamination=_decontamination(recipe, evals), references=references, source_of_file=source_of_file,
    )


def _source_names(recipe: Recipe, plan: JobPlan) -> tuple[str, ...] | None:
    if plan.source_of_file is None:
        return None
    return tuple(recipe.input.sources[index].name for index in plan.source_of_file)


def _source_settings(recipe: Recipe, plan: JobPlan) -> dict | None:
    """What stats.json says of each source before the run counts: its weight, requested share
    and files (by index in the run's)."""
    if plan.source_of_file is None:
        return None
    total = sum(source.weight for source in recipe.input.sources)
    return {source.name: {"weight": source.weight, "requested_share": source.weight / total,
                          "files": [i for i, owner in enumerate(plan.source_of_file) if owner == index]}
            for index, source in enumerate(recipe.input.sources)}


def _sources_of(recipe: Recipe, files: list[str]) -> tuple[int, ...] | None:
    """Each file's source (input.sources), by index; a file two sources match is refused."""
    if recipe.input.sources is None:
        return None
    owner: dict[str, int] = {}
    for index, source in enumerate(recipe.input.sources):
        try:
            matched = expand_paths([_absolute(p) for p in source.paths])
        except InputError as error:
            raise JobError(f"input.sources {source.name}: {error}") from None
        for url in matched:
            if owner.setdefault(url, index) != index:
                raise JobError(f"{url} is in sources {recipe.input.sources[owner[url]].name} and {source.name}: "
                               "a file belongs to one source")
    return tuple(owner[url] for url in files)


def _save_eval_index(index: EvalIndex | None, output: str | None, lock: OutputLock | None) -> str | None:
    """The evaluation sets' index written where the workers find it: the run's temporary
    directory, or a local one for a run that writes nothing (preview)."""
    if index is None:
        return None
    try:
        if output is not None:
            return index.save(join(output, TEMP_DIR, EVALS_DIR, EVAL_INDEX_FILE))
        local = tempfile.mkdtemp(prefix="ftprep-evals-")
        atexit.register(shutil.rmtree, local, True)
        return index.save(os.path.join(local, EVAL_INDEX_FILE))
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _decontamination(recipe: Recipe, index: EvalIndex | None) -> dict | None:
    """What stats.json says of the evaluation sets before the run counts its drops."""
    if index is None:
        return None
    spec = recipe.decontaminate
    return {"ngram": spec.ngram, "min_words": spec.min_words,
            "sets": {name: counts.to_json() for name, counts in index.summary.items()}}


def recipe_text(recipe: Recipe) -> str:
    """The recipe for the report: as its author wrote it, with the command line's overrides listed
    after it; a recipe built in code (``ftprep validate``) as its settings."""
    if recipe.source_text is None:
        return yaml.safe_dump(recipe.model_dump(mode="json", exclude_unset=True), sort_keys=False, allow_unicode=True)
    text = recipe.source_text.rstrip("\n") + "\n"
    if recipe.overrides:
        changes = yaml.safe_dump([{key: value} for key, value in recipe.overrides], sort_keys=False, allow_unicode=True)
        text += "\n# changed on the command line, in this order:\n" + "".join(f"# {line}\n" for line in changes.splitlines())
    return text


def record_stages(plan: JobPlan) -> list[tuple[str, BatchStage]]:
    """The per-record stages between reading and dedup, in order, with their step labels: each
    takes batches and returns ``(kept, rejected, *extra)``. ``ftprep preview`` runs the same."""
    recipe, fmt, target = plan.recipe, plan.example_format, plan.target
    stages: list[tuple[str, BatchStage]] = []
    if recipe.template is not None:
        stages.append(("CleanFields", CleanFields(spec=recipe.clean)))
    # PII is redacted before the template sees the fields; rows that already are examples are
    # never rewritten but for this redaction, in every string of them.
    if recipe.pii is not None:
        stages.append(("RedactPii", RedactPii(spec=recipe.pii, limits=recipe.limits)))
    if recipe.template is not None:
        stages.append(("RenderTemplate", RenderExamples(template=recipe.template, limits=recipe.limits)))
    else:
        stages.append(("TakeExamples", TakeExamples(format=fmt)))
    stages.append(("ValidateExamples", ValidateExamples(
        format=fmt, reject_blank=recipe.template is not None, limits=recipe.limits, open_weights=target.open_weights)))
    if target.converts:  # the target's row, once per example: a provider's own rules, TRL's shape
        stages.append(("CheckTarget", CheckTarget(target=target, format=fmt)))
    stages.append(("CountTokens", CountTokens(
        model=plan.model, format=fmt, spec=recipe.tokens, source=plan.tokens, limits=recipe.limits)))
    if recipe.filters.reasons():
        stages.append(("FilterExamples", FilterExamples(spec=recipe.filters, source=plan.tokens)))
    if plan.eval_index is not None:
        stages.append(("Decontaminate", Decontaminate(index_path=plan.eval_index)))
    return stages


def unit_stages(plan: JobPlan) -> list[tuple[str, BatchStage]]:
    """The per-record chain pass 1 runs on every batch: ``record_stages``, then the dedup keys
    (when the recipe deduplicates) and the split."""
    recipe = plan.recipe
    stages = record_stages(plan)
    if recipe.dedup.enabled:
        stages.append(("DedupKeys", DedupKeys(spec=recipe.dedup)))
    stages.append(("AssignSplit", AssignSplit(spec=recipe.split)))
    return stages


def build_pipeline(p: beam.Pipeline, plan: JobPlan, *, progress: ProgressWriter | None = None) -> None:
    """Wire the job into ``p``. ``progress``: where local workers report what they have read (None: nowhere).

    Pass 1 (``ProcessUnits``) reads, processes and writes each read unit to a temporary file in
    one step; dedup decides from the keys written there; pass 2 (``WriteShards``) cuts the final
    files from the temporary ones in (file, row) order, leaving the duplicates out. Only small
    results (unit summaries, keys, decisions, statistics) cross the pipeline between them.
    """
    recipe = plan.recipe
    units = p | "PlanUnits" >> PlanUnits(
        urls=plan.files, format=recipe.input.format, columns=plan.columns, csv=recipe.input.csv,
        progress=progress, bad_files=plan.bad_files,
    )
    settings = UnitSettings(
        columns=plan.columns, csv=recipe.input.csv, limits=recipe.limits, dedup=recipe.dedup,
        on_bad_file=recipe.input.on_bad_file, format=plan.example_format, max_tokens=plan.model.max_tokens_per_example,
        temp_dir=join(plan.output, TEMP_DIR, UNITS_DIR), files=tuple(plan.files),
        # Sizes let a shard end inside a unit: needed to honour a shard count or a byte limit.
        keep_sizes=recipe.output.max_shard_bytes is not None or recipe.output.num_shards is not None,
        pack_sections=plan.target.packs_rows, mix_sections=plan.source_of_file is not None,
        source_names=_source_names(recipe, plan),
        # The dataset card needs the rows' type.
        row_types=plan.target.dataset_card, resume=plan.resume,
    )
    results = units | "ProcessUnits" >> ProcessUnits(
        settings=settings, stages=[stage.dofn for _, stage in unit_stages(plan)], pii=recipe.pii, progress=progress,
    )
    # What the later steps read every unit's file by; they hold it all at once, as a side input.
    layouts = results | "UnitLayouts" >> beam.Map(UnitResult.layout)
    if recipe.dedup.enabled:
        against = (Against(plan.references, len(plan.files), recipe.dedup.near, join(plan.output, TEMP_DIR, DEDUP_DIR))
                   if plan.references else None)
        decisions = layouts | "DecideDuplicates" >> DecideDuplicates(
            spec=recipe.dedup, temp_dir=join(plan.output, TEMP_DIR), against=against)
    else:
        decisions = p | "NoDuplicates" >> beam.Create([])
    mix_figures = None
    if plan.source_of_file is not None:
        sources = recipe.input.sources
        mixed = layouts | "MixSources" >> MixSources(
            temp_dir=join(plan.output, TEMP_DIR), source_of_file=plan.source_of_file,
            names=[s.name for s in sources], weights=[s.weight for s in sources], decisions=decisions)
        decisions = (decisions, mixed.decisions) | "WithDownsampled" >> beam.Flatten()
        mix_figures = mixed.figures
    index_files = None
    if recipe.dedup.enabled:
        # What a later run's dedup.against reads instead of this run's data.
        index_files = (layouts | "WriteDedupIndex" >> WriteDedupIndex(
            spec=recipe.dedup, output_dir=plan.output, files=plan.files, decisions=decisions)
            | "AsIndexFiles" >> beam.Map(lambda path: (DEDUP_INDEX_DIR, path)))
    output = recipe.output
    provenance_dir = plan.target.provenance_dir
    pack_length = plan.model.max_tokens_per_example if plan.target.packs_rows else None
    specs = (
        p
        | "StartPlan" >> beam.Create([None])
        | "PlanShards" >> beam.FlatMap(
            lambda _, units, decisions: plan_shards(units, read_decisions(decisions), num_shards=output.num_shards,
                                                    max_shard_bytes=output.max_shard_bytes, provenance=output.provenance,
                                                    provenance_dir=provenance_dir, parquet=output.format == "parquet",
                                                    pack_length=pack_length, temp_dir=join(plan.output, TEMP_DIR)),
            beam.pvalue.AsList(layouts), beam.pvalue.AsList(decisions))
    )
    files, taken_back = specs | "WriteShards" >> WriteShards(
        context=ShardContext(output_dir=plan.output, files=(*plan.files, *reference_files(plan.references)),
                             max_tokens=plan.model.max_tokens_per_example, run_files=len(plan.files),
                             reference_dirs=tuple(r.path for r in plan.references for _ in r.files),
                             source_names=_source_names(recipe, plan)),
        decisions=decisions,
    )
    if index_files is not None:
        files = (files, index_files) | "ShardsAndIndex" >> beam.Flatten()
    parts = {"units": results, "taken_back": taken_back, "decisions": decisions}
    if mix_figures is not None:
        parts["mix"] = mix_figures
    stats = parts | "ComputeStats" >> ComputeStats(
        files=plan.files, model=plan.model, format=plan.example_format, split=recipe.split, finetune=recipe.finetune,
        dropped_reasons=recipe.dropped_reasons(), target=plan.target.kind, packing=plan.target.packing,
        packed=plan.target.packs_rows,
        tokenizer=plan.tokens.label, target_info=plan.target.describe(plan.tokens),
        decontamination=plan.decontamination, run_files=len(plan.files),
        references=[r.path for r in plan.references],
        sources=_source_settings(recipe, plan),
    )
    stats | "WriteStats" >> WriteStatsAndMarker(
        output=plan.output, files=files, units=results, target=plan.target,
        job={"finetune": recipe.finetune, "example_format": plan.example_format},
        report={"title": plan.output, "recipe": recipe_text(recipe)},
        card={"title": f"Fine-tuning data for {plan.model.name}", "extension": output.format}
        if plan.target.dataset_card else None,
        tokens=plan.tokens if plan.target.tokens is not None else None,
    )
