"""What the daemon applied and observed, as ``mailopsd status``, the API and metrics show it.

A read model over the state file and the ledger (read-only) and the health rules: it
writes nothing, and needs no config or key.
"""
