"""Where a run's messages go: ftprep's own lines to stderr, everything (Beam's included) to a log file.

A failed run ends with one ``ftprep: error:`` line naming the step, the cause and the log file;
Beam's tracebacks and its workers' output go to the log (and to stderr only with ``-v``). Local
worker processes write to file descriptor 2 directly, so during the run that descriptor points
at the log while Python's ``sys.stderr`` keeps writing to the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import sys
import tempfile
import time
from typing import Iterator

# Loggers whose INFO lines a user sees; transforms/ (the workers' code) only from WARNING up.
USER_LOGGERS = ("ftprep", "beam_pipeline")
WORKER_CODE = "transforms"
LOGS_KEPT = 50
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# ``extra=LOG_ONLY``: the record (a traceback, say) goes to the log file, and to stderr only with -v.
LOG_ONLY = {"log_only": True}

# Beam warnings that are false alarms for ftprep: with_outputs() after with_exception_handling()
# reports our tags as undeclared although they are routed correctly, and importing Beam's I/O
# without the gcp extra reports that the BigQuery client is missing, which ftprep never uses;
# finalizing a writer that had nothing to write is reported too (its directory is simply absent).
BEAM_FALSE_ALARMS = ("requested in with_outputs() but not declared", "apitools not found",
                     "No shards found to finalize")


def _not_a_false_alarm(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(alarm in message for alarm in BEAM_FALSE_ALARMS)


def quiet_false_alarms() -> None:
    """Drop Beam's false alarms logged to the root logger as it is imported — before
    ``configure_logging`` can run, Python's last-resort handler would print them on every command
    (``WARNING:root:apitools not found`` where the gcp extra is not installed)."""
    root = logging.getLogger()
    if _not_a_false_alarm not in root.filters:
        root.addFilter(_not_a_false_alarm)


def _for_the_user(record: logging.LogRecord) -> bool:
    if getattr(record, "log_only", False):
        return False
    top = record.name.split(".", 1)[0]
    if top in USER_LOGGERS:
        return True
    return top == WORKER_CODE and record.levelno >= logging.WARNING


class _UserFormatter(logging.Formatter):
    """ftprep's lines as a command's own: ``ftprep: <message>``, warnings and errors named so; no
    timestamp or logger name (the log file has them, and so does stderr with -v)."""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"ftprep: {level}{record.getMessage()}"


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (it is swapped during a run)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):
        pass


# The names ftprep gives its logs: pruning removes these and nothing else.
LOG_NAME = re.compile(r"ftprep-\d{8}-\d{6}-\d+\.log")


def _own_directory(path: str) -> bool:
    """``path`` is a real directory (not a link to one) of this user's, or is made so now."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return False
    if info.st_mode & 0o077:  # ours but open to others (made by an older ftprep): close it
        os.chmod(path, 0o700)
    return True


def log_directory() -> str:
    """Where this user's logs go: ``$TMPDIR/ftprep-logs``, ftprep's own — a directory of this
    user's, mode 0700, never a symbolic link. On a shared machine another user may have that
    name already: then ``ftprep-logs-<uid>``, and if that is taken too, a new private directory."""
    base = tempfile.gettempdir()
    for name in ("ftprep-logs", f"ftprep-logs-{os.getuid()}"):
        path = os.path.join(base, name)
        if _own_directory(path):
            return path
    return tempfile.mkdtemp(prefix="ftprep-logs-")


def new_log_path() -> str:
    """A fresh log file in ``log_directory()``; the oldest of ftprep's logs beyond ``LOGS_KEPT``
    are removed (files with the names ftprep gives its logs, nothing else)."""
    directory = log_directory()
    logs = []
    for entry in os.scandir(directory):
        if LOG_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):  # another ftprep pruned it meanwhile
                logs.append((entry.stat(follow_symlinks=False).st_mtime, entry.path))
    logs.sort()
    for _, path in logs[: max(0, len(logs) - LOGS_KEPT + 1)]:
        with contextlib.suppress(OSError):
            os.remove(path)
    return os.path.join(directory, time.strftime("ftprep-%Y%m%d-%H%M%S") + f"-{os.getpid()}.log")


def configure_logging(verbose: bool, log_path: str | None = None) -> None:
    """stderr gets ftprep's own lines (everything with ``verbose``); ``log_path`` gets everything."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.INFO)
    formatter = logging.Formatter(LOG_FORMAT)
    terminal = _CurrentStderr()
    terminal.setFormatter(formatter if verbose else _UserFormatter())
    terminal.addFilter(_not_a_false_alarm)
    if not verbose:
        terminal.addFilter(_for_the_user)
    root.addHandler(terminal)
    if log_path is not None:
        log = logging.FileHandler(log_path, encoding="utf-8", delay=True)
        log.setFormatter(formatter)
        root.addHandler(log)
    elif not verbose:
        logging.getLogger("apache_beam").setLevel(logging.WARNING)
        return
    logging.getLogger("apache_beam").setLevel(logging.INFO)


def _writes_to_fd2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # a capture object (pytest) or a closed stream
        return False


@contextlib.contextmanager
def worker_output_to(log_path: str) -> Iterator[None]:
    """Point file descriptor 2 — what worker processes and native code write to — at the log;
    ``sys.stderr`` keeps writing where it wrote before."""
    sys.stderr.flush()
    saved = os.dup(2)
    original = sys.stderr
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 2)
    if _writes_to_fd2(original):
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=original.encoding, errors="backslashreplace")
    try:
        yield
    finally:
        if sys.stderr is not original:
            sys.stderr.close()
            sys.stderr = original
        os.dup2(saved, 2)
        os.close(saved)


_STEP = re.compile(r"while running '([^']+)'")
_OS_ERROR = re.compile(r"\b(\w*Error): (\[Errno \d+\] [^\n\[\]]*?)(?:\s*\[while running|\\n|\n|'?\)?$)")
_LAST_ERROR_LINE = re.compile(r"^(?:\w+\.)*(\w*(?:Error|Exception)): (.+)$", re.MULTILINE)


def _chain(error: BaseException | None):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _cause(text: str) -> str:
    os_error = _OS_ERROR.search(text)
    if os_error:
        return f"{os_error[1]}: {os_error[2].strip()}"
    lines = _LAST_ERROR_LINE.findall(text)
    if lines:
        name, message = lines[-1]
        return f"{name}: {_STEP.sub('', message).rstrip(' []')}"
    first = text.strip().splitlines()[0] if text.strip() else "no message"
    return first


def failure_line(error: BaseException, *, output: str, log_path: str | None, inputs: int) -> str:
    """One line for a run that failed: the step, the cause (an OS error such as "No space left on
    device" named as such), that the output has no marker, and where Beam's full output is.
    ``inputs``: how many files the run reads (with one, skipping a bad file is no way on)."""
    from beam_pipeline.errors import skip_hint
    from transforms.readers.base import BadInputFile
    from transforms.units import RunStopped

    texts = [f"{type(e).__name__}: {e}" for e in _chain(error)]
    text = "\n".join(texts)
    where = f"; {output} has no _SUCCESS marker" + (f" (Beam's full output: {log_path})" if log_path else "")
    stopped = next((str(e) for e in _chain(error) if isinstance(e, RunStopped)), None)
    match = stopped is None and re.search(r"RunStopped: (stopped: [^\n]*)", text)
    if stopped or match:  # the recipe fails on the data: its own words, not Beam's
        return _STEP.sub("", stopped or match[1]).rstrip(" []") + where
    bad_file = next((str(e) for e in _chain(error) if isinstance(e, BadInputFile)), None)
    match = bad_file is None and re.search(r"BadInputFile: (cannot read [^\n]*)", text)
    if bad_file or match:
        # The cause is the data, not ftprep: say which file and how to go on without it.
        message = _STEP.sub("", bad_file or match[1]).rstrip(" []")
        return f"{message}{skip_hint(inputs)}{where}"
    step = _STEP.search(text)
    cause = _cause(text)
    if len(cause) > 300:
        cause = cause[:297] + "..."
    if step is None:
        return f"the pipeline failed: {cause}{where}"
    writing = f" writing {output}" if step[1].startswith("Write") else ""
    return f"the pipeline failed in step {step[1]}{writing}: {cause}{where}"
