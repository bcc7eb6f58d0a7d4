"""The output directory: where it may be, what ``--overwrite`` may delete, and the manifest that
says a directory is an ftprep output.

``--overwrite`` deletes only an earlier ftprep output and only what ftprep writes there: it is
recognised by the manifest ``_FTPREP`` that every run writes before any worker starts (so a run
that died before its ``_SUCCESS`` is recognised too), and every file under it must have a name
ftprep gives its files. Anything else is refused with the reason, before anything is deleted.
An output path that is, contains or lies inside an input, or that is ``/``, the home directory,
the current directory or one of their parents, is refused whatever the flags.

``--resume`` keeps what an interrupted run completed: its units' files and results under
``_temporary/units/``, when ``_temporary/run.json`` (``run_fingerprint``: the settings and the
input files by size and time) is the new run's; everything else it wrote is deleted.
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
    CARD_FILE, DATASET_PROVENANCE_DIR, DEDUP_DIR, DEDUP_INDEX_DIR, EVAL_INDEX_FILE, EVALS_DIR, JOB_FILE, LOCK_FILE, MANIFEST_FILE,
    PACK_DIR, PARTIAL_INFIX, PROVENANCE_DIR, REPORT_FILE, RUN_FILE, STATS_FILE, SUCCESS_FILE, TEMP_DIR, UNIT_DONE_SUFFIX, UNITS_DIR,
)
from schemas.records import DROPPED_DIR, REJECTED_DIR, SPLITS
from transforms.files import join, write_bytes
from transforms.versions import installed_version

LOGGER = logging.getLogger(__name__)

_TOP_FILES = (MANIFEST_FILE, SUCCESS_FILE, STATS_FILE, REPORT_FILE, JOB_FILE, CARD_FILE, LOCK_FILE)
_PROVENANCE = f"(?:{PROVENANCE_DIR}|{DATASET_PROVENANCE_DIR})"
_SHARDED = "|".join([*SPLITS, REJECTED_DIR, rf"{DROPPED_DIR}/[a-z0-9_]+", *(f"{_PROVENANCE}/{s}" for s in SPLITS)])
# A file still being written (transforms/files.py created_whole): its name, then this.
_PARTIAL = rf"(?:{re.escape(PARTIAL_INFIX)}[0-9a-f]{{8}})?"
_UNIT_FILE = rf"{TEMP_DIR}/{UNITS_DIR}/\d{{5,}}-\d{{12,}}\.unit(?:{re.escape(UNIT_DONE_SUFFIX)})?"
# Dedup's blocks of decisions (transforms/dedup.py), the packing plan (transforms/shards.py) and
# decontamination's index (transforms/decontaminate.py),
# left behind by a run that died after writing them (candidates-<p>: written before verified pairs).
_STEP_FILE = (rf"{TEMP_DIR}/{DEDUP_DIR}/(?:(?:(?:exact|near|candidates|against)-\d+|near|against|downsampled)\.npy"
              rf"|reference-bands-\d+\.bin)"
              rf"|{TEMP_DIR}/{PACK_DIR}/(?:{'|'.join(SPLITS)})\.(?:plan|rows)"
              rf"|{TEMP_DIR}/{EVALS_DIR}/{re.escape(EVAL_INDEX_FILE)}"
              # The run's dedup index (transforms/dedup_index.py): an output, kept.
              rf"|{DEDUP_INDEX_DIR}/(?:exact-\d+\.npy|signatures\.bin|index\.json)")
# A shard, or Beam's file sink's temporary directory (beam-temp-part-<uuid1 hex>) and what is in it.
_SHARD_FILE = re.compile(rf"(?:(?:{_SHARDED})/part-\d{{5,}}-of-\d{{5,}}\.(?:jsonl|parquet)|{_UNIT_FILE}|{_STEP_FILE}"
                         rf"|{'|'.join(re.escape(name) for name in _TOP_FILES)}|{TEMP_DIR}/{re.escape(RUN_FILE)}){_PARTIAL}"
                         rf"|(?:{_SHARDED})/beam-temp-part-[0-9a-f]{{32}}(?:/[^/]+)?")
# What --resume keeps of an interrupted run: its completed units, and what it was started with.
_KEPT_BY_RESUME = re.compile(rf"{_UNIT_FILE}|{TEMP_DIR}/{re.escape(RUN_FILE)}|{MANIFEST_FILE}|{LOCK_FILE}")
_DIRECTORY = re.compile(rf"(?:{_SHARDED}|{DROPPED_DIR}|{_PROVENANCE})(?:/beam-temp-part-[0-9a-f]{{32}})?"
                        rf"|{TEMP_DIR}(?:/(?:{UNITS_DIR}|{DEDUP_DIR}|{PACK_DIR}|{EVALS_DIR}))?|{DEDUP_INDEX_DIR}")
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

    @property
    def interrupted(self) -> bool:
        """A run started here and did not finish: its manifest, no marker."""
        return MANIFEST_FILE in self.files and SUCCESS_FILE not in self.files


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


def refuse_a_file(output: str) -> None:
    if _is_a_file(output):
        raise OutputPathError(f"output path {output} is a file; give a directory (it is created if missing)")


def prepare_output(output: str, *, overwrite: bool, resume: dict | None = None) -> None:
    """Make sure ``output`` can take a new run: empty, or (with ``overwrite``) an earlier ftprep
    output, whose files are then deleted. Anything else is refused before anything is deleted.
    ``resume``: the run's fingerprint (``run_fingerprint``); an interrupted run with the same one
    is kept but for its completed units, which the new run reuses."""
    refuse_a_file(output)
    existing = existing_output(output)
    ours = [LOCK_FILE]  # taken by this run before it looked
    if resume is not None:
        _check_resumable(output, existing, resume)
        ours += [f for f in existing.files if _KEPT_BY_RESUME.fullmatch(f)]
        done = sum(f.endswith(UNIT_DONE_SUFFIX) for f in ours)
        LOGGER.info("--resume: %d read unit(s) the interrupted run completed are reused; the rest is read again", done)
    elif set(existing.files) <= {LOCK_FILE} and not existing.directories:
        return
    elif not overwrite and existing.interrupted:
        raise OutputPathError(f"an interrupted run is in {output}; --resume to continue it (the units it completed are "
                              "reused), --overwrite to start again")
    elif not overwrite:
        raise OutputPathError(f"output path {output} is not empty; pass --overwrite to replace an earlier ftprep "
                              "output there")
    recognised = existing.recognised
    existing = ExistingOutput([f for f in existing.files if f not in ours],
                              [d for d in existing.directories if resume is None or not _holds_kept(d)])
    if not existing.files and not existing.directories:
        return
    if not recognised:
        raise OutputPathError(f"--overwrite refused: {output} is not an ftprep output (it has no {MANIFEST_FILE}); "
                              "ftprep deletes only what it wrote. Choose another output path or empty it yourself")
    foreign = existing.foreign
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputPathError(f"--overwrite refused: {output} holds files ftprep did not write ({shown}); "
                              "move them or choose another output path")
    LOGGER.info("%s: deleting the earlier ftprep output in %s (%d files)", "--resume" if resume else "--overwrite",
                output, len(existing.files))
    if existing.files:
        FileSystems.delete([join(output, f) for f in existing.files])
    for directory in existing.directories:  # deepest first: each is empty once its children are gone
        os.rmdir(os.path.join(output, directory))


def _holds_kept(directory: str) -> bool:
    return directory in (TEMP_DIR, f"{TEMP_DIR}/{UNITS_DIR}")


def _file_infos(urls: list[str]) -> dict[str, dict]:
    """url -> its fsspec info, one listing per directory: a bucket of 10,000 shards is a few
    listings, not 10,000 requests."""
    import fsspec

    by_directory: dict[tuple[int, str], list[tuple[str, str]]] = {}
    filesystems = {}
    for url in urls:
        fs, path = fsspec.core.url_to_fs(url)
        filesystems[id(fs)] = fs
        by_directory.setdefault((id(fs), fs._parent(path)), []).append((url, fs._strip_protocol(path)))
    infos = {}
    for (key, directory), members in by_directory.items():
        fs = filesystems[key]
        try:
            listed = {fs._strip_protocol(entry["name"]): entry for entry in fs.ls(directory, detail=True)}
        except (OSError, ValueError):
            listed = {}
        for url, path in members:
            try:
                infos[url] = listed.get(path) or fs.info(path)
            except FileNotFoundError:  # gone since it was listed, or named and skipped (--on-bad-file=skip)
                infos[url] = {}
    return infos


def run_fingerprint(*, settings: dict, inputs: list[str]) -> dict:
    """What a run's outputs follow from: its settings (the resolved recipe and what the launch
    pinned) and its input files by size and modification time. --resume continues an
    interrupted run only when this is the same."""
    files = []
    infos = _file_infos(inputs)
    for url in inputs:
        info = infos[url]
        changed = next((info[key] for key in ("mtime", "LastModified", "updated", "ETag", "etag") if key in info), None)
        files.append([url, info.get("size"), str(changed)])
    return {"ftprep": installed_version("ftprep") or "unknown", "settings": settings, "inputs": files}


def _check_resumable(output: str, existing: ExistingOutput, fingerprint: dict) -> None:
    if SUCCESS_FILE in existing.files:
        raise OutputPathError(f"--resume: the run in {output} finished (it has {SUCCESS_FILE}); nothing to resume")
    run_file = f"{TEMP_DIR}/{RUN_FILE}"
    if not existing.interrupted or run_file not in existing.files:
        raise OutputPathError(f"--resume: {output} holds no interrupted ftprep run to continue (no {MANIFEST_FILE} and "
                              f"{run_file}); run without --resume")
    try:
        with FileSystems.open(join(output, run_file)) as f:
            earlier = json.loads(f.read())
    except (OSError, ValueError) as error:
        raise OutputPathError(f"--resume: {join(output, run_file)} cannot be read ({error}); --overwrite to start again") from None
    changed = [name for name in ("ftprep", "settings", "inputs") if earlier.get(name) != fingerprint[name]]
    if changed:
        what = {"ftprep": "the ftprep version", "settings": "the recipe (or a flag that changes it)",
                "inputs": "the input files (their list, sizes or modification times)"}
        raise OutputPathError(f"--resume refused: {' and '.join(what[name] for name in changed)} changed since the "
                              f"interrupted run in {output}; --overwrite to start again")


def write_run_file(output: str, fingerprint: dict) -> None:
    write_bytes(join(output, TEMP_DIR, RUN_FILE), json.dumps(fingerprint, indent=1, sort_keys=True).encode() + b"\n")


def manifest_bytes(*, inputs: list[str]) -> bytes:
    doc = {"written_by": "ftprep", "version": installed_version("ftprep") or "unknown",
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "inputs": inputs,
           "note": "--overwrite deletes this directory's ftprep files only where this manifest is present"}
    return json.dumps(doc, indent=2).encode() + b"\n"


def write_manifest(output: str, *, inputs: list[str]) -> None:
    """Mark ``output`` as an ftprep output before anything else is written there."""
    write_bytes(join(output, MANIFEST_FILE), manifest_bytes(inputs=inputs))
