"""The exception types that separate a user's mistake from a bug.

A UserError is something the user can fix (a config key, a file, a ROI): its
message is one line naming it, and the CLI prints it without a traceback. Any
other exception is a bug in this package and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A user mistake: one line naming the key, file or block; the CLI prints it
    without a traceback."""


class ConfigError(UserError):
    """A user mistake in the config or its data: one line naming the culprit."""
