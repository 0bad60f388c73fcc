"""Errors the CLI turns into exit codes."""


class InputError(Exception):
    """Bad input: a config key, a data file, a column or a value. The CLI exits with code 2."""


class JobFailure(Exception):
    """The job could not finish for a reason outside its input (a full disk). The CLI prints
    the message and exits with code 1."""


class JobBusy(JobFailure):
    """Another job holds what this one needs (the scores target, the registry) for longer than
    this one waits. Nothing was written; retrying later is the remedy. Exit code 5."""


EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INPUT = 2
EXIT_NOT_PROMOTED = 3  # `retrain --require-promotion` kept the champion
EXIT_ALERT = 4  # `monitor` found drift or a backtest above its alert thresholds
EXIT_BUSY = 5  # another job held the target or the registry too long; nothing was written
