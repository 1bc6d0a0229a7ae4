"""The ways a command can end early, mapped by the CLI to exit statuses.

`InputError` (exit 2): the user's input is wrong (a file, a flag, a value).
`RunFailed` (exit 1): the input was fine but the work failed (divergence, a failed check).
`Interrupted` (exit 130, as for any Ctrl-C): the user stopped it; the message says how to
go on.
"""


class InputError(ValueError):
    """Bad usage or bad input; the message is one line that says what and where."""


class RunFailed(RuntimeError):
    """The work itself failed; the message is one line that says why."""


class Interrupted(Exception):
    """Stopped by the user (Ctrl-C); the message is one line that says how to go on."""


def first_line(error: BaseException | str) -> str:
    """The first non-empty line of an error's message: what a one-line error shows."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return ""
