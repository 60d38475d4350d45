"""The daemon's state: the ledger (SQLite) and the state file, and what reads them.

All SQL of mailopsd lives in this package, and only here is ``sqlite3`` imported:
:mod:`.ledger` owns the connection, :mod:`.schema` the tables and their migrations,
and one repository per part of the ledger (:mod:`.campaigns`, :mod:`.imports`,
:mod:`.leads`, :mod:`.sends`, :mod:`.inbox`, :mod:`.suppression`, :mod:`.tracking`,
:mod:`.totals`) its reads and writes. Every driver error is translated at this
boundary into the storage errors of :mod:`.errors`, so the rest of mailopsd sees one
family of errors and never SQLite's. This is where a second engine would plug in:
behind the same repositories, with the same errors.
"""
