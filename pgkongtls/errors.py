"""Library exceptions; cli.py turns them into one-line click errors."""


class PgkError(Exception):
    """Base of every error pgkongtls reports to the user as one line."""


class InputError(PgkError, ValueError):
    """A value the user gave cannot be used."""


class StateError(PgkError):
    """The directory is not in a state the command can work on (exists, missing, edited)."""
