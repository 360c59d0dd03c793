"""Errors the CLI turns into one readable line and a non-zero exit code."""


class DeportwatchError(Exception):
    """An error the user can act on; its message is shown as it is."""

    exit_code = 1


class ConfigError(DeportwatchError):
    """A configuration file or setting is invalid (exit code 2)."""

    exit_code = 2


class UsageError(DeportwatchError):
    """The command line asks for something that does not exist (exit code 2)."""

    exit_code = 2
