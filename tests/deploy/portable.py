"""Services the deployment tests start on loopback: Beam's own job service and SDK worker pool (the
Job API Flink's job server speaks) and an S3-compatible object store."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def _environment(extra: dict | None = None) -> dict:
    # The worker pool starts workers with the `python` on PATH: make it this interpreter.
    environment = {**os.environ, **(extra or {})}
    environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {k: v for k, v in environment.items() if v is not None}


@contextlib.contextmanager
def _serving(command: list[str], port: int, log: Path, env: dict | None = None) -> Iterator[str]:
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=_environment(env))
    try:
        _wait_for_port(port, process)
        yield f"localhost:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def job_service(log: Path) -> contextlib.AbstractContextManager[str]:
    port = free_port()
    command = [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", "--port", str(port)]
    return _serving(command, port, log)


def worker_pool(log: Path, *, booted: bool = False, env: dict | None = None) -> contextlib.AbstractContextManager[str]:
    """Beam's SDK worker pool. ``booted``: each worker starts through ``boot.py`` as in Beam's SDK
    container, so it gets the job's pipeline options from the provision service; otherwise the
    pool starts the harness directly and the workers never see the options. ``env``: the pool's
    (and its workers') environment on top of this one; a None value removes a variable."""
    port = free_port()
    command = [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={port}"]
    if booted:
        launcher = log.parent / "boot"
        launcher.write_text(f"#!/bin/sh\nexec {sys.executable} {Path(__file__).with_name('boot.py')} \"$@\"\n")
        launcher.chmod(0o755)
        command.append(f"--container_executable={launcher}")
    return _serving(command, port, log, env)


def s3_server(log: Path) -> contextlib.AbstractContextManager[str]:
    """moto's S3-compatible server (PyPI moto[server]) on loopback; yields its host:port."""
    port = free_port()
    return _serving([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port, log)
