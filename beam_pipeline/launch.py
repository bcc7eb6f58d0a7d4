"""``ftprep run`` for launchers that pass every argument as ``--name=value``.

Dataflow Flex Templates start ``python FILE --param=value ...`` with one flag per template
parameter, and Airflow's ``BeamRunPythonPipelineOperator`` turns its ``pipeline_options`` dict into
flags the same way; neither can pass a positional recipe or a repeated ``--set``. So:

    python -m beam_pipeline.launch --recipe=gs://b/recipe.yaml --input=gs://b/in/*.parquet \\
        --output=gs://b/out/2026-11-26 --overrides='{split.seed: 3}' --overwrite=true --runner=DataflowRunner

``--input`` may repeat or hold several URLs separated by commas; ``--overrides`` is a YAML
mapping of dotted recipe keys (``ftprep run --overrides``); ``--set`` may repeat;
``--overwrite``, ``--resume`` and ``--no_wait`` accept ``true``/``false``. Every other flag is a Beam
pipeline option; a flag with a blank value (``--job_endpoint=``) counts as not given. Exit codes
are ``ftprep run``'s.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from beam_pipeline import cli

_TRUE = {"true", "1", "yes", "on", ""}
_FALSE = {"false", "0", "no", "off"}


def _flag(value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m beam_pipeline.launch", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
    )
    parser.add_argument("--recipe", required=True, help="recipe YAML (path or fsspec URL)")
    parser.add_argument("--input", action="append", default=[], help="input URL(s), comma-separated; repeatable")
    parser.add_argument("--output", help="output directory; replaces output.path")
    parser.add_argument("--overrides", default="", help="YAML mapping of dotted recipe keys, e.g. '{split.seed: 3}'")
    parser.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE")
    parser.add_argument("--overwrite", type=_flag, nargs="?", const=True, default=False)
    parser.add_argument("--resume", type=_flag, nargs="?", const=True, default=False)
    parser.add_argument("--no_wait", "--no-wait", type=_flag, nargs="?", const=True, default=False, dest="no_wait")
    parser.add_argument("--encodings_url", "--encodings-url", dest="encodings_url")
    parser.add_argument("--verbose", type=_flag, nargs="?", const=True, default=False)
    return parser


def run_arguments(argv: Sequence[str]) -> list[str]:
    """The ``ftprep run`` command line equivalent to launcher-style ``argv``."""
    args, beam_args = _parser().parse_known_args(list(argv))
    command = ["run", args.recipe]
    for value in args.input:
        command += [arg for url in value.split(",") if url.strip() for arg in ("--input", url.strip())]
    if args.output:
        command += ["--output", args.output]
    if args.overrides.strip():
        command.append(f"--overrides={args.overrides}")  # parsed once, by ftprep run
    command += [arg for text in args.sets for arg in ("--set", text)]
    if args.overwrite:
        command.append("--overwrite")
    if args.resume:
        command.append("--resume")
    if args.no_wait:
        command.append("--no-wait")
    if args.encodings_url:
        command += ["--encodings-url", args.encodings_url]
    if args.verbose:
        command.append("--verbose")
    # Launchers pass every parameter they know of, blank when unused (a DAG's optional
    # --job_endpoint=, say): blank means not given, not "set to the empty string".
    return command + [arg for arg in beam_args if not (arg.startswith("--") and arg.endswith("="))]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        command = run_arguments(sys.argv[1:] if argv is None else argv)
    except cli.UsageError as error:
        print(f"ftprep: error: {error}", file=sys.stderr)
        return cli.EXIT_USAGE
    return cli.main(command)


if __name__ == "__main__":
    sys.exit(main())
