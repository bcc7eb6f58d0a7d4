"""Errors the user fixes: the CLI prints their message on one line and exits 2."""


class UsageError(ValueError):
    """The recipe, the inputs or the options cannot be used; the message says what to fix."""
