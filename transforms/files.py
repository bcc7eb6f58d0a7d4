"""Files through Beam's filesystems (local paths, gs://, s3://), as the steps write and read them."""

from __future__ import annotations

import contextlib
import os
import posixpath
import uuid
from typing import IO, Iterator

from apache_beam.io.filesystems import FileSystems

from schemas.layout import PARTIAL_INFIX


def join(base: str, *parts: str) -> str:
    return FileSystems.join(base, *parts) if "://" in base else posixpath.join(base, *parts)


def read_bytes(path: str, start: int, end: int) -> bytes:
    """Bytes [start, end) of a file: a section of a pass-1 unit file."""
    with FileSystems.open(path) as f:
        f.seek(start)
        return f.read(end - start)


def local_path(path: str) -> str | None:
    """``path`` on this machine's file system (a plain path or ``file://``), or None for a URL."""
    if "://" not in path:
        return path
    return path[len("file://"):] if path.startswith("file://") else None


@contextlib.contextmanager
def created_whole(path: str) -> Iterator[IO[bytes]]:
    """A file that appears under ``path`` only once it is complete: a local file is written under
    a temporary name beside it and renamed (a full disk or a killed worker leaves no cut file
    under the final name); an object store's upload appears whole when it is closed anyway."""
    local = local_path(path)
    if local is None:
        with FileSystems.create(path) as f:
            yield f
        return
    partial = f"{path}{PARTIAL_INFIX}{uuid.uuid4().hex[:8]}"
    try:
        with FileSystems.create(partial) as f:
            yield f
        os.replace(local_path(partial), local)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(local_path(partial))
        raise


def write_bytes(path: str, data: bytes) -> None:
    with created_whole(path) as f:
        f.write(data)
