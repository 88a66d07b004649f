"""Errors the CLI turns into one line and exit code 2: things the user can fix."""


class UserError(Exception):
    """Bad input: say what is wrong, where, and what to do, in one line."""


class IncompleteError(Exception):
    """Work that stopped part-way for a reason outside the user's input (e.g. an API that kept failing):
    one line and exit code 1; what finished is kept, and rerunning the same command does the rest."""
