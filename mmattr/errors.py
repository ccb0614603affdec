"""Errors that reach the user as one line, without a traceback."""


class MmattrError(Exception):
    """Base of every error mmattr reports to the user as a single line."""


class InputError(MmattrError, ValueError):
    """The user's input (file, option, text) cannot be used."""


class ModelError(MmattrError):
    """A model cannot be found, loaded or used for the request."""


class MmattrWarning(UserWarning):
    """Something the user should know that does not stop the run (the CLI prints one line)."""
