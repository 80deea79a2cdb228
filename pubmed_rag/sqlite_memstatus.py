"""SQLite's memory statistics off, so that store shards searched on parallel threads do not queue on one mutex.

SQLite as Debian builds it (no lookaside allocator, memory statistics on) takes a process-wide mutex around every
allocation to count the bytes in use, and an FTS5 query allocates all the time: each shard's own bm25() over the 4
store shards of bench/bench_bm25_shards.py (1M chunks), 2 threads, took 31 ms a query (p50, 200 BioASQ questions)
with the statistics on and 24 ms with them off, measured side by side in one session.
``SQLITE_CONFIG_MEMSTATUS`` is accepted only before SQLite is initialised, so ``disable`` re-initialises it, and
only while nothing is allocated (no connection is open in the process); otherwise, or where the library cannot be
reached, it changes nothing. The statistics are used by nothing here.
"""

from __future__ import annotations

import ctypes
import logging
import threading

log = logging.getLogger(__name__)
_CONFIG_MEMSTATUS = 9
_LOCK = threading.Lock()
_OFF: bool | None = None  # the first call's outcome


def disable() -> bool:
    """Turn SQLite's memory statistics off for this process if no connection is open yet; whether they are off."""
    global _OFF
    with _LOCK:
        if _OFF is None:  # one try per process
            _OFF = _try()
        return _OFF


def _try() -> bool:
    try:
        import _sqlite3

        # The sqlite3 module's own extension: its symbols resolve to the SQLite library it uses, whether linked
        # or built in (no search for a library of the same name, which could be another copy).
        lib = ctypes.CDLL(_sqlite3.__file__)
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        if lib.sqlite3_memory_used() != 0:  # something is open: re-initialising now would be unsafe
            return False
        ok = lib.sqlite3_shutdown() == 0 and lib.sqlite3_config(_CONFIG_MEMSTATUS, ctypes.c_int(0)) == 0
        lib.sqlite3_initialize()
        return ok
    except (ImportError, OSError, AttributeError) as exc:
        log.debug("SQLite memory statistics left on: %s", exc)
        return False
