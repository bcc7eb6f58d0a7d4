"""Files through Beam's filesystems (local paths, gs://, s3://), as the steps write and read them."""

from __future__ import annotations

import posixpath

from apache_beam.io.filesystems import FileSystems


def join(base: str, *parts: str) -> str:
    return FileSystems.join(base, *parts) if "://" in base else posixpath.join(base, *parts)


def read_bytes(path: str, start: int, end: int) -> bytes:
    """Bytes [start, end) of a file: a section of a pass-1 unit file."""
    with FileSystems.open(path) as f:
        f.seek(start)
        return f.read(end - start)


def write_bytes(path: str, data: bytes) -> None:
    with FileSystems.create(path) as f:
        f.write(data)
