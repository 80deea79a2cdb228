"""The SQLite store of one index version: records, chunks, an FTS5 table over chunk text, and provenance."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from pubmed_rag.records import Chunk, Record
from pubmed_rag.types import Filters

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    pmid TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    title TEXT NOT NULL,
    abstract TEXT NOT NULL,
    data TEXT NOT NULL,             -- the full record as JSON
    year INTEGER,
    retracted INTEGER NOT NULL,
    retraction_notice INTEGER NOT NULL,
    title_only INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id INTEGER PRIMARY KEY AUTOINCREMENT,
    pmid TEXT NOT NULL REFERENCES records(pmid),
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_pmid ON chunks(pmid);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, tokenize='porter unicode61');
CREATE TABLE IF NOT EXISTS deleted (pmid TEXT PRIMARY KEY, source TEXT NOT NULL, deleted_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS provenance (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,             -- file | query
    name TEXT NOT NULL,             -- the file path or the query
    at TEXT NOT NULL,
    added INTEGER NOT NULL, replaced INTEGER NOT NULL, deleted INTEGER NOT NULL,
    unchanged INTEGER NOT NULL, skipped INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS record_sources (pmid TEXT NOT NULL, provenance_id INTEGER NOT NULL);
"""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RecordStore:
    """Records and chunks of one index version."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self.conn = sqlite3.connect(self.path, check_same_thread=False)
            self.conn.executescript(SCHEMA)
        self.conn.row_factory = sqlite3.Row
        self._local = threading.local()

    def reader(self) -> sqlite3.Connection:
        """This thread's own read-only connection, so searches run in parallel (SQLite releases the GIL)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        return conn

    def close(self) -> None:
        self.conn.close()

    # -- search ----------------------------------------------------------------------------------------------
    @staticmethod
    def where(filters: Filters) -> tuple[str, list]:
        """A ``WHERE`` fragment over ``records r`` for ``filters`` and its parameters (``"1"`` when unfiltered)."""
        parts, params = ["1"], []
        if filters.year_min is not None:
            parts.append("r.year >= ?")
            params.append(filters.year_min)
        if filters.year_max is not None:
            parts.append("r.year <= ?")
            params.append(filters.year_max)
        if filters.exclude_retracted:
            parts.append("r.retracted = 0")
        if filters.publication_types:
            marks = ",".join("?" * len(filters.publication_types))
            parts.append(f"EXISTS (SELECT 1 FROM json_each(r.data, '$.publication_types') WHERE value IN ({marks}))")
            params.extend(filters.publication_types)
        if filters.exclude_pmids:
            parts.append(f"r.pmid NOT IN ({','.join('?' * len(filters.exclude_pmids))})")
            params.extend(filters.exclude_pmids)
        if filters.mesh:
            parts.append("EXISTS (SELECT 1 FROM json_each(r.data, '$.mesh') WHERE lower(value) = lower(?))")
            params.append(filters.mesh)
        return " AND ".join(parts), params

    def bm25(self, query: str, limit: int, filters: Filters | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(chunk ids, BM25 scores)`` of the best ``limit`` chunks for an FTS5 ``query``, best first, among the
        records passing ``filters``; on this thread's read-only connection."""
        if filters is not None and filters.active:
            where, params = self.where(filters)
            sql = ("SELECT f.rowid, -bm25(chunks_fts) AS s FROM chunks_fts f "
                   "JOIN chunks c ON c.chunk_id = f.rowid JOIN records r ON r.pmid = c.pmid "
                   f"WHERE chunks_fts MATCH ? AND {where} ORDER BY s DESC LIMIT ?")
        else:
            sql, params = ("SELECT rowid, -bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? "
                           "ORDER BY s DESC LIMIT ?"), []
        rows = self.reader().execute(sql, [query, *params, limit]).fetchall()
        return (np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.float32))

    def filtered_chunk_ids(self, filters: Filters) -> np.ndarray:
        """The ids of the chunks whose records pass ``filters``."""
        where, params = self.where(filters)
        rows = self.reader().execute(
            f"SELECT c.chunk_id FROM chunks c JOIN records r ON r.pmid = c.pmid WHERE {where}", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    # -- reads -----------------------------------------------------------------------------------------------
    def get(self, pmid: str) -> Record | None:
        row = self.conn.execute("SELECT data FROM records WHERE pmid = ?", (pmid,)).fetchone()
        return Record.from_dict(json.loads(row["data"])) if row else None

    def _select_in(self, sql: str, keys: Iterable) -> Iterator[sqlite3.Row]:
        """Rows of ``sql`` (containing ``IN ({marks})``) for all ``keys``, queried in batches under SQLite's limit."""
        keys = list(dict.fromkeys(keys))
        for i in range(0, len(keys), 900):
            part = keys[i : i + 900]
            yield from self.conn.execute(sql.format(marks=",".join("?" * len(part))), part)

    def get_many(self, pmids: Iterable[str]) -> dict[str, Record]:
        rows = self._select_in("SELECT data FROM records WHERE pmid IN ({marks})", pmids)
        records = (Record.from_dict(json.loads(row["data"])) for row in rows)
        return {rec.pmid: rec for rec in records}

    def hash_and_version(self, pmid: str) -> tuple[str, int] | None:
        row = self.conn.execute("SELECT content_hash, version FROM records WHERE pmid = ?", (pmid,)).fetchone()
        return (row[0], row[1]) if row else None

    def chunk_ids(self, pmid: str) -> list[int]:
        return [r[0] for r in self.conn.execute("SELECT chunk_id FROM chunks WHERE pmid = ?", (pmid,))]

    def chunks(self, chunk_ids: Iterable[int]) -> dict[int, Chunk]:
        sql = "SELECT chunk_id, pmid, text, start, end FROM chunks WHERE chunk_id IN ({marks})"
        return {row[0]: Chunk(*row) for row in self._select_in(sql, chunk_ids)}

    def chunk_pmids(self, chunk_ids: Iterable[int]) -> dict[int, str]:
        sql = "SELECT chunk_id, pmid FROM chunks WHERE chunk_id IN ({marks})"
        return {row[0]: row[1] for row in self._select_in(sql, chunk_ids)}

    def all_pmids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT pmid FROM records ORDER BY pmid")]

    def all_chunk_ids(self) -> list[int]:
        return [r[0] for r in self.conn.execute("SELECT chunk_id FROM chunks ORDER BY chunk_id")]

    def iter_records(self) -> Iterator[Record]:
        for row in self.conn.execute("SELECT data FROM records ORDER BY pmid"):
            yield Record.from_dict(json.loads(row[0]))

    def counts(self) -> dict[str, int]:
        one = lambda sql: int(self.conn.execute(sql).fetchone()[0])  # noqa: E731
        return {
            "records": one("SELECT COUNT(*) FROM records"),
            "chunks": one("SELECT COUNT(*) FROM chunks"),
            "title_only": one("SELECT COUNT(*) FROM records WHERE title_only = 1"),
            "retracted": one("SELECT COUNT(*) FROM records WHERE retracted = 1"),
            "retraction_notices": one("SELECT COUNT(*) FROM records WHERE retraction_notice = 1"),
            "deleted": one("SELECT COUNT(*) FROM deleted"),
        }

    def provenance(self) -> list[dict]:
        return [dict(r) for r in self.conn.execute("SELECT * FROM provenance ORDER BY id")]

    # -- writes ----------------------------------------------------------------------------------------------
    def upsert(self, record: Record, content_hash: str) -> list[int]:
        """Store ``record``, replacing any older copy; return the chunk ids that were removed."""
        removed = self.remove_chunks(record.pmid)
        self.conn.execute(
            "INSERT OR REPLACE INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                record.pmid, record.version, record.title, record.abstract,
                json.dumps(record.to_dict(), ensure_ascii=False), record.year, int(record.retracted),
                int(record.is_retraction_notice), int(record.title_only), content_hash, record.source, now(),
            ),
        )
        self.conn.execute("DELETE FROM deleted WHERE pmid = ?", (record.pmid,))
        return removed

    def add_chunk(self, pmid: str, text: str, start: int, end: int) -> int:
        cur = self.conn.execute(
            "INSERT INTO chunks (pmid, text, start, end) VALUES (?,?,?,?)", (pmid, text, start, end)
        )
        chunk_id = int(cur.lastrowid)
        self.conn.execute("INSERT INTO chunks_fts (rowid, text) VALUES (?, ?)", (chunk_id, text))
        return chunk_id

    def remove_chunks(self, pmid: str) -> list[int]:
        ids = self.chunk_ids(pmid)
        if ids:
            self.conn.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
            self.conn.execute("DELETE FROM chunks WHERE pmid = ?", (pmid,))
        return ids

    def delete(self, pmid: str, source: str) -> tuple[bool, list[int]]:
        """Remove a record; return whether it was present and the chunk ids removed."""
        removed = self.remove_chunks(pmid)
        present = self.conn.execute("DELETE FROM records WHERE pmid = ?", (pmid,)).rowcount > 0
        self.conn.execute("DELETE FROM record_sources WHERE pmid = ?", (pmid,))
        self.conn.execute("INSERT OR REPLACE INTO deleted VALUES (?,?,?)", (pmid, source, now()))
        return present, removed

    def start_provenance(self, kind: str, name: str) -> int:
        cur = self.conn.execute(
            "INSERT INTO provenance (kind, name, at, added, replaced, deleted, unchanged, skipped) "
            "VALUES (?,?,?,0,0,0,0,0)",
            (kind, name, now()),
        )
        return int(cur.lastrowid)

    def finish_provenance(self, prov_id: int, counts: dict[str, int]) -> None:
        self.conn.execute(
            "UPDATE provenance SET added=?, replaced=?, deleted=?, unchanged=?, skipped=? WHERE id=?",
            (counts["added"], counts["replaced"], counts["deleted"], counts["unchanged"], counts["skipped"], prov_id),
        )

    def link_source(self, pmid: str, prov_id: int) -> None:
        self.conn.execute("INSERT INTO record_sources VALUES (?, ?)", (pmid, prov_id))

    def commit(self) -> None:
        self.conn.commit()

    # -- summaries for the library page -------------------------------------------------------------------------
    def year_counts(self) -> dict[int, int]:
        rows = self.conn.execute("SELECT year, COUNT(*) FROM records WHERE year IS NOT NULL GROUP BY year ORDER BY year")
        return {int(y): int(n) for y, n in rows}

    def publication_type_counts(self) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT value, COUNT(*) FROM records, json_each(records.data, '$.publication_types') "
            "GROUP BY value ORDER BY COUNT(*) DESC"
        )
        return {str(t): int(n) for t, n in rows}


class ChunkPmids:
    """Chunk id -> PMID for a read-only store version, held as two sorted int64 arrays (16 bytes per chunk).

    Falls back to SQL lookups when a PMID is not a plain number (e.g. a JSONL corpus with other ids).
    """

    def __init__(self, store: RecordStore, chunk_ids: np.ndarray | None = None, pmids: np.ndarray | None = None):
        self.store, self._ids, self._pmids = store, chunk_ids, pmids

    @classmethod
    def read(cls, store: RecordStore) -> ChunkPmids:
        rows = store.conn.execute("SELECT chunk_id, pmid FROM chunks ORDER BY chunk_id").fetchall()
        if not all(p.isdigit() and str(int(p)) == p for _, p in rows):
            return cls(store)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        pmids = np.fromiter((int(r[1]) for r in rows), dtype=np.int64, count=len(rows))
        return cls(store, ids, pmids)

    def __call__(self, chunk_ids: Iterable[int]) -> dict[int, str]:
        if self._ids is None:
            return self.store.chunk_pmids(chunk_ids)
        ids = np.fromiter(chunk_ids, dtype=np.int64)
        if not len(self._ids) or not len(ids):
            return {}
        pos = np.minimum(np.searchsorted(self._ids, ids), len(self._ids) - 1)
        found = self._ids[pos] == ids
        return {int(c): str(p) for c, p in zip(ids[found], self._pmids[pos[found]], strict=True)}
