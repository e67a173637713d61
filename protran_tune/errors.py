"""Errors the CLI reports as one line with exit code 2 (bad input, unreachable storage, ...)."""


class UsageError(ValueError):
    """Bad user input: a clear one-line message, no traceback."""
