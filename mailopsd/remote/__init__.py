"""A local copy of the git remote the daemon follows: fetched heads, signatures and trees."""

from mailopsd.remote.repository import Fetched, RemoteError, Repository, Source, redact_url

__all__ = ["Fetched", "RemoteError", "Repository", "Source", "redact_url"]
