"""``ftprep`` command line: ``ftprep run RECIPE [overrides] [Beam pipeline options]``.

Flags ftprep does not know pass through to Beam (``--runner``, ``--direct_num_workers``,
``--project``, ...). Exit codes: 0 done, 2 the recipe, inputs or options need fixing
(one line says what), 1 the pipeline failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Sequence

from beam_pipeline.errors import UsageError

LOGGER = logging.getLogger("ftprep")
EXIT_USAGE = 2
EXIT_FAILED = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftprep",
        description="Turn Parquet/CSV/JSONL shards into validated fine-tuning JSONL with Apache Beam.",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run a recipe",
        description="Run a recipe. Unknown --flags are Beam pipeline options (e.g. --runner).",
        allow_abbrev=False,
    )
    run.add_argument("recipe", help="recipe YAML (path or fsspec URL)")
    run.add_argument("--input", action="append", metavar="URL", help="input path or glob; replaces input.paths; repeatable")
    run.add_argument("--output", metavar="URL", help="output directory; replaces output.path")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                     help="override a recipe key, e.g. --set split.validation_fraction=0.05; repeatable")
    run.add_argument("--overwrite", action="store_true", help="replace the output directory if it is not empty")
    run.add_argument("--encodings-url", metavar="URL",
                     help="directory holding <encoding>.tiktoken files, for workers without network")
    run.add_argument("-v", "--verbose", action="store_true", help="log Beam's own progress too")
    return parser


# Beam warnings that are false alarms for ftprep: with_outputs() after with_exception_handling()
# reports our tags as undeclared although they are routed correctly, and importing Beam's I/O
# without the gcp extra reports that the BigQuery client is missing, which ftprep never uses.
BEAM_FALSE_ALARMS = ("requested in with_outputs() but not declared", "apitools not found")


def _not_a_false_alarm(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(alarm in message for alarm in BEAM_FALSE_ALARMS)


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_not_a_false_alarm)
    if not verbose:
        logging.getLogger("apache_beam").setLevel(logging.WARNING)


def summary_lines(stats: dict, output: str) -> list[str]:
    records, tokens = stats["records"], stats["tokens"]
    per_example = tokens["per_example"]
    codes = ", ".join(f"{code} {n}" for code, n in stats["rejections"].items()) or "none"
    dropped = ", ".join(f"{reason} {n}" for reason, n in records["dropped"].items()) or "none"
    return [
        f"read        {records['read']:>10,} rows from {len(stats['files'])} file(s)",
        f"train       {records['train']:>10,} examples  {tokens['train']:>12,} tokens",
        f"validation  {records['validation']:>10,} examples  {tokens['validation']:>12,} tokens",
        f"rejected    {records['rejected']:>10,} ({codes})",
        f"dropped     {sum(records['dropped'].values()):>10,} ({dropped})",
        f"tokens      {tokens['encoding']}; per example p50 {per_example['p50']}, p95 {per_example['p95']}, "
        f"max {per_example['max']} of {stats['model']['max_tokens_per_example']} allowed",
        f"output      {output}",
    ]


def run_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    # Imported here, after logging is configured: importing Beam logs at import time.
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems

    from beam_pipeline.options import OptionsError, pipeline_options
    from beam_pipeline.pipeline import build_pipeline, plan_job
    from beam_pipeline.recipe import load_recipe
    from transforms.write import STATS_FILE, join

    recipe = load_recipe(args.recipe, overrides=args.overrides, inputs=args.input, output=args.output)
    if args.encodings_url:
        recipe = recipe.model_copy(update={"tokens": recipe.tokens.model_copy(update={"encodings_url": args.encodings_url})})
    options = pipeline_options(beam_args, verbose=args.verbose)
    try:
        # Before plan_job, which may delete the output under --overwrite: a bad runner name fails first.
        pipeline = beam.Pipeline(options=options)
    except ValueError as error:
        raise OptionsError(str(error)) from None
    plan = plan_job(recipe, overwrite=args.overwrite)
    LOGGER.info("reading %d file(s) into %s", len(plan.files), plan.output)
    build_pipeline(pipeline, plan)
    try:
        state = pipeline.run().wait_until_finish()
    except Exception:  # noqa: BLE001 - the runner's failure, reported with its traceback
        LOGGER.exception("the pipeline failed; %s has no _SUCCESS marker", plan.output)
        return EXIT_FAILED
    if state != "DONE":
        LOGGER.error("pipeline ended in state %s", state)
        return EXIT_FAILED
    with FileSystems.open(join(plan.output, STATS_FILE)) as f:
        stats = json.load(f)
    for line in summary_lines(stats, plan.output):
        print(line, file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args, beam_args = _parser().parse_known_args(argv)
    configure_logging(args.verbose)
    try:
        return run_command(args, beam_args)
    except UsageError as error:
        print(f"ftprep: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
