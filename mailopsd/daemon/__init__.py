"""The process: load, reconcile, then watch and reload, until told to stop.

:class:`Daemon` (in :mod:`.loop`) runs the main loop; signal handlers and the file
watcher (:mod:`.watcher`) only set flags and wake it. A state directory that stops
taking writes pauses the work until a test write succeeds again (:mod:`.storage`).
With an ``http`` section, the serving daemon also runs the HTTP server, started,
restarted and stopped to match the config (:mod:`.httpsupervisor`).
"""

from mailopsd.daemon.loop import Daemon
from mailopsd.daemon.settings import DaemonSettings

__all__ = ["Daemon", "DaemonSettings"]
