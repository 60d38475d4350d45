"""The daemon's own state: the ledger (SQLite) and the state file."""
