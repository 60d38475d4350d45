"""A credential's health: when bounces and blocks disable it, and what bad news does to a lead.

Dispatch, the inbox and the HTTP server all learn of bounces, complaints and unsubscribes;
the rules and their effects live here once, so that none of them imports another:

- ``policy``: the pure rate rules (window start, bounce and block verdicts).
- ``autodisable``: the rules applied after a batch, written to the state file.
- ``batch``: the same rule checked inside a sending batch, after each 5xx.
- ``effects``: a lead stopped, its address suppressed, with the words the ledger stores.

The package's ``__init__`` imports nothing, so that a pure module can import ``policy``
without the ledger.
"""
