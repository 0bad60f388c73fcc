"""Errors the CLI turns into exit codes."""


class InputError(Exception):
    """Bad input: a config key, a data file, a column or a value. The CLI exits with code 2."""


EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INPUT = 2
