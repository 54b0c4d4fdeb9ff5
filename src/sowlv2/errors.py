"""Exceptions that carry a message meant for the user (the CLI prints it as one line)."""


class SOWLv2Error(Exception):
    """Base class of errors whose message the user should read."""

    exit_code = 1


class UsageError(SOWLv2Error):
    """A setting or flag is wrong (CLI exit code 2)."""

    exit_code = 2


class InputError(SOWLv2Error):
    """An input file cannot be read as what it claims to be."""

    exit_code = 1


class ModelLoadError(SOWLv2Error):
    """A model id or folder cannot be loaded."""

    exit_code = 1
