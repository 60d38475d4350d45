"""The git remote the daemon follows: its local copy (read) and changes pushed to it (write)."""

from mailopsd.remote.repository import Fetched, RemoteError, Repository, Source, redact_url
from mailopsd.remote.writer import Author, Conflict, Pushed, Writer

__all__ = [
    "Author",
    "Conflict",
    "Fetched",
    "Pushed",
    "RemoteError",
    "Repository",
    "Source",
    "Writer",
    "redact_url",
]
