"""Beam pipeline options: whatever the user passes, plus local defaults that use the machine."""

from __future__ import annotations

import argparse
import difflib
import os
from typing import Iterable, Sequence

from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    SetupOptions,
    StandardOptions,
    WorkerOptions,
)

from beam_pipeline.errors import UsageError

# Local worker processes log at INFO by default: Beam's harness chatter and a line per file read.
# Progress comes from the progress lines (beam_pipeline/progress.py); workers log warnings only.
QUIET_LOCAL_WORKERS = {"transforms": "WARNING", "beam_pipeline": "INFO", "__main__": "ERROR",
                       "apache_beam.options.pipeline_options": "ERROR"}

LOCAL_RUNNERS = ("DirectRunner", "direct", "BundleBasedDirectRunner", "SwitchingDirectRunner", "FnApiRunner")


class OptionsError(UsageError):
    pass


def _given(beam_args: Sequence[str], flag: str) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for arg in beam_args)


def _positionals(beam_args: Sequence[str]):
    """Arguments that are neither a --flag nor the value of the --flag before them."""
    previous = None
    for arg in beam_args:
        takes_value = previous is not None and previous.startswith("--") and "=" not in previous
        if not arg.startswith("-") and not takes_value:
            yield arg
        previous = None if takes_value and not arg.startswith("-") else arg


def _beam_parser() -> argparse.ArgumentParser:
    """The parser Beam itself builds from every pipeline options class (all of them live in
    ``apache_beam.options.pipeline_options``), captured through its public hook."""
    captured = []
    PipelineOptions([]).get_all_options(add_extra_args_fn=captured.append)
    return captured[0]


def _refuse_value(message: str):
    raise OptionsError(f"{message} (a Beam pipeline option)")


def check_flags(beam_args: Sequence[str], ftprep_flags: Iterable[str] = ()) -> None:
    """Refuse a flag that neither ftprep nor any Beam pipeline options class defines. Beam only
    warns about one and goes on, so a misspelt ``--outptu`` would run with the recipe's output."""
    parser = _beam_parser()
    parser.error = _refuse_value  # argparse would print Beam's whole usage (over 100 lines) and exit
    _, unknown = parser.parse_known_args(list(beam_args))
    flags = [arg.split("=", 1)[0] for arg in unknown if arg.startswith("-")]
    if not flags:
        return
    known = {*ftprep_flags, *(f for f in parser._option_string_actions if f.startswith("--"))}
    raise OptionsError(f"unknown option(s) {closest_flags(flags, known)}: neither ftprep nor Beam defines "
                       "them (ftprep run --help lists ftprep's; Beam's are its pipeline options)")


def closest_flags(flags: Iterable[str], known: Iterable[str]) -> str:
    """The unknown ``flags``, each with the known flag it is closest to: ``--row (did you mean --rows?)``."""
    known = sorted(known)
    named = []
    for flag in flags:
        close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
        named.append(f"{flag} (did you mean {close[0]}?)" if close else flag)
    return ", ".join(named)


def is_local(options: PipelineOptions) -> bool:
    """The run happens on this machine (DirectRunner in any mode): local progress can be shown."""
    return options.view_as(StandardOptions).runner in LOCAL_RUNNERS


def local_runner(options: PipelineOptions):
    """The runner for a local run: Beam's FnApiRunner, as the DirectRunner picks it for ftprep's
    graph, with the pipeline options its worker processes get. The DirectRunner would first try
    Prism, downloading its binary from GitHub on every run where that is possible (and running the
    job on a runner ftprep is not tested on); without network it wastes a second failing."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    # Beam's workers run bundles on many threads, and glibc gives each thread its own malloc
    # arena, from which freed memory seldom returns: with two arenas the largest worker of a
    # 2M-row run peaked about 50 MB lower (benchmarks/results.md). The workers are started
    # from this process and inherit it; a user's own setting wins.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return fn_runner.FnApiRunner(provision_info=provision)


def pipeline_options(beam_args: Sequence[str], *, verbose: bool = False) -> PipelineOptions:
    """Options for Beam; on DirectRunner, one worker process per core unless the user chose otherwise."""
    flags = [arg for arg in beam_args if arg.startswith("-")]
    stray = list(_positionals(beam_args))
    if stray:
        raise OptionsError(f"unexpected argument(s) {' '.join(stray)}; options are --name=value")
    options = PipelineOptions(list(beam_args))
    if not (_given(flags, "--save_main_session") or _given(flags, "--no_save_main_session")):
        # Every function the workers run lives in an importable module; pickling the launcher's
        # __main__ (which Beam does by default on Dataflow) would only ship the CLI's globals.
        options.view_as(SetupOptions).save_main_session = False
    runner = options.view_as(StandardOptions).runner
    if runner is None or runner in LOCAL_RUNNERS:
        options.view_as(StandardOptions).runner = runner or "DirectRunner"
        direct = options.view_as(DirectOptions)
        if not _given(flags, "--direct_running_mode"):
            direct.direct_running_mode = "multi_processing"
        if not _given(flags, "--direct_num_workers") and direct.direct_running_mode != "in_memory":
            direct.direct_num_workers = os.cpu_count() or 1
        worker = options.view_as(WorkerOptions)
        if not verbose and not _given(flags, "--default_sdk_harness_log_level"):
            worker.default_sdk_harness_log_level = "WARNING"
            worker.sdk_harness_log_level_overrides = {**QUIET_LOCAL_WORKERS, **(worker.sdk_harness_log_level_overrides or {})}
    return options
