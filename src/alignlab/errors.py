"""One exception type for every mistake a user can make.

The CLI prints its message as one line and exits non-zero; anything else is a bug and keeps its traceback.
"""


class AlignlabError(Exception):
    """A user-facing error: bad input, missing file, unreachable server, checksum mismatch."""


class UnsupportedRequest(AlignlabError):
    """A backend was asked for a request kind it does not declare."""
