"""The one exception type that reaches users as a one-line message."""


class UserError(Exception):
    """Bad input or an impossible request, explained in one actionable line.

    The CLI prints ``error: <message>`` and exits with status 2; Python callers can
    catch it like any exception. Raise it only where the message alone tells the user
    what to fix (which file, which key, which flag).
    """
