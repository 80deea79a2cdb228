"""The SQLite record store of an index: records, chunks, an FTS5 table over chunk text, and provenance.

One store serves every version of an index (``indexes/<name>/store.sqlite``, WAL mode). Each row carries the
version that added it (``valid_from``) and the version that removed or replaced it (``valid_to``, NULL while live),
so an update writes only what changed, in one transaction, as version N+1, and a reader of version N sees exactly
version N (``valid_from <= N AND (valid_to IS NULL OR valid_to > N)``) however far the writer has got. A process
killed before publishing leaves rows tagged with an unpublished version; the next writer removes them
(``discard_after``), and rows no kept version can see are purged after each publish (``purge``).

Every query reads through per-connection views (``live_records``, ``live_chunks``, ...) that apply the version, so
the SQL below is written once for all versions. A store written by an earlier release (one file per version
folder, no version columns) opens read-only as it is; ``upgrade`` converts a copy of it for the next update.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from pubmed_rag import sqlite_memstatus
from pubmed_rag.lru import LRUCache
from pubmed_rag.records import Chunk, Record
from pubmed_rag.types import Filters

VERSIONED = ("records", "chunks", "deleted", "provenance", "record_sources")
RECORD_COLUMNS = ("pmid, version, title, abstract, data, year, retracted, retraction_notice, title_only, "
                  "content_hash, source, updated_at")
# What the manifest's digest covers: the content of every live record and chunk (not timestamps or FTS, which is
# derived from the chunks).
DIGEST_COLUMNS = {
    "records": "pmid, version, title, abstract, data, year, retracted, retraction_notice, title_only, content_hash, "
               "source",
    "chunks": "chunk_id, pmid, text, start, end",
}
_DIGEST_MOD = 1 << 128
SHARD_BITS = 40  # chunk ids of store shard k start above k << SHARD_BITS

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    rid INTEGER PRIMARY KEY,
    pmid TEXT NOT NULL,
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
    updated_at TEXT NOT NULL,
    valid_from INTEGER NOT NULL DEFAULT 0,
    valid_to INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS records_live_pmid ON records(pmid) WHERE valid_to IS NULL;
CREATE INDEX IF NOT EXISTS records_pmid ON records(pmid);
CREATE INDEX IF NOT EXISTS records_from ON records(valid_from);
CREATE INDEX IF NOT EXISTS records_to ON records(valid_to);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id INTEGER PRIMARY KEY AUTOINCREMENT,
    pmid TEXT NOT NULL,
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    valid_from INTEGER NOT NULL DEFAULT 0,
    valid_to INTEGER
);
CREATE INDEX IF NOT EXISTS chunks_pmid ON chunks(pmid);
-- also covers chunk id -> PMID of a version (sharded_store.ChunkPmids, verification) without reading the chunks' text
CREATE INDEX IF NOT EXISTS chunks_live ON chunks(valid_from, valid_to, pmid);
CREATE INDEX IF NOT EXISTS chunks_to ON chunks(valid_to);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, tokenize='porter unicode61');
CREATE TABLE IF NOT EXISTS deleted (
    pmid TEXT NOT NULL, source TEXT NOT NULL, deleted_at TEXT NOT NULL,
    valid_from INTEGER NOT NULL DEFAULT 0, valid_to INTEGER
);
CREATE INDEX IF NOT EXISTS deleted_pmid ON deleted(pmid);
CREATE INDEX IF NOT EXISTS deleted_from ON deleted(valid_from);
CREATE INDEX IF NOT EXISTS deleted_to ON deleted(valid_to);
CREATE TABLE IF NOT EXISTS provenance (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,             -- file | query
    name TEXT NOT NULL,             -- the file path or the query
    at TEXT NOT NULL,
    added INTEGER NOT NULL, replaced INTEGER NOT NULL, deleted INTEGER NOT NULL,
    unchanged INTEGER NOT NULL, skipped INTEGER NOT NULL,
    valid_from INTEGER NOT NULL DEFAULT 0, valid_to INTEGER
);
CREATE TABLE IF NOT EXISTS record_sources (
    pmid TEXT NOT NULL, provenance_id INTEGER NOT NULL, valid_from INTEGER NOT NULL DEFAULT 0, valid_to INTEGER
);
CREATE INDEX IF NOT EXISTS record_sources_pmid ON record_sources(pmid);
CREATE INDEX IF NOT EXISTS record_sources_from ON record_sources(valid_from);
CREATE INDEX IF NOT EXISTS record_sources_to ON record_sources(valid_to);
"""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def is_versioned(path: Path) -> bool:
    """Whether the store at ``path`` has version columns (else it was written by an earlier release)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return any(row[1] == "valid_from" for row in conn.execute("PRAGMA table_info(records)"))
    finally:
        conn.close()


def upgrade(path: Path) -> None:
    """Convert an earlier release's store (a copy of it: this rewrites the file) to the versioned schema in one
    transaction; its rows become version 0, visible to every later version."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("BEGIN")
        for table in VERSIONED:
            conn.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
        conn.execute("DROP INDEX IF EXISTS chunks_pmid")  # it moved with old_chunks; the new table gets its own
        for statement in _schema_statements():
            conn.execute(statement)
        conn.execute(f"INSERT INTO records ({RECORD_COLUMNS}) SELECT {RECORD_COLUMNS} FROM old_records")
        conn.execute("INSERT INTO chunks (chunk_id, pmid, text, start, end) "
                     "SELECT chunk_id, pmid, text, start, end FROM old_chunks")
        conn.execute("INSERT INTO deleted (pmid, source, deleted_at) SELECT pmid, source, deleted_at FROM old_deleted")
        conn.execute("INSERT INTO provenance (id, kind, name, at, added, replaced, deleted, unchanged, skipped) "
                     "SELECT id, kind, name, at, added, replaced, deleted, unchanged, skipped FROM old_provenance")
        conn.execute("INSERT INTO record_sources (pmid, provenance_id) SELECT pmid, provenance_id FROM old_record_sources")
        for table in VERSIONED:
            conn.execute(f"DROP TABLE old_{table}")
        conn.commit()
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


def _schema_statements() -> list[str]:
    """The schema's CREATE statements, one by one (``executescript`` would commit the caller's transaction)."""
    parts = ("\n".join(line for line in part.splitlines() if not line.startswith("--")).strip()
             for part in SCHEMA.split(";"))
    return [part for part in parts if part.startswith("CREATE")]


def _row_hash(table: str, row: Iterable) -> int:
    data = json.dumps([table, *row], ensure_ascii=False, separators=(",", ":")).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:16], "big")


class RecordStore:
    """Records and chunks of one index version.

    ``version`` is the version read and, when writable, written: rows added get it, rows removed are closed at it
    (a writable store without one writes version 0). Read-only without one, it reads the rows still live, or a
    store written by an earlier release, which has no versions, as it is."""

    def __init__(self, path: Path, readonly: bool = False, version: int | None = None, shard: int = 0) -> None:
        sqlite_memstatus.disable()  # before the process's first connection (searches on parallel threads)
        self.path = Path(path)
        self.readonly = readonly
        if not readonly and not self.path.exists():
            self._new_schema(shard)
        self.versioned = is_versioned(self.path)
        if not readonly and not self.versioned:
            raise ValueError(f"{self.path}: written by an earlier release; upgrade a copy of it first "
                             "(ingest.store.upgrade)")
        if not readonly:
            self._new_schema()  # CREATE ... IF NOT EXISTS: a store from an earlier build gains any new index
        self.version = 0 if version is None and not readonly else version
        self.conn = self._connect()
        self._local = threading.local()
        self._visible: tuple[int | None, np.ndarray] | None = None
        # Words users typed: bounded, as every distinct word would otherwise stay for the process's lifetime.
        self._df: LRUCache[str, int] = LRUCache(100_000, 16 * 2**20, lambda word, n: len(word) + 100)

    def _new_schema(self, shard: int = 0) -> None:
        conn = sqlite3.connect(self.path)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            with conn:
                for statement in _schema_statements():
                    conn.execute(statement)
                if shard and not conn.execute("SELECT 1 FROM sqlite_sequence WHERE name = 'chunks'").fetchone():
                    # chunk ids are unique across an index's store shards: shard k numbers its chunks from k << 40
                    conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('chunks', ?)", (shard << SHARD_BITS,))
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        else:
            conn = sqlite3.connect(self.path, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        v = self.version
        if not self.versioned:
            live = "1"
        elif v is None:
            live = "valid_to IS NULL"
        else:
            live = f"valid_from <= {int(v)} AND (valid_to IS NULL OR valid_to > {int(v)})"
        for table in VERSIONED:
            conn.execute(f"CREATE TEMP VIEW live_{table} AS SELECT * FROM main.{table} WHERE {live}")
        return conn

    def reader(self) -> sqlite3.Connection:
        """This thread's own read-only connection, so searches run in parallel (SQLite releases the GIL)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect() if self.readonly else self.conn
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

    def visibility(self) -> tuple[int | None, np.ndarray]:
        """``(last chunk id of this version or None, sorted ids of its chunks removed but not yet purged)``.

        Chunk ids only grow (AUTOINCREMENT never reuses one), so a later version's chunks are the ids above this
        version's last; what this version removed is the few rows closed at or before it. Both are small reads,
        made once. BM25's corpus statistics are the FTS table's, so they include committed rows of a newer version:
        a reader of version N matches exactly N's chunks, scored with statistics that may already count N+1's."""
        if self._visible is None:
            if not self.versioned:
                self._visible = (None, np.zeros(0, dtype=np.int64))
            else:
                conn = self.reader()
                v = int(self.version) if self.version is not None else 1 << 62
                newer = conn.execute("SELECT MIN(chunk_id) FROM chunks WHERE valid_from > ?", (v,)).fetchone()[0]
                closed = [r[0] for r in conn.execute(
                    "SELECT chunk_id FROM chunks WHERE valid_to IS NOT NULL AND valid_to <= ?", (v,))]
                if newer is None:  # nothing newer yet: the bound is today's last id, later ones are newer
                    newer = conn.execute("SELECT COALESCE(MAX(chunk_id), 0) + 1 FROM chunks").fetchone()[0]
                last = int(newer) - 1
                self._visible = (last, np.array(sorted(closed), dtype=np.int64))
        return self._visible

    def bm25(self, query: str, limit: int, filters: Filters | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(chunk ids, BM25 scores)`` of the best ``limit`` chunks for an FTS5 ``query``, best first, among the
        records passing ``filters``; on this thread's read-only connection."""
        if filters is not None and filters.active:
            where, params = self.where(filters)
            sql = ("SELECT f.rowid, -bm25(chunks_fts) AS s FROM chunks_fts f "
                   "JOIN live_chunks c ON c.chunk_id = f.rowid JOIN live_records r ON r.pmid = c.pmid "
                   f"WHERE chunks_fts MATCH ? AND {where} ORDER BY s DESC LIMIT ?")
            rows = self.reader().execute(sql, [query, *params, limit]).fetchall()
        else:  # no join: rows of other versions are excluded by chunk id (``visibility``)
            last, closed = self.visibility()
            bound, params = ("AND rowid <= ? ", [last]) if last is not None else ("", [])
            sql = (f"SELECT rowid, -bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? {bound}"
                   "ORDER BY s DESC LIMIT ?")
            rows = self.reader().execute(sql, [query, *params, limit + len(closed)]).fetchall()
            if len(closed):
                rows = [r for r in rows if not _contains(closed, r[0])][:limit]
        return (np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.float32))

    def _vocab(self) -> sqlite3.Connection:
        """This thread's reader with the vocabulary tables: the FTS index's terms per row and per instance, and a
        scratch FTS5 table whose own vocabulary gives words as the index's tokenizer stems them."""
        conn = self.reader()
        if not getattr(self._local, "vocab", False):
            conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab USING fts5vocab(main, chunks_fts, row)")
            conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.postings USING fts5vocab(main, chunks_fts, instance)")
            conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.words USING fts5(w, tokenize='porter unicode61')")
            conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.word_stems USING fts5vocab(temp, words, instance)")
            self._local.vocab = True
        return conn

    def stems(self, words: list[str]) -> dict[str, list[str]]:
        """Each word's terms as the FTS index holds them (the word itself when the tokenizer keeps nothing of it)."""
        conn = self._vocab()
        conn.executemany("INSERT INTO temp.words (rowid, w) VALUES (?, ?)", list(enumerate(words)))
        found: dict[int, list[str]] = {}
        for doc, term in conn.execute("SELECT doc, term FROM temp.word_stems ORDER BY doc, offset"):
            found.setdefault(doc, []).append(term)
        conn.execute("DELETE FROM temp.words")
        return {word: found.get(i, [word]) for i, word in enumerate(words)}

    def term_frequencies(self, terms: list[str]) -> dict[str, int]:
        """How many FTS rows hold each (already stemmed) term."""
        conn = self._vocab()
        return {t: int((conn.execute("SELECT doc FROM temp.vocab WHERE term = ?", (t,)).fetchone() or (0,))[0])
                for t in terms}

    def document_frequencies(self, words: list[str]) -> dict[str, int]:
        """How many chunks hold each of ``words``, as the FTS5 index has the word (stemmed by the index's own
        tokenizer); counted once per word and remembered (LRU)."""
        found = self._df.get_many(words)
        todo = [w for w in dict.fromkeys(words) if w not in found]
        if todo:
            stems = self.stems(todo)
            frequencies = self.term_frequencies([stems[w][0] for w in todo])
            for word in todo:
                found[word] = frequencies[stems[word][0]]
                self._df.put(word, found[word])
        return {w: found[w] for w in words}

    def fts_totals(self) -> tuple[int, int]:
        """``(rows, tokens)`` of the FTS index, as bm25() reads them (its averages record)."""
        row = self.reader().execute("SELECT block FROM chunks_fts_data WHERE id = 1").fetchone()
        values = _varints(row[0]) if row else []
        return (values[0], values[1]) if len(values) >= 2 else (0, 0)

    def bm25_candidates(self, query: str, terms: list[str], limit: int,
                        filters: Filters | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This shard's best ``limit`` chunks for an FTS5 ``query`` by its own ``bm25()``, with what scoring them
        with other statistics needs: ``(chunk ids, count of each of the (stemmed) ``terms`` in each chunk (one row per
        chunk), each chunk's length in tokens)``. A store shard's candidates are rescored with the whole index's
        statistics (``ShardedStore.bm25``)."""
        ids, _ = self.bm25(query, limit, filters)
        counts = np.zeros((len(ids), len(terms)), dtype=np.float64)
        lengths = np.zeros(len(ids), dtype=np.float64)
        if not len(ids) or not terms:
            return ids, counts, lengths
        row = {int(i): n for n, i in enumerate(ids.tolist())}
        column = {t: n for n, t in enumerate(terms)}
        conn = self._vocab()
        marks, docs = ",".join("?" * len(terms)), ",".join("?" * len(ids))
        for doc, term, n in conn.execute(f"SELECT doc, term, COUNT(*) FROM temp.postings WHERE term IN ({marks}) "
                                         f"AND doc IN ({docs}) GROUP BY doc, term", [*terms, *ids.tolist()]):
            counts[row[doc], column[term]] = n
        for doc, size in conn.execute(f"SELECT id, sz FROM chunks_fts_docsize WHERE id IN ({docs})", ids.tolist()):
            lengths[row[doc]] = sum(_varints(size))
        return ids, counts, lengths

    def filtered_chunk_ids(self, filters: Filters) -> np.ndarray:
        """The ids of the chunks whose records pass ``filters``."""
        where, params = self.where(filters)
        rows = self.reader().execute(
            f"SELECT c.chunk_id FROM live_chunks c JOIN live_records r ON r.pmid = c.pmid WHERE {where}", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    # -- reads -----------------------------------------------------------------------------------------------
    def get(self, pmid: str) -> Record | None:
        row = self.conn.execute("SELECT data FROM live_records WHERE pmid = ?", (pmid,)).fetchone()
        return Record.from_dict(json.loads(row["data"])) if row else None

    def select_in(self, sql: str, keys: Iterable) -> Iterator[sqlite3.Row]:
        """Rows of ``sql`` (containing ``IN ({marks})``) for all ``keys``, queried in batches under SQLite's limit."""
        keys = list(dict.fromkeys(keys))
        for i in range(0, len(keys), 900):
            part = keys[i : i + 900]
            yield from self.conn.execute(sql.format(marks=",".join("?" * len(part))), part)

    def get_many(self, pmids: Iterable[str]) -> dict[str, Record]:
        rows = self.select_in("SELECT data FROM live_records WHERE pmid IN ({marks})", pmids)
        records = (Record.from_dict(json.loads(row["data"])) for row in rows)
        return {rec.pmid: rec for rec in records}

    def pmid_range(self) -> tuple[str, str]:
        """The lowest and highest PMID (as text) of every row this store has, live or not: any PMID it holds is in
        between."""
        lo, hi = self.conn.execute(
            "SELECT MIN(p), MAX(p) FROM (SELECT MIN(pmid) AS p FROM records UNION ALL SELECT MAX(pmid) FROM records "
            "UNION ALL SELECT MIN(pmid) FROM deleted UNION ALL SELECT MAX(pmid) FROM deleted)").fetchone()
        return (lo, hi) if lo is not None else ("1", "0")  # empty: contains nothing

    def hash_and_version(self, pmid: str) -> tuple[str, int] | None:
        row = self.conn.execute("SELECT content_hash, version FROM live_records WHERE pmid = ?", (pmid,)).fetchone()
        return (row[0], row[1]) if row else None

    def chunk_ids(self, pmid: str) -> list[int]:
        return [r[0] for r in self.conn.execute("SELECT chunk_id FROM live_chunks WHERE pmid = ?", (pmid,))]

    def chunks(self, chunk_ids: Iterable[int]) -> dict[int, Chunk]:
        sql = "SELECT chunk_id, pmid, text, start, end FROM live_chunks WHERE chunk_id IN ({marks})"
        return {row[0]: Chunk(*row) for row in self.select_in(sql, chunk_ids)}

    def chunk_pmids(self, chunk_ids: Iterable[int]) -> dict[int, str]:
        sql = "SELECT chunk_id, pmid FROM live_chunks WHERE chunk_id IN ({marks})"
        return {row[0]: row[1] for row in self.select_in(sql, chunk_ids)}

    def all_pmids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT pmid FROM live_records ORDER BY pmid")]

    def all_chunk_ids(self) -> list[int]:
        return [r[0] for r in self.conn.execute("SELECT chunk_id FROM live_chunks ORDER BY chunk_id")]

    def iter_records(self) -> Iterator[Record]:
        for row in self.conn.execute("SELECT data FROM live_records ORDER BY pmid"):
            yield Record.from_dict(json.loads(row[0]))

    def counts(self) -> dict[str, int]:
        one = lambda sql: int(self.conn.execute(sql).fetchone()[0])  # noqa: E731
        return {
            "records": one("SELECT COUNT(*) FROM live_records"),
            "chunks": one("SELECT COUNT(*) FROM live_chunks"),
            "title_only": one("SELECT COUNT(*) FROM live_records WHERE title_only = 1"),
            "retracted": one("SELECT COUNT(*) FROM live_records WHERE retracted = 1"),
            "retraction_notices": one("SELECT COUNT(*) FROM live_records WHERE retraction_notice = 1"),
            "deleted": one("SELECT COUNT(*) FROM live_deleted"),
        }

    def provenance(self) -> list[dict]:
        columns = "id, kind, name, at, added, replaced, deleted, unchanged, skipped"
        return [dict(r) for r in self.conn.execute(f"SELECT {columns} FROM live_provenance ORDER BY id")]

    # -- integrity -------------------------------------------------------------------------------------------
    def digest(self) -> str:
        """A hash of every live record and chunk of this version: a sum of per-row hashes, so that an update can
        carry it forward from the rows it changed (``change_digest``) without reading the rest."""
        total = 0
        for table, columns in DIGEST_COLUMNS.items():
            for row in self.conn.execute(f"SELECT {columns} FROM live_{table}"):
                total += _row_hash(table, row)
        return f"{total % _DIGEST_MOD:032x}"

    def change_digest(self, previous: str, version: int) -> str:
        """``previous`` (the digest of the version before) moved forward over the rows ``version`` added and
        closed."""
        total = int(previous, 16)
        for table, columns in DIGEST_COLUMNS.items():
            for row in self.conn.execute(f"SELECT {columns} FROM main.{table} WHERE valid_from = ?", (version,)):
                total += _row_hash(table, row)
            for row in self.conn.execute(f"SELECT {columns} FROM main.{table} WHERE valid_to = ?", (version,)):
                total -= _row_hash(table, row)
        return f"{total % _DIGEST_MOD:032x}"

    def count_changes(self, version: int) -> dict[str, int]:
        """How ``version`` changed each of ``counts()``: rows it added minus rows it closed (a small read)."""
        flags = ("COUNT(*)", "TOTAL(title_only)", "TOTAL(retracted)", "TOTAL(retraction_notice)")
        delta = dict.fromkeys(("records", "chunks", "title_only", "retracted", "retraction_notices", "deleted"), 0)
        for column, sign in (("valid_from", 1), ("valid_to", -1)):
            row = self.conn.execute(f"SELECT {', '.join(flags)} FROM main.records WHERE {column} = ?",
                                    (version,)).fetchone()
            for key, value in zip(("records", "title_only", "retracted", "retraction_notices"), row, strict=True):
                delta[key] += sign * int(value)
            for key, table in (("chunks", "chunks"), ("deleted", "deleted")):
                delta[key] += sign * int(self.conn.execute(
                    f"SELECT COUNT(*) FROM main.{table} WHERE {column} = ?", (version,)).fetchone()[0])
        return delta

    def changed_chunk_ids(self, version: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids of the chunks version added, ids of those it closed)``, sorted."""
        return tuple(np.array([r[0] for r in self.conn.execute(
            f"SELECT chunk_id FROM main.chunks WHERE {column} = ? ORDER BY chunk_id", (version,))], dtype=np.int64)
            for column in ("valid_from", "valid_to"))

    def changed(self, version: int) -> dict[str, int]:
        """How many records and chunks ``version`` added and closed."""
        one = lambda sql: int(self.conn.execute(sql, (version,)).fetchone()[0])  # noqa: E731
        return {f"{table}_{what}": one(f"SELECT COUNT(*) FROM main.{table} WHERE {column} = ?")
                for table in DIGEST_COLUMNS for what, column in (("added", "valid_from"), ("closed", "valid_to"))}

    # -- writes ----------------------------------------------------------------------------------------------
    @property
    def _v(self) -> int:
        if self.readonly or self.version is None:
            raise RuntimeError(f"{self.path}: opened read-only")
        return int(self.version)

    def _close_rows(self, table: str, where: str, params: tuple) -> int:
        """Remove rows from this version on: delete those this version added, close the older ones."""
        gone = self.conn.execute(f"DELETE FROM {table} WHERE ({where}) AND valid_from = ?", (*params, self._v))
        closed = self.conn.execute(f"UPDATE {table} SET valid_to = ? WHERE ({where}) AND valid_to IS NULL",
                                   (self._v, *params))
        return gone.rowcount + closed.rowcount

    def upsert(self, record: Record, content_hash: str) -> list[int]:
        """Store ``record``, replacing any older copy; return the chunk ids that were removed."""
        removed = self.remove_chunks(record.pmid)
        self._close_rows("records", "pmid = ?", (record.pmid,))
        self.conn.execute(
            f"INSERT INTO records ({RECORD_COLUMNS}, valid_from) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                record.pmid, record.version, record.title, record.abstract,
                json.dumps(record.to_dict(), ensure_ascii=False), record.year, int(record.retracted),
                int(record.is_retraction_notice), int(record.title_only), content_hash, record.source, now(), self._v,
            ),
        )
        self._close_rows("deleted", "pmid = ?", (record.pmid,))
        return removed

    def add_chunk(self, pmid: str, text: str, start: int, end: int) -> int:
        cur = self.conn.execute(
            "INSERT INTO chunks (pmid, text, start, end, valid_from) VALUES (?,?,?,?,?)",
            (pmid, text, start, end, self._v),
        )
        chunk_id = int(cur.lastrowid)
        self.conn.execute("INSERT INTO chunks_fts (rowid, text) VALUES (?, ?)", (chunk_id, text))
        return chunk_id

    def remove_chunks(self, pmid: str) -> list[int]:
        ids = self.chunk_ids(pmid)
        if ids:
            ours = [r[0] for r in self.conn.execute(
                "SELECT chunk_id FROM chunks WHERE pmid = ? AND valid_from = ?", (pmid, self._v))]
            self.conn.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ours])
            self._close_rows("chunks", "pmid = ?", (pmid,))
        return ids

    def close_pmid(self, pmid: str, sources: bool = False) -> list[int]:
        """Take a PMID out of this shard (its live copy is elsewhere now, or deleted): its record, chunks and
        deletion row, and with ``sources`` its source links; return the chunk ids removed."""
        removed = self.remove_chunks(pmid)
        for table in ("records", "deleted", *(("record_sources",) if sources else ())):
            self._close_rows(table, "pmid = ?", (pmid,))
        return removed

    def delete(self, pmid: str, source: str) -> tuple[bool, list[int]]:
        """Remove a record; return whether it was present and the chunk ids removed."""
        removed = self.remove_chunks(pmid)
        present = self._close_rows("records", "pmid = ?", (pmid,)) > 0
        self._close_rows("record_sources", "pmid = ?", (pmid,))
        self._close_rows("deleted", "pmid = ?", (pmid,))
        self.conn.execute("INSERT INTO deleted (pmid, source, deleted_at, valid_from) VALUES (?,?,?,?)",
                          (pmid, source, now(), self._v))
        return present, removed

    def start_provenance(self, kind: str, name: str) -> int:
        cur = self.conn.execute(
            "INSERT INTO provenance (kind, name, at, added, replaced, deleted, unchanged, skipped, valid_from) "
            "VALUES (?,?,?,0,0,0,0,0,?)",
            (kind, name, now(), self._v),
        )
        return int(cur.lastrowid)

    def finish_provenance(self, prov_id: int, counts: dict[str, int]) -> None:
        self.conn.execute(
            "UPDATE provenance SET added=?, replaced=?, deleted=?, unchanged=?, skipped=? WHERE id=?",
            (counts["added"], counts["replaced"], counts["deleted"], counts["unchanged"], counts["skipped"], prov_id),
        )

    def link_source(self, pmid: str, prov_id: int) -> None:
        self.conn.execute("INSERT INTO record_sources (pmid, provenance_id, valid_from) VALUES (?, ?, ?)",
                          (pmid, prov_id, self._v))

    def commit(self) -> None:
        self.conn.commit()

    def discard_after(self, version: int) -> int:
        """Undo what versions after ``version`` wrote (an update killed or failed before it was published); return
        how many rows that touched. One transaction."""
        touched = 0
        with self.conn:
            ids = [(r[0],) for r in self.conn.execute("SELECT chunk_id FROM chunks WHERE valid_from > ?", (version,))]
            self.conn.executemany("DELETE FROM chunks_fts WHERE rowid = ?", ids)
            for table in VERSIONED:
                touched += self.conn.execute(f"DELETE FROM {table} WHERE valid_from > ?", (version,)).rowcount
                touched += self.conn.execute(f"UPDATE {table} SET valid_to = NULL WHERE valid_to > ?",
                                             (version,)).rowcount
        return touched

    def purge(self, oldest_kept: int) -> int:
        """Delete the rows no kept version can see (closed at or before ``oldest_kept``); return how many."""
        purged = 0
        with self.conn:
            ids = [(r[0],) for r in self.conn.execute(
                "SELECT chunk_id FROM chunks WHERE valid_to IS NOT NULL AND valid_to <= ?", (oldest_kept,))]
            self.conn.executemany("DELETE FROM chunks_fts WHERE rowid = ?", ids)
            for table in VERSIONED:
                purged += self.conn.execute(f"DELETE FROM {table} WHERE valid_to IS NOT NULL AND valid_to <= ?",
                                            (oldest_kept,)).rowcount
        return purged

    # -- summaries for the library page -------------------------------------------------------------------------
    def year_counts(self) -> dict[int, int]:
        rows = self.conn.execute(
            "SELECT year, COUNT(*) FROM live_records WHERE year IS NOT NULL GROUP BY year ORDER BY year")
        return {int(y): int(n) for y, n in rows}

    def vocabulary(self) -> dict[tuple[str, str], int]:
        """How many live records carry each MeSH heading and each chemical name: ``{("mesh"|"chemical", term): n}``
        (the case reader's condition and drug vocabulary, collected from the records as they were ingested)."""
        counts: dict[tuple[str, str], int] = {}
        for kind, path in (("mesh", "$.mesh"), ("chemical", "$.chemicals")):
            rows = self.reader().execute(
                f"SELECT value, COUNT(*) FROM live_records r, json_each(r.data, '{path}') GROUP BY value")
            counts.update({(kind, str(term)): int(n) for term, n in rows})
        return counts

    def publication_type_counts(self) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT value, COUNT(*) FROM live_records r, json_each(r.data, '$.publication_types') "
            "GROUP BY value ORDER BY COUNT(*) DESC"
        )
        return {str(t): int(n) for t, n in rows}


def _varints(blob: bytes) -> list[int]:
    """SQLite's varints (7 bits a byte, high bit set on all but the last) as FTS5 writes its records."""
    values, value = [], 0
    for byte in blob:
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            values.append(value)
            value = 0
    return values


def _contains(sorted_ids: np.ndarray, chunk_id: int) -> bool:
    pos = int(np.searchsorted(sorted_ids, chunk_id))
    return pos < len(sorted_ids) and int(sorted_ids[pos]) == chunk_id
