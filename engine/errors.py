"""The two ways a command can fail, mapped by the CLI to exit statuses.

`InputError` (exit 2): the user's input is wrong (a file, a flag, a value).
`RunFailed` (exit 1): the input was fine but the work failed (divergence, a failed check).
"""


class InputError(ValueError):
    """Bad usage or bad input; the message is one line that says what and where."""


class RunFailed(RuntimeError):
    """The work itself failed; the message is one line that says why."""
