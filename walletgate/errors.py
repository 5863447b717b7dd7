"""The one exception type the CLI turns into a one-line message and exit status 1.

Raise a subclass of ``UserError`` for a failure the user can act on (a server that is
down, a pending migration, a changed migration file); the message must say what went
wrong and where. Anything else escaping a command is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A failure the user can fix; ``str(error)`` is the whole message."""
