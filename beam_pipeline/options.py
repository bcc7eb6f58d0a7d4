"""Beam pipeline options: whatever the user passes, plus local defaults that use the machine."""

from __future__ import annotations

import os
from typing import Sequence

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

LOCAL_RUNNERS = ("DirectRunner", "direct", "BundleBasedDirectRunner", "SwitchingDirectRunner")


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


def is_local(options: PipelineOptions) -> bool:
    """The run happens on this machine (DirectRunner in any mode): local progress can be shown."""
    return options.view_as(StandardOptions).runner in LOCAL_RUNNERS


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
