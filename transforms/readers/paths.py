"""The recipe's input patterns expanded into files, and each file's format from its name."""

from __future__ import annotations

import posixpath
from typing import Iterable

import fsspec

from transforms.readers.base import InputError

COMPRESSION_SUFFIXES = (".gz", ".zst", ".bz2", ".xz")
FORMAT_BY_SUFFIX = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def is_compressed(url: str) -> bool:
    return url.lower().endswith(COMPRESSION_SUFFIXES)


def infer_format(url: str) -> str:
    name = url.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    for suffix, fmt in FORMAT_BY_SUFFIX.items():
        if name.endswith(suffix):
            return fmt
    raise InputError(
        f"cannot tell the format of {url!r} from its name; set input.format to parquet, csv or jsonl"
    )


def _is_hidden(path: str) -> bool:
    # Hadoop/Spark convention: _SUCCESS, _metadata, .part-0000.crc are not data.
    return posixpath.basename(path.rstrip("/")).startswith(("_", "."))


def expand_paths(patterns: Iterable[str]) -> list[str]:
    """Expand fsspec URLs, globs and directories into a sorted list of file URLs.

    A directory stands for every file below it. Hidden files (``_*``, ``.*``) are skipped.
    A pattern that matches no file is an error.
    """
    urls: set[str] = set()
    for pattern in patterns:
        fs, _, paths = fsspec.core.get_fs_token_paths(pattern)
        files = []
        for path in paths:
            files.extend(fs.find(path) if fs.isdir(path) else [path])
        files = [p for p in files if not _is_hidden(p)]
        if not files:
            raise InputError(f"input path {pattern!r} matches no files")
        urls.update(fs.unstrip_protocol(p) if "://" in pattern else p for p in files)
    return sorted(urls)
