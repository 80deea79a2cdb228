"""SQLite's memory statistics are turned off only while no connection is open (each case in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import ctypes, sqlite3, _sqlite3
from pubmed_rag import sqlite_memstatus
lib = ctypes.CDLL(_sqlite3.__file__)
lib.sqlite3_memory_used.restype = ctypes.c_int64
{before}
done = sqlite_memstatus.disable()
conn = sqlite3.connect(":memory:")
conn.execute("CREATE TABLE t (x)")
print(done, lib.sqlite3_memory_used() > 0, sqlite_memstatus.disable())
"""


def _run(before: str) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE.format(before=before)], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def test_statistics_go_off_before_the_first_connection():
    # off: nothing counted with a connection open; a second call only reports the first one's outcome
    assert _run("") == "True False True"


def test_an_open_connection_leaves_them_on():
    assert _run('held = sqlite3.connect(":memory:")') == "False True False"
