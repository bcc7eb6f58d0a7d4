"""``_LOCK``: one writer per output directory.

Two runs on one output used to race — both exit 0 while the directory holds the other run's
data. A run takes the lock before it looks at the output (``plan_job``) and releases it when it
ends; a second run is refused with one line naming the holder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid

from apache_beam.io.filesystems import FileSystems

from beam_pipeline.outputs.location import OutputPathError
from schemas.layout import LOCK_FILE
from transforms.files import join, local_path, write_bytes

LOGGER = logging.getLogger(__name__)

class OutputLock:
    """``_LOCK`` in the output directory while a run launches and writes there: a second run on
    the same output is refused with one line instead of racing the first. Locally the lock is an
    exclusive create; on an object store it is written and read back (best effort: stores
    without a create-if-absent cannot do better). A lock whose process is gone (killed, on this
    machine) is taken over."""

    def __init__(self, output: str):
        try:
            self.path = join(output, LOCK_FILE)
        except ValueError as error:  # a scheme Beam's filesystems do not know (memory://)
            raise OutputPathError(f"cannot write to output path {output}: {error}") from None
        self._token = uuid.uuid4().hex
        self._held = False

    def _doc(self) -> bytes:
        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "token": self._token,
                           "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode() + b"\n"

    def _holder(self) -> dict:
        try:
            with FileSystems.open(self.path) as f:
                doc = json.loads(f.read())
            return doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            return {}

    def _gone(self, holder: dict) -> bool:
        if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
            return False
        try:
            os.kill(holder["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False

    def acquire(self) -> "OutputLock":
        for _ in range(2):
            try:
                taken = self._try()
            except (OSError, ValueError) as error:  # a scheme Beam's filesystems do not know (memory://), no access
                raise OutputPathError(f"cannot write to output path {os.path.dirname(self.path)}: {error}") from None
            if taken:
                self._held = True
                return self
            holder = self._holder()
            if not self._gone(holder):
                who = (f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')}" if holder
                       else "a lock that cannot be read")
                raise OutputPathError(f"another ftprep run is writing to {os.path.dirname(self.path) or self.path} "
                                      f"({who}); wait for it or choose another output path (if no run is writing "
                                      f"there, delete {self.path})")
            LOGGER.info("taking over %s from a run that is gone (pid %s)", self.path, holder.get("pid"))
            with contextlib.suppress(OSError):
                FileSystems.delete([self.path])
        raise OutputPathError(f"cannot take the lock {self.path}; another ftprep run is starting there")

    def _try(self) -> bool:
        local = local_path(self.path)
        if local is not None:
            os.makedirs(os.path.dirname(local), exist_ok=True)
            try:
                fd = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(self._doc())
            return True
        if FileSystems.exists(self.path):
            return False
        write_bytes(self.path, self._doc())
        return self._holder().get("token") == self._token

    def release(self) -> None:
        if self._held and self._holder().get("token") == self._token:
            with contextlib.suppress(OSError):
                FileSystems.delete([self.path])
        self._held = False
