"""One error type for everything a user can get wrong.

Library code raises `UserError` for bad input (invalid sizes, missing or malformed files, unknown names).
The CLI turns it into exit status 2 and a single line on stderr, never a traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user: the message is one line that names the problem."""

    exit_code = 2


class RunDiverged(RuntimeError):
    """A training run stopped because its loss became NaN/inf or blew up (exit status 3 for `train`)."""

    exit_code = 3
