"""Soak: repeated index updates while readers query. No reader ever sees a half-published version, and a version a
reader holds open stays whole until it lets go, however many versions are published meanwhile."""

from __future__ import annotations

import threading
import time

import numpy as np

from ingest.build import FileSource, RecordsSource, ingest
from ingest.index import IndexLayout, LoadedIndex
from pubmed_rag.records import Deletion
from tests.conftest import XML, sample_records

UPDATES = 8
QUERY = "asthma exacerbations inhaled corticosteroid"


def snapshot(index: LoadedIndex, query: np.ndarray) -> tuple:
    """What a reader sees of one version, checked for consistency: the store's rows hash to the manifest's digest,
    the counts agree, and every vector hit resolves to a live record of the same version."""
    manifest = index.manifest
    counts = index.store.counts()
    assert index.store.digest() == manifest["store"]["digest"], index.folder
    assert counts["records"] == manifest["counts"]["records"] and counts["chunks"] == manifest["counts"]["chunks"]
    assert len(index.vectors) == counts["chunks"], index.folder
    scores, ids = index.vectors.search(query, 10)
    ids = [int(i) for i in ids.reshape(-1) if i >= 0]
    pmids = index.store.chunk_pmids(ids)
    assert sorted(pmids) == sorted(ids), f"{index.folder}: vector hits without a stored chunk"
    records = index.store.get_many(set(pmids.values()))
    assert set(records) == set(pmids.values())
    return index.folder.name, counts["records"], tuple(ids), tuple(sorted(records))


def test_updates_while_readers_query(settings, embedder):
    name = "soak"
    ingest([FileSource(XML / "pubmed26n1334.xml.gz")], name, settings, embedder=embedder)
    first_pmids = LoadedIndex(settings.paths.index_dir, name).store.all_pmids()
    extra = sample_records(10 * UPDATES, "pubmedqa")
    # The 2026 daily update first (30 new records, a DeleteCitation for 6), then batches of 10 real abstracts, each
    # with a DeleteCitation for 2 records of the first version: rows a held first version still reads.
    updates = [FileSource(XML / "pubmed26n1335.xml.gz")] + [
        RecordsSource(f"batch{n}", [*extra[10 * n: 10 * (n + 1)],
                                    Deletion(tuple(first_pmids[2 * n: 2 * n + 2]), "pubmed-deletes")])
        for n in range(UPDATES - 1)]
    query = embedder.encode([QUERY])[0]
    done = threading.Event()
    errors: list[BaseException] = []
    seen: dict[str, set] = {}  # version -> every snapshot readers took of it (must be one)
    lock = threading.Lock()

    def writer() -> None:
        try:
            for source in updates:
                ingest([source], name, settings, embedder=embedder)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            done.set()

    def reader(n: int) -> None:
        try:
            held = LoadedIndex(settings.paths.index_dir, name)  # kept open across every update
            first = snapshot(held, query)
            while not done.is_set():
                index = LoadedIndex(settings.paths.index_dir, name)
                view = snapshot(index, query)
                with lock:
                    seen.setdefault(view[0], set()).add(view)
                index.close()
                assert snapshot(held, query) == first  # the held version is still whole and unchanged
                time.sleep(0.005 * n)
            assert snapshot(held, query) == first
            held.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors
    assert all(len(views) == 1 for views in seen.values()), seen  # every reader saw the same rows of a version
    assert len(seen) >= 3  # readers really read while versions were published
    layout = IndexLayout(settings.paths.index_dir, name)
    assert layout.current().name == f"v{UPDATES + 1:04d}"
    # The readers are gone: the next publish prunes down to the versions kept, and the store keeps only their rows.
    ingest([RecordsSource("last", extra[-10:])], name, settings, embedder=embedder)
    assert sorted(p.name for p in layout.versions.glob("v[0-9]*")) == [f"v{UPDATES + 1:04d}", f"v{UPDATES + 2:04d}"]
    final = LoadedIndex(settings.paths.index_dir, name)
    pmids = set(final.store.all_pmids())
    assert {r.pmid for r in extra} <= pmids and not pmids & set(first_pmids[: 2 * (UPDATES - 1)])
    snapshot(final, query)
    final.close()
