"""Errors the user can fix: the CLI prints them as one line, without a traceback."""


class SuperKartError(Exception):
    """A problem with the user's input, files or environment, stated in one line."""


class DataError(SuperKartError):
    """A data file or record does not match the schema."""
