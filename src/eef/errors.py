"""Errors the CLI turns into one line and exit code 2: things the user can fix."""


class UserError(Exception):
    """Bad input: say what is wrong, where, and what to do, in one line."""
