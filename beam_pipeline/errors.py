"""Errors the user fixes: the CLI prints their message on one line and exits 2."""


class UsageError(ValueError):
    """The recipe, the inputs or the options cannot be used; the message says what to fix."""


# An error is one line a person reads: past this many characters (a list of 10,000 columns),
# the middle is cut and the log keeps the whole.
MAX_ERROR_CHARS = 2_000


def error_line(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``message`` on one line of at most about ``limit`` characters."""
    line = " ".join(str(message).split("\n"))
    if len(line) <= limit:
        return line
    half = limit // 2
    return f"{line[:half]} … [{len(line) - 2 * half:,} characters cut] … {line[-half:]}"
