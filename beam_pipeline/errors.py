"""Errors the user fixes: the CLI prints their message on one line and exits 2."""


class UsageError(ValueError):
    """The recipe, the inputs or the options cannot be used; the message says what to fix."""


# An error is one line a person reads: past this many characters (a list of 10,000 columns),
# the middle is cut and the log keeps the whole.
MAX_ERROR_CHARS = 2_000


def skip_hint(inputs: int) -> str:
    """What to add to a file that cannot be read: skipping it is a way on only when the run reads
    other files (with one, a skipped file leaves nothing to read)."""
    return " (--on-bad-file=skip reads the other files and lists it in stats.json)" if inputs > 1 else ""


def error_line(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``message`` on one line of at most about ``limit`` characters."""
    line = " ".join(str(message).split("\n"))
    if len(line) <= limit:
        return line
    half = limit // 2
    return f"{line[:half]} … [{len(line) - 2 * half:,} characters cut] … {line[-half:]}"
