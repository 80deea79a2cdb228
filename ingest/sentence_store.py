"""Each indexed abstract's evidence sentences and their vectors, stored at ingest so that checking a claim against
an indexed abstract embeds only the claim.

``indexes/<name>/sentences.sqlite`` sits beside the record store. Rows are keyed by the sha256 of the text they were
cut from (``pubmed_rag.sentences.evidence_sentences``), so a row is right for every version of the index that holds
that text and an ingest that fails leaves nothing wrong behind; the vectors are float16 (a verifier rounds the
vectors it computes itself the same way, so its verdicts do not depend on whether a text was stored).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from pubmed_rag.sentences import evidence_sentences

SENTENCES_FILE = "sentences.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sentences (hash TEXT PRIMARY KEY, sentences TEXT NOT NULL, vectors BLOB NOT NULL);
"""


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SentenceStore:
    """Sentences and float16 vectors by text; ``add`` embeds the texts not stored yet, ``get_many`` reads."""

    def __init__(self, path: Path, model: str, readonly: bool = False) -> None:
        self.path = Path(path)
        self.model = model
        if readonly:
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            stored = self._db.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
            if stored is None:
                self._db.execute("INSERT INTO meta VALUES ('model', ?)", (model,))
                self._db.commit()
        row = self._db.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
        if row is None or row[0] != model:
            raise ValueError(f"{self.path} holds sentence vectors of {row[0] if row else 'no model'!r}, not {model!r}; "
                             "delete it and re-ingest to rebuild it")

    @classmethod
    def open(cls, folder: Path, model: str) -> SentenceStore | None:
        """The store in ``folder`` opened read-only, or ``None`` if there is none (or it holds another model's)."""
        path = Path(folder) / SENTENCES_FILE
        if not path.is_file():
            return None
        try:
            return cls(path, model, readonly=True)
        except (ValueError, sqlite3.Error):
            return None

    def get_many(self, texts: Iterable[str]) -> dict[str, tuple[list[str], np.ndarray]]:
        """``text -> (sentences, vectors)`` for the texts stored; the others are left out."""
        keys = {text_key(t): t for t in texts}
        out: dict[str, tuple[list[str], np.ndarray]] = {}
        items = list(keys)
        for start in range(0, len(items), 500):
            chunk = items[start:start + 500]
            rows = self._db.execute(f"SELECT hash, sentences, vectors FROM sentences WHERE hash IN "
                                    f"({','.join('?' * len(chunk))})", chunk)
            for key, sentences, vectors in rows:
                parsed = json.loads(sentences)
                out[keys[key]] = (parsed, np.frombuffer(vectors, dtype=np.float16).reshape(len(parsed), -1))
        return out

    def add(self, texts: Iterable[str], embedder: Any, batch_size: int = 32) -> int:
        """Split and embed the texts not stored yet and store them; returns how many were added."""
        wanted = {text_key(t): t for t in texts if t and t.strip()}
        if not wanted:
            return 0
        present = set(self.get_many(wanted.values()))
        todo = [(k, t) for k, t in wanted.items() if t not in present]
        if not todo:
            return 0
        split = [evidence_sentences(t) for _, t in todo]
        vectors = embedder.encode([s for sentences in split for s in sentences], batch_size=batch_size)
        rows, offset = [], 0
        for (key, _), sentences in zip(todo, split, strict=True):
            block = np.asarray(vectors[offset:offset + len(sentences)], dtype=np.float16)
            rows.append((key, json.dumps(sentences, ensure_ascii=False), block.tobytes()))
            offset += len(sentences)
        self._db.executemany("INSERT OR REPLACE INTO sentences VALUES (?, ?, ?)", rows)
        self._db.commit()
        return len(rows)

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM sentences").fetchone()[0])

    def close(self) -> None:
        self._db.close()
