"""The output directory: where it may be, what ``--overwrite`` may delete, and the manifest that
says a directory is an ftprep output.

``--overwrite`` deletes only an earlier ftprep output and only what ftprep writes there: it is
recognised by the manifest ``_FTPREP`` that every run writes before any worker starts (so a run
that died before its ``_SUCCESS`` is recognised too), and every file under it must have a name
ftprep gives its files. Anything else is refused with the reason, before anything is deleted.
An output path that is, contains or lies inside an input, or that is ``/``, the home directory,
the current directory or one of their parents, is refused whatever the flags.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Iterable

from apache_beam.io.filesystems import FileSystems

from beam_pipeline.errors import UsageError
from schemas.layout import (
    CARD_FILE, DATASET_PROVENANCE_DIR, JOB_FILE, MANIFEST_FILE, PROVENANCE_DIR, REPORT_FILE, STATS_FILE, SUCCESS_FILE, TEMP_DIR, UNITS_DIR,
)
from schemas.records import DROPPED_DIR, REJECTED_DIR, SPLITS
from transforms.files import join, write_bytes

LOGGER = logging.getLogger(__name__)

_TOP_FILES = (MANIFEST_FILE, SUCCESS_FILE, STATS_FILE, REPORT_FILE, JOB_FILE, CARD_FILE)
_PROVENANCE = f"(?:{PROVENANCE_DIR}|{DATASET_PROVENANCE_DIR})"
_SHARDED = "|".join([*SPLITS, REJECTED_DIR, rf"{DROPPED_DIR}/[a-z0-9_]+", *(f"{_PROVENANCE}/{s}" for s in SPLITS)])
# A shard, or Beam's file sink's temporary directory (beam-temp-part-<uuid1 hex>) and what is in it.
_SHARD_FILE = re.compile(rf"(?:{_SHARDED})/(?:part-\d{{5,}}-of-\d{{5,}}\.(?:jsonl|parquet)|beam-temp-part-[0-9a-f]{{32}}(?:/[^/]+)?)"
                         rf"|{TEMP_DIR}/{UNITS_DIR}/\d{{5,}}-\d{{12,}}\.unit")
_DIRECTORY = re.compile(rf"(?:{_SHARDED}|{DROPPED_DIR}|{_PROVENANCE})(?:/beam-temp-part-[0-9a-f]{{32}})?"
                        rf"|{TEMP_DIR}(?:/{UNITS_DIR})?")
_GLOB_CHARS = re.compile(r"[*?\[]")


class OutputPathError(UsageError):
    """The output path cannot be used (or replaced); the message says why."""


def written_by_ftprep(relative: str) -> bool:
    """Whether ``relative`` (a path under an output directory) is a name ftprep gives a file."""
    return relative in _TOP_FILES or _SHARD_FILE.fullmatch(relative) is not None


def _is_url(path: str) -> bool:
    return "://" in path


def _normalised(path: str) -> str:
    """Local paths resolved (``..``, symlinks); URLs with their trailing slashes removed."""
    if _is_url(path):
        scheme, _, rest = path.partition("://")
        return f"{scheme}://{rest.rstrip('/')}"
    return os.path.realpath(path)


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def input_directories(patterns: Iterable[str]) -> list[str]:
    """The inputs given as directories (globs stand for the files they match, not a directory)."""
    import fsspec

    found = []
    for pattern in patterns:
        if _GLOB_CHARS.search(pattern):
            continue
        fs, path = fsspec.core.url_to_fs(pattern)
        if fs.isdir(path):
            found.append(pattern)
    return found


def check_output_location(output: str, *, input_files: Iterable[str], input_dirs: Iterable[str] = ()) -> None:
    """Refuse an output path that would overlap the inputs, or that is a place no run should
    empty: the root, the home directory, the current directory, or a parent of either."""
    target = _normalised(output)
    for path in input_files:
        source = _normalised(path)
        if _within(source, target):
            raise OutputPathError(f"output path {output} holds the input file {path}; choose a directory of its own")
        if _within(target, source):
            raise OutputPathError(f"output path {output} lies inside the input file {path}")
    for path in input_dirs:
        source = _normalised(path)
        if _within(source, target):
            raise OutputPathError(f"output path {output} holds the input directory {path}; choose a directory of its own")
        if _within(target, source):
            raise OutputPathError(f"output path {output} lies inside the input directory {path}, which a later run "
                                  "would read as input; choose a directory outside it")
    if _is_url(output):
        return
    for name, place in (("the current directory", os.getcwd()), ("the home directory", os.path.expanduser("~"))):
        if _within(_normalised(place), target):
            what = "is" if _normalised(place) == target else "holds"
            raise OutputPathError(f"output path {output} {what} {name}; choose a directory of its own")


@dataclass(frozen=True)
class ExistingOutput:
    files: list[str]  # relative to the output path
    directories: list[str]  # local only: directories to remove once empty, deepest first

    @property
    def foreign(self) -> list[str]:
        return [f for f in self.files if not written_by_ftprep(f)] + [
            d + "/" for d in self.directories if not _DIRECTORY.fullmatch(d)]

    @property
    def recognised(self) -> bool:
        """It carries the manifest, or (outputs written before the manifest existed) stats or the marker."""
        return MANIFEST_FILE in self.files or STATS_FILE in self.files or SUCCESS_FILE in self.files


def _local_listing(output: str) -> ExistingOutput:
    files, directories = [], []
    for root, dirs, names in os.walk(output, topdown=True, followlinks=False):
        relative_root = os.path.relpath(root, output)
        prefix = "" if relative_root == "." else relative_root + "/"
        for name in dirs:
            if os.path.islink(os.path.join(root, name)):  # a link is deleted as a file, never followed
                files.append(prefix + name)
            else:
                directories.append(prefix + name)
        files.extend(prefix + name for name in names)
    directories.sort(key=lambda d: d.count("/"), reverse=True)
    return ExistingOutput(sorted(files), directories)


def _remote_listing(output: str) -> ExistingOutput:
    base = output.rstrip("/") + "/"
    matched = FileSystems.match([join(output, "**")])[0].metadata_list
    return ExistingOutput(sorted(m.path[len(base):] for m in matched if m.path.startswith(base)), [])


def existing_output(output: str) -> ExistingOutput:
    try:
        if _is_url(output):
            return _remote_listing(output)
        return _local_listing(output) if os.path.isdir(output) else ExistingOutput([], [])
    except (ValueError, OSError) as error:  # a scheme Beam's filesystems do not know (memory://), no access
        raise OutputPathError(f"cannot write to output path {output}: {error}") from None


def _is_a_file(output: str) -> bool:
    if _is_url(output):
        try:
            return any(m.path.rstrip("/") == output.rstrip("/") for m in FileSystems.match([output])[0].metadata_list)
        except (ValueError, OSError):
            return False
    return os.path.lexists(output) and not os.path.isdir(output)


def prepare_output(output: str, *, overwrite: bool) -> None:
    """Make sure ``output`` can take a new run: empty, or (with ``overwrite``) an earlier ftprep
    output, whose files are then deleted. Anything else is refused before anything is deleted."""
    if _is_a_file(output):
        raise OutputPathError(f"output path {output} is a file; give a directory (it is created if missing)")
    existing = existing_output(output)
    if not existing.files and not existing.directories:
        return
    if not overwrite:
        raise OutputPathError(f"output path {output} is not empty; pass --overwrite to replace an earlier ftprep "
                              "output there")
    if not existing.recognised:
        raise OutputPathError(f"--overwrite refused: {output} is not an ftprep output (it has no {MANIFEST_FILE}); "
                              "ftprep deletes only what it wrote. Choose another output path or empty it yourself")
    foreign = existing.foreign
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputPathError(f"--overwrite refused: {output} holds files ftprep did not write ({shown}); "
                              "move them or choose another output path")
    LOGGER.info("--overwrite: deleting the earlier ftprep output in %s (%d files)", output, len(existing.files))
    FileSystems.delete([join(output, f) for f in existing.files])
    for directory in existing.directories:  # deepest first: each is empty once its children are gone
        os.rmdir(os.path.join(output, directory))


def manifest_bytes(*, inputs: list[str]) -> bytes:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ftprep_version = version("ftprep")
    except PackageNotFoundError:  # run from a source tree that is not installed
        ftprep_version = "unknown"
    doc = {"written_by": "ftprep", "version": ftprep_version,
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "inputs": inputs,
           "note": "--overwrite deletes this directory's ftprep files only where this manifest is present"}
    return json.dumps(doc, indent=2).encode() + b"\n"


def write_manifest(output: str, *, inputs: list[str]) -> None:
    """Mark ``output`` as an ftprep output before anything else is written there."""
    write_bytes(join(output, MANIFEST_FILE), manifest_bytes(inputs=inputs))
