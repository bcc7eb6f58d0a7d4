"""``ftprep`` command line.

``ftprep run RECIPE [overrides] [Beam pipeline options]`` runs a recipe;
``ftprep validate PATH... --model M --output DIR`` checks JSONL already in a fine-tuning format.
Flags ftprep does not know pass through to Beam (``--runner``, ``--direct_num_workers``,
``--project``, ...). Exit codes: 0 done, 1 the pipeline failed, 2 the recipe, inputs or
options need fixing (one line says what), 3 ``validate`` rejected lines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from typing import TYPE_CHECKING, Sequence

from beam_pipeline.errors import UsageError, error_line
from beam_pipeline.logs import LOG_ONLY, configure_logging, new_log_path

if TYPE_CHECKING:
    from beam_pipeline.recipe import Override

LOGGER = logging.getLogger("ftprep")
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3


def _recipe_flags(command: argparse.ArgumentParser, *, writes: bool) -> None:
    """The recipe and what changes it; each flag becomes an override (``recipe_overrides``)."""
    group = command.add_argument_group("recipe")
    group.add_argument("recipe", help="recipe YAML (path or fsspec URL)")
    group.add_argument("--input", action="append", metavar="URL", help="input path or glob; replaces input.paths; repeatable")
    if writes:
        group.add_argument("--output", metavar="URL", help="output directory; replaces output.path")
    group.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                       help="override a recipe key, e.g. --set split.validation_fraction=0.05; repeatable")
    group.add_argument("--overrides", metavar="MAPPING",
                       help="YAML mapping of dotted recipe keys, e.g. '{split.seed: 3, dedup.exact: true}'")


def _encoding_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument("--encodings-url", metavar="URL",
                         help="directory holding <encoding>.tiktoken files, for workers without network; "
                              "replaces tokens.encodings_url")
    command.add_argument("-v", "--verbose", action="store_true", help="log Beam's own progress too")


def _target_flags(command: argparse.ArgumentParser, *, model: bool = True) -> None:
    """What the data is prepared for; each flag replaces one key of the recipe's ``target`` (or ``model``)."""
    group = command.add_argument_group("target")
    if model:
        group.add_argument("--model", help="the model to fine-tune; replaces model")
    from transforms.targets.registry import TARGETS

    group.add_argument("--target", choices=list(TARGETS),
                       help="openai (default): OpenAI's rules and tiktoken; hf: an open-weights model's tokenizer "
                            "and chat template; gpt-oss: the harmony format; azure-openai, together, fireworks, "
                            "vertex-gemini, bedrock-nova: that provider's format, rules and limits; replaces target.kind")
    group.add_argument("--tokenizer", metavar="DIR_URL_OR_HUB_ID",
                       help="for --target hf (and together, fireworks: exact counts): a folder or URL holding "
                            "tokenizer.json and tokenizer_config.json, or a hub id; replaces target.tokenizer")
    group.add_argument("--max-length", type=int, metavar="N",
                       help="the training sequence length (hf, gpt-oss), or a hosted model's per-example token "
                            "limit; replaces target.max_length")


def _job_flags(command: argparse.ArgumentParser) -> None:
    """How a job that writes runs: its output, bad files, progress, waiting."""
    group = command.add_argument_group("job")
    group.add_argument("--overwrite", action="store_true", help="replace the output directory if it is not empty")
    group.add_argument("--resume", action="store_true",
                       help="continue an interrupted run in the output directory: the units it completed are reused "
                            "(same recipe and inputs), the rest is done again")
    group.add_argument("--on-bad-file", choices=["fail", "skip"],
                       help="a file that cannot be read: fail the run (default) or skip it and list it in "
                            "stats.json under files.failed; replaces input.on_bad_file")
    group.add_argument("--no-progress", action="store_true", help="no progress lines on stderr during a local run")
    group.add_argument("--no-wait", action="store_true",
                       help="return once a remote runner (Dataflow, Flink) has accepted the job")


# Flags that replace one recipe key.
_FLAG_KEYS = {"input": "input.paths", "output": "output.path", "encodings_url": "tokens.encodings_url",
              "on_bad_file": "input.on_bad_file", "target": "target.kind", "tokenizer": "target.tokenizer",
              "max_length": "target.max_length", "model": "model"}


def recipe_overrides(args: argparse.Namespace) -> list[Override]:
    """Every change the command line makes to the recipe, as overrides applied in this order:
    ``--overrides``, each ``--set``, then the flags that replace one key."""
    from beam_pipeline.recipe import parse_override, parse_overrides_mapping

    overrides = parse_overrides_mapping(args.overrides) if getattr(args, "overrides", None) else []
    overrides += [parse_override(text) for text in getattr(args, "sets", ())]
    overrides += [(key, getattr(args, flag)) for flag, key in _FLAG_KEYS.items() if getattr(args, flag, None)]
    return overrides


def _version() -> str:
    from transforms.versions import installed_version

    return installed_version("ftprep") or "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftprep",
        description="Turn Parquet/CSV/JSONL shards into validated fine-tuning JSONL with Apache Beam.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"ftprep {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run a recipe",
        description="Run a recipe. Unknown --flags are Beam pipeline options (e.g. --runner).",
        allow_abbrev=False,
    )
    _recipe_flags(run, writes=True)
    _target_flags(run)
    _encoding_flags(run)
    _job_flags(run)

    preview = commands.add_parser(
        "preview",
        help="render the first rows of a recipe's input, without a pipeline",
        description=("Read the first rows of the recipe's input and run cleaning, PII, the template, validation, "
                     "token counting and filters on them in this process (no pipeline, nothing written); print "
                     "each example with its tokens, warnings and rejection codes."),
        allow_abbrev=False,
    )
    _recipe_flags(preview, writes=False)
    preview.add_argument("--rows", type=int, default=5, metavar="N", help="rows to preview (default 5)")
    preview.add_argument("--mask", action="store_true",
                         help="targets hf and gpt-oss: print each example's tokens, the trained ones marked ⟦…⟧ "
                              "(as output.tokens would write them)")
    _target_flags(preview)
    _encoding_flags(preview)

    inspect = commands.add_parser(
        "inspect",
        help="show the columns, types, row counts and sample values of input files",
        description="Print each input file's schema, row count and sample values, and the column names a template can use.",
        allow_abbrev=False,
    )
    inspect.add_argument("paths", nargs="+", metavar="PATH", help="files, globs or directories (fsspec URLs)")
    inspect.add_argument("--format", choices=["parquet", "csv", "jsonl"], help="default: from each file's name")
    inspect.add_argument("--rows", type=int, default=3, metavar="N", help="sample values per column (default 3)")
    inspect.add_argument("--delimiter", default=",", help="CSV delimiter (default ,)")
    inspect.add_argument("-v", "--verbose", action="store_true", help="log more")

    metrics = commands.add_parser(
        "metrics",
        help="turn a training run's loss and accuracy into curves, verdicts and suggested epochs",
        description=("Read a training run's metrics (OpenAI's results CSV, Hugging Face trainer_state.json, or a "
                     "CSV/JSONL of step and metric columns; fsspec URLs) and write metrics.html, metrics.json and, "
                     "when epochs can be suggested, finetune_job.suggested.json."),
        allow_abbrev=False,
    )
    metrics.add_argument("results", nargs="+", metavar="RESULTS", help="metric files of one run")
    metrics.add_argument("--data", metavar="OUTPUT_DIR",
                         help="the ftprep output the run trained on: its stats.json gives epochs and the validation size")
    metrics.add_argument("--epochs", type=int, metavar="N",
                         help="the epochs the run trained for, when neither the file nor --data says")
    metrics.add_argument("--output", default="metrics", metavar="DIR", help="where to write (default: ./metrics)")
    metrics.add_argument("-v", "--verbose", action="store_true", help="log more")

    validate = commands.add_parser(
        "validate",
        help="check JSONL that already is in a fine-tuning format",
        description=(
            "Check JSONL files already in a fine-tuning format against the platform's rules and the model's "
            "limit, count tokens and estimate the training cost. Valid lines go to train/ (and validation/ "
            "with --validation-fraction). Exits 3 when any line was rejected (or, for a hosted target, the files break "
            "its per-file limits), unless --allow-rejected. "
            "Unknown --flags are Beam pipeline options."
        ),
        allow_abbrev=False,
    )
    validate.add_argument("paths", nargs="+", metavar="PATH", help="JSONL files, globs or directories (fsspec URLs)")
    validate.add_argument("--model", help="the model to fine-tune, e.g. gpt-4o-mini-2024-07-18 (needed for the "
                                           "openai target; for the others a name for the outputs)")
    validate.add_argument("--format", default="auto", choices=["auto", "chat", "completion", "preference"],
                          help="example format (default: detected from the first line)")
    validate.add_argument("--output", required=True, metavar="URL", help="directory for stats, rejected/ and train/")
    validate.add_argument("--validation-fraction", type=float, default=0.0, metavar="F",
                          help="also split off this fraction as validation/ (default 0: no split)")
    validate.add_argument("--over-limit", choices=["reject", "truncate"], default="reject",
                          help="examples over the token limit: reject (default) or keep as the platform truncates them")
    validate.add_argument("--price-per-million-tokens", type=float, metavar="USD",
                          help="training price, to estimate the cost")
    validate.add_argument("--allow-rejected", action="store_true", help="exit 0 even when lines were rejected")
    _target_flags(validate, model=False)
    _encoding_flags(validate)
    _job_flags(validate)
    return parser


def execute(
    recipe, args: argparse.Namespace, beam_args: list[str]
) -> tuple[int, dict | None, str | None, float | None]:
    """Plan, build and run the pipeline for ``recipe``; return (exit code, stats, output path,
    seconds the local run took or None)."""
    # Imported here, after logging is configured: importing Beam logs at import time.
    import apache_beam as beam

    from beam_pipeline.options import OptionsError, is_local, local_runner, pipeline_options
    from beam_pipeline.pipeline import plan_job

    options = pipeline_options(beam_args, verbose=args.verbose)
    try:
        # Before plan_job, which may delete the output under --overwrite: a bad runner name fails first.
        pipeline = beam.Pipeline(runner=local_runner(options) if is_local(options) else None, options=options)
    except ValueError as error:
        raise OptionsError(str(error)) from None
    if args.overwrite and args.resume:
        raise UsageError("--overwrite and --resume do not go together: --resume keeps what the interrupted run "
                         "completed, --overwrite deletes it")
    plan = plan_job(recipe, overwrite=args.overwrite, resume=args.resume)
    try:
        return _execute(plan, pipeline, options, args)
    finally:
        if plan.lock is not None:
            plan.lock.release()


def _execute(plan, pipeline, options, args: argparse.Namespace) -> tuple[int, dict | None, str | None, float | None]:
    from apache_beam.io.filesystems import FileSystems

    from beam_pipeline.logs import failure_line, worker_output_to
    from beam_pipeline.options import is_local
    from beam_pipeline.outputs.location import write_manifest, write_run_file
    from beam_pipeline.pipeline import build_pipeline
    from schemas.layout import STATS_FILE
    from transforms.files import join

    LOGGER.info("reading %d file(s) into %s", len(plan.files), plan.output, extra=LOG_ONLY)
    reporter, elapsed = None, None
    if is_local(options) and not args.no_progress:
        from beam_pipeline.progress import ProgressReporter

        reporter = ProgressReporter(len(plan.files))
    build_pipeline(pipeline, plan, progress=reporter.writer() if reporter else None)
    not_run = _not_run_here(options)
    if not not_run:
        try:
            write_manifest(plan.output, inputs=plan.files)
            write_run_file(plan.output, plan.fingerprint)
        except OSError as error:
            raise UsageError(f"cannot write to output path {plan.output}: {error}") from None
    # Worker processes write to file descriptor 2: into the log unless -v.
    quiet = contextlib.nullcontext() if args.verbose or not args.log_path else worker_output_to(args.log_path)
    try:
        with quiet:
            if reporter is not None:
                reporter.start()
            started = time.monotonic()
            try:
                result = pipeline.run()
            finally:
                if reporter is not None:
                    reporter.stop()
                    elapsed = reporter.elapsed()
            if not_run:
                LOGGER.info("%s", not_run)
                return 0, None, plan.output, None
            if args.no_wait:
                LOGGER.info("job submitted (%s); it writes %s and then its _SUCCESS marker",
                            _job_id(result) or "no job id reported", plan.output)
                return 0, None, plan.output, None
            state = result.wait_until_finish()
            if elapsed is None and is_local(options):  # --no-progress: the run's time all the same
                elapsed = time.monotonic() - started
    except Exception as error:  # noqa: BLE001 - the runner's failure: one line, the traceback in the log
        LOGGER.error("the pipeline failed", exc_info=True, extra=LOG_ONLY)
        line = failure_line(error, output=plan.output, log_path=args.log_path, inputs=len(plan.files))
        print(f"ftprep: error: {error_line(line)}", file=sys.stderr)
        return EXIT_FAILED, None, plan.output, elapsed
    if state != "DONE":
        print(f"ftprep: error: the pipeline ended in state {state}; {plan.output} has no _SUCCESS marker"
              + (f" (Beam's full output: {args.log_path})" if args.log_path else ""), file=sys.stderr)
        return EXIT_FAILED, None, plan.output, elapsed
    with FileSystems.open(join(plan.output, STATS_FILE)) as f:
        return 0, json.load(f), plan.output, elapsed


def _not_run_here(options) -> str | None:
    """Why a job that ``run()`` accepted has no outputs to read: a Dataflow dry run or template."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions, TestOptions

    if options.view_as(TestOptions).dry_run:
        return "dry run: the job description was built and checked; nothing ran"
    template = options.view_as(GoogleCloudOptions).template_location
    if template:
        # A Flex Template launcher sets this too: it submits the job it finds there.
        return f"job description written to {template}; it runs when the template is launched"
    return None


def _job_id(result) -> str | None:
    job_id = getattr(result, "job_id", None)
    try:
        return job_id() if callable(job_id) else job_id
    except Exception:  # noqa: BLE001 - an id is only for the log line
        return None


def run_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    from beam_pipeline.recipe import load_recipe
    from beam_pipeline.summary import run_summary

    recipe = load_recipe(args.recipe, overrides=recipe_overrides(args))
    code, stats, output, elapsed = execute(recipe, args, beam_args)
    if stats is not None:
        for line in run_summary(stats, output, elapsed=elapsed):
            print(line, file=sys.stderr)
    return code


def validate_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    from beam_pipeline.recipe import recipe_from_document
    from beam_pipeline.summary import validate_summary

    doc = {
        "input": {"paths": args.paths, "format": "jsonl", "examples": args.format},
        "model": args.model,
        "clean": {"steps": []},
        "split": {"validation_fraction": args.validation_fraction},
        "tokens": {"over_limit": args.over_limit},
        "finetune": {"price_per_million_tokens": args.price_per_million_tokens},
    }
    recipe = recipe_from_document(doc, overrides=recipe_overrides(args), origin="ftprep validate")
    code, stats, output, _ = execute(recipe, args, beam_args)
    if stats is None:
        return code
    for line in validate_summary(stats, output):
        print(line)
    from beam_pipeline.summary import failed_checks

    if (stats["records"]["rejected"] or failed_checks(stats)) and not args.allow_rejected:
        return EXIT_REJECTED
    return code


def preview_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    from beam_pipeline.pipeline import plan_job
    from beam_pipeline.preview import preview, report_lines, token_pieces
    from beam_pipeline.recipe import load_recipe

    if args.rows < 1:
        raise UsageError("--rows must be at least 1")
    overrides = recipe_overrides(args)
    recipe = load_recipe(args.recipe, overrides=overrides)
    if args.mask and recipe.output.tokens is None:  # the mask is what tokenized rows hold: make them
        recipe = load_recipe(args.recipe, overrides=[*overrides, ("output.tokens", "trl")])
    plan = plan_job(recipe, writes=False)
    for line in report_lines(preview(plan, args.rows), plan.example_format, pieces=token_pieces(plan)):
        print(line)
    return 0


def metrics_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    from beam_pipeline.metrics import metrics_lines, write_metrics

    from beam_pipeline.metrics.reading import MAX_EPOCH

    if args.epochs is not None and not 1 <= args.epochs <= MAX_EPOCH:
        raise UsageError(f"--epochs must be from 1 to {MAX_EPOCH:,}")
    doc = write_metrics(args.results, output=args.output, data=args.data, epochs=args.epochs)
    for line in metrics_lines(doc):
        print(line)
    print(f"output      {args.output} (metrics.html to read in a browser)")
    return 0


def inspect_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    from beam_pipeline.inspection import inspect_lines

    lines, unreadable = inspect_lines(args.paths, fmt=args.format, rows=args.rows, delimiter=args.delimiter)
    for line in lines:
        print(line)
    if unreadable:
        sys.stdout.flush()
        more = f" and {len(unreadable) - 1} more" if len(unreadable) > 1 else ""
        print(f"ftprep: error: {unreadable[0]}{more} cannot be read (the reason is above)", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _flags_of(parser: argparse.ArgumentParser, command: str) -> list[str]:
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [flag for flag in subparsers.choices[command]._option_string_actions if flag.startswith("--")]


def _refuse_arguments(command: str, extra: list[str], flags: list[str]) -> None:
    from beam_pipeline.options import closest_flags

    unknown = [arg.split("=", 1)[0] for arg in extra if arg.startswith("-")]
    what = closest_flags(unknown, flags) if unknown else " ".join(extra)
    raise UsageError(f"unknown argument(s) for {command}: {what} (ftprep {command} --help lists its options)")


def main(argv: Sequence[str] | None = None) -> int:
    from beam_pipeline.logs import quiet_false_alarms

    quiet_false_alarms()  # building the parser imports Beam
    parser = _parser()
    args, beam_args = parser.parse_known_args(argv)
    # run and validate keep Beam's whole output in a log file; a failure names it.
    args.log_path = new_log_path() if args.command in ("run", "validate") else None
    configure_logging(args.verbose, args.log_path)
    if args.command in ("preview", "inspect", "metrics") and not args.verbose:
        logging.getLogger("transforms").setLevel(logging.WARNING)  # no "reading <file>" lines in the answer
    command = {"run": run_command, "validate": validate_command, "preview": preview_command,
               "inspect": inspect_command, "metrics": metrics_command}[args.command]
    try:
        if args.command in ("run", "validate"):
            from beam_pipeline.options import check_flags

            check_flags(beam_args, _flags_of(parser, args.command))
        elif beam_args:  # the other commands take no Beam options
            _refuse_arguments(args.command, beam_args, _flags_of(parser, args.command))
        return command(args, beam_args)
    except UsageError as error:
        LOGGER.info("usage error: %s", error, extra=LOG_ONLY)
        print(f"ftprep: error: {error_line(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - a failure nobody foresaw still ends in one line
        LOGGER.error("unexpected failure", exc_info=True, extra=LOG_ONLY)
        where = f" (the traceback is in {args.log_path})" if args.log_path else " (-v shows the traceback)"
        print(f"ftprep: error: {error_line(f'{type(error).__name__}: {error}')}{where}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
