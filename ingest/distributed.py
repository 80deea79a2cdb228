"""Distributed ingest on Ray: every input file becomes a store shard of its own, built on the node that parses it.

The pipeline (``build_shards``):

1. one task per input file parses it and applies its items, in order, to a new store shard (records, chunks, the
   FTS5 table, the filter columns: ``store-NNNNN.sqlite``) exactly as the single-process build applies a file
   (``ingest.apply.Run``), and emits its chunks' ids and texts. The shard is written under a temporary name and
   renamed, so a retried task rewrites the same file;
2. an actor pool embeds the chunks (the model loaded once per actor) and each actor writes the vectors of every batch,
   by chunk id, to a vectors shard (``vectors-*.npz``); a killed actor is restarted and its batch retried by Ray;
3. the driver only coordinates. It moves the shards into the index folder in file order and resolves the PMIDs that
   more than one shard names (or that the index already holds): a newer version in a later file replaces the older
   one wherever it lives, an identical or older one is dropped, a DeleteCitation removes the PMID from every earlier
   shard. It closes the rows that lost (in one SQL statement per PMID and shard), adds the vectors of the chunks
   that are live, and the build publishes one index version, as a single-process build of the same files would.

Shards are written in a work folder that every node must reach (by default inside the build's staging folder under
``paths.index_dir``; on a cluster, a shared filesystem: ``ingest.ray_work_dir``).
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import logging
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ingest.ann.sharded import ShardedIndex
from ingest.apply import IngestSummary, Progress, Run, no_progress
from ingest.embedder import Embedder, load_embedder, resolve_model_path
from ingest.manifest import shard_file, shard_number
from ingest.sources import FileSource
from ingest.store import RecordStore
from pubmed_rag.records import Deletion, IngestError, Record, Skipped
from pubmed_rag.settings import Settings

log = logging.getLogger(__name__)
COUNTS = ("added", "replaced", "deleted", "unchanged", "skipped")


@dataclass
class ShardBuild:
    """What the cluster built for an ingest run."""

    shards: list[str]  # the new store shards, in file order, now in the index folder
    rest: list  # the sources that are not files, for the caller to apply in one process
    failures: list[str] = field(default_factory=list)  # files that failed part-way (what they yielded is kept)


# -- the parse tasks -----------------------------------------------------------------------------------------------
class _TokenWindow:
    """What the chunker needs of an embedder (its tokenizer and window), without loading the model's weights."""

    def __init__(self, model: str, max_tokens: int) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(model))
        self.max_tokens = max_tokens

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


@lru_cache(maxsize=4)
def _chunker(model: str, max_tokens: int, overlap: int) -> Any:
    from ingest.chunking import Chunker

    return Chunker(_TokenWindow(model, max_tokens), overlap)  # type: ignore[arg-type]


@dataclass
class _RenamedFile:
    """An input file read by its absolute path on a worker, its items naming it as the driver was given it (so
    records, provenance and messages are the ones a single-process build writes)."""

    path: str
    name: str
    kind: str = "file"

    def items(self) -> Iterator[Record | Deletion | Skipped]:
        from ingest.sources import parse_file

        for item in parse_file(Path(self.path)):
            if isinstance(item, Deletion):
                yield dataclasses.replace(item, source=item.source.replace(self.path, self.name))
            else:
                item.source = item.source.replace(self.path, self.name)
                yield item


class _NoVectors:
    """Where a parse task's run sends vectors: nowhere (the actor pool embeds the shard's live chunks)."""

    def add(self, ids: list[int], vectors: np.ndarray) -> None:
        return None

    def remove(self, ids: list[int]) -> int:
        return 0


class _ShardRun(Run):
    """The single-process build's apply, minus embedding: chunks are stored, not embedded."""

    def flush(self) -> None:
        self.pending, self.pending_texts = [], []


def _parse_shard(row: dict[str, Any], config: dict[str, Any]) -> list[dict[str, Any]]:
    """Ray Data stage (a task per file): one input file -> its store shard; returns a row describing the shard and
    one row per live chunk (id and text) to embed."""
    started = time.perf_counter()
    number, path, name = int(row["shard"]), row["path"], row["name"]
    work = Path(config["work"])
    target = work / shard_file(number)
    tmp = work / f".{target.name}.{uuid.uuid4().hex[:8]}"
    store = RecordStore(tmp, version=int(config["version"]), shard=number)
    summary = IngestSummary(index="")
    chunker = _chunker(config["model"], config["max_tokens"], config["overlap"])
    run = _ShardRun(store, _NoVectors(), None, chunker, 0, no_progress, summary)  # type: ignore[arg-type]
    error = None
    try:
        run.apply(_RenamedFile(path, name))
    except (IngestError, OSError, EOFError) as exc:
        error = (str(exc) if isinstance(exc, IngestError) else f"{path}: cannot read ({exc}).").replace(path, name)
    chunks = store.conn.execute("SELECT chunk_id, text FROM chunks WHERE valid_to IS NULL ORDER BY chunk_id").fetchall()
    provenance = int(store.conn.execute("SELECT MAX(id) FROM provenance").fetchone()[0])
    store.close()
    os.replace(tmp, target)
    meta = {"order": int(row["order"]), "shard": target.name, "provenance": provenance, "error": error,
            "counts": {k: getattr(summary, k) for k in COUNTS}, "title_only": summary.title_only,
            "problems": summary.problems, "records": summary.added + summary.replaced + summary.unchanged,
            "seconds": time.perf_counter() - started}
    return [{"id": -1, "text": "", "meta": json.dumps(meta, ensure_ascii=False)}] + [
        {"id": int(i), "text": t, "meta": ""} for i, t in chunks]


# -- the embedding actors ------------------------------------------------------------------------------------------
class _Embed:
    """Ray Data stage (an actor pool): a batch of chunks -> one vectors shard (ids and vectors); passes the shards'
    descriptions on."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.embedder = load_embedder(config["model"], config["max_tokens"], config["backend"],
                                      Path(config["cache_dir"]))
        self.work = Path(config["work"])
        self.batch_size = config["batch_size"]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        started = time.perf_counter()
        ids = np.asarray(batch["id"], dtype=np.int64)
        keep = ids >= 0
        name = ""
        if keep.any():
            vectors = self.embedder.encode([str(t) for t in batch["text"][keep]], batch_size=self.batch_size)
            name = f"vectors-{uuid.uuid4().hex}.npz"
            tmp = self.work / f".{name}"
            with open(tmp, "wb") as handle:
                np.savez(handle, ids=ids[keep], vectors=vectors)
            os.replace(tmp, self.work / name)
        return {"shard": [name], "chunks": [int(keep.sum())], "meta": [json.dumps([str(m) for m in batch["meta"] if m])],
                "seconds": [time.perf_counter() - started]}


# -- the driver ----------------------------------------------------------------------------------------------------
def connect(address: str, verbose: bool = False) -> dict[str, Any]:
    """Join the Ray cluster at ``address`` (``auto``: the one this machine belongs to, else a local one started for
    the run); returns ``ray.cluster_resources()``."""
    # Nothing leaves the machine: no usage statistics, and no Ray Data usage collection (which also queries a
    # Prometheus server that is not there and logs the failures).
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DATA_USAGE_DISABLED", "1")
    if not verbose:  # Ray's core worker logs to stderr itself (e.g. a warning about every restartable actor)
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    try:
        import ray
    except ImportError as exc:
        raise IngestError("ingest.ray is set but Ray is not installed: pip install 'pubmed-rag[ray]', or build in one "
                          "process (leave out --ray / ingest.ray).") from exc

    if not ray.is_initialized():
        quiet = {"log_to_driver": verbose, "logging_level": logging.INFO if verbose else logging.WARNING,
                 "include_dashboard": False}
        if address == "auto":
            try:
                ray.init(address="auto", **quiet)
            except ConnectionError:
                log.info("no Ray cluster found; starting a local one for this build")
                ray.init(**quiet)
        else:
            ray.init(address=address, **quiet)
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = verbose  # the build's own tqdm bars show progress
    context.print_on_execution_start = verbose
    # Blocks of about one embedding batch (chunk texts are ~1.5 KB), so one large file still feeds every actor.
    context.target_max_block_size = 1 << 20
    if not verbose:
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    return ray.cluster_resources()


def build_shards(sources: list, embedder: Embedder, settings: Settings, work: Path, root: Path, version: int,
                 existing: list[str], vectors: ShardedIndex, summary: IngestSummary,
                 progress: Progress = no_progress) -> ShardBuild:
    """Build a store shard per file source on Ray, embed their chunks there, and resolve the shards against each other
    and the index's ``existing`` shards as version ``version``: on return the new shards are in ``root``, the vectors
    of their live chunks are added to ``vectors`` (and those of closed chunks removed), and ``summary`` counts what
    the files did. ``summary.stages`` gets the seconds of each stage: ``cluster`` (parse, chunk and embed, wall),
    ``parse_cpu`` and ``embed_cpu`` (summed over tasks), ``resolve`` and ``vectors`` (the driver)."""
    import ray
    from ray.data import ActorPoolStrategy

    cfg = settings.ingest
    started = time.perf_counter()
    resources = connect(cfg.ray, verbose=logging.getLogger("pubmed_rag").isEnabledFor(logging.DEBUG))
    work.mkdir(parents=True, exist_ok=True)
    files = [s for s in sources if isinstance(s, FileSource)]
    rest = [s for s in sources if not isinstance(s, FileSource)]
    first = max((shard_number(n) for n in existing), default=0) + 1
    if not files:
        return ShardBuild([], rest)
    cpus = float(resources.get("CPU", 1))
    actors = cfg.ray_actors or max(1, int(cpus))
    # Room for a parse task beside a full actor pool: with as many actors as CPUs, the pool held every CPU and the
    # parse tasks that feed it never ran (a deadlock met with 1 CPU and 1 actor). So when the actors would fill the
    # cluster, each takes a share of a CPU and a parse task half of one.
    actor_cpus, parse_cpus = (1.0, 1.0) if cpus >= actors + 1 else (max(0.05, (cpus - 0.5) / actors), 0.5)
    ds = ray.data.from_items([{"order": i, "shard": first + i, "path": str(Path(s.path).resolve()), "name": s.name}
                              for i, s in enumerate(files)], override_num_blocks=max(1, len(files)))
    common = {"model": embedder.name, "max_tokens": embedder.max_tokens, "work": str(work)}
    ds = ds.flat_map(_parse_shard, fn_kwargs={"config": {
        **common, "overlap": settings.embedding.chunk_overlap, "version": version}}, num_cpus=parse_cpus)
    ds = ds.map_batches(_Embed, fn_constructor_kwargs={"config": {
        **common, "backend": settings.embedding.backend, "cache_dir": str(settings.paths.cache_dir),
        "batch_size": settings.embedding.batch_size}},
        # An autoscaling pool: a fixed pool as large as the cluster would hold every CPU and starve the parse tasks.
        batch_size=cfg.ray_batch_size, num_cpus=actor_cpus, compute=ActorPoolStrategy(min_size=1, max_size=actors))
    # Ray Data's actor pools restart a killed actor and retry its batch by default (max_restarts and
    # max_task_retries -1): a lost worker loses nothing, and a retried batch writes a vectors shard of its own; only
    # the shards of batches that returned are read.
    metas: dict[int, dict] = {}
    npz: list[Path] = []
    embed_cpu = 0.0
    for row in ds.iter_rows():
        if row["shard"]:
            npz.append(work / row["shard"])
        embed_cpu += float(row["seconds"])
        for text in json.loads(row["meta"]):
            meta = json.loads(text)
            metas[meta["order"]] = meta
            progress("parse", int(meta["records"]))
        progress("embed", int(row["chunks"]))
    summary.stages.update(cluster=time.perf_counter() - started, embed_cpu=embed_cpu,
                          parse_cpu=sum(m["seconds"] for m in metas.values()))

    resolving = time.perf_counter()
    built = ShardBuild([], rest)
    for order in range(len(files)):
        meta = metas[order]
        shutil.move(work / meta["shard"], root / meta["shard"])  # a rename on the same filesystem
        built.shards.append(meta["shard"])
        summary.problems.extend(meta["problems"])
        if meta["error"]:
            built.failures.append(meta["error"])
    old = [RecordStore(root / n, version=version, shard=shard_number(n)) for n in existing if (root / n).exists()]
    new = [RecordStore(root / n, version=version, shard=shard_number(n)) for n in built.shards]
    counts = [dict(metas[order]["counts"], title_only=metas[order]["title_only"]) for order in range(len(files))]
    try:
        closed_old, closed_new = resolve(old, new, counts)
        for store, order in zip(new, range(len(files)), strict=True):
            store.finish_provenance(metas[order]["provenance"], counts[order])
        for store in old + new:
            store.commit()
    finally:
        for store in old + new:
            store.close()
    for c in counts:
        for key in (*COUNTS, "title_only"):
            setattr(summary, key, getattr(summary, key) + c[key])
    summary.stages["resolve"] = time.perf_counter() - resolving

    adding = time.perf_counter()
    vectors.remove(closed_old)
    dropped = np.asarray(sorted(closed_new), dtype=np.int64)
    for path in npz:
        with np.load(path) as data:
            ids, found = data["ids"], data["vectors"]
        keep = ~np.isin(ids, dropped)
        vectors.add(ids[keep], found[keep])
        summary.chunks_embedded += len(ids)  # what the cluster embedded, kept or not
    summary.stages["vectors"] = time.perf_counter() - adding
    return built


def resolve(old: list[RecordStore], new: list[RecordStore], counts: list[dict[str, int]]) -> tuple[list[int], list[int]]:
    """Make the shards hold what applying the new shards' files in order, after the old shards, gives: for every PMID
    that more than one shard names, keep its live copy where the file order puts it and close it everywhere else
    (``RecordStore.close_pmid``). Each new shard was built alone, so its ``counts`` are corrected for what the
    index already held (an "added" record that was there before is "replaced" or "unchanged"; a deletion of a record
    held elsewhere counts). Returns the chunk ids closed in the old shards and in the new ones.

    Exact when a file names a PMID once (PubMed's files do); a file naming one twice is resolved within its shard
    first, then as a whole."""
    states: list[dict[str, tuple]] = []
    for store in new:
        state: dict[str, tuple] = {p: ("r", h, v, t) for p, h, v, t in store.conn.execute(
            "SELECT pmid, content_hash, version, title_only FROM records WHERE valid_to IS NULL")}
        state.update((p, ("d",)) for (p,) in store.conn.execute("SELECT pmid FROM deleted WHERE valid_to IS NULL"))
        states.append(state)
    named = Counter(p for state in states for p in state)
    ordered = sorted(named)
    held: dict[str, tuple[RecordStore, tuple]] = {}
    for store in old:  # the index's live copy (or deletion) of every PMID the new files name
        # only the PMIDs within the shard's range are looked up (PubMed's files hold ranges of PMIDs)
        lo, hi = store.pmid_range()
        probe = ordered[bisect.bisect_left(ordered, lo):bisect.bisect_right(ordered, hi)]
        for row in store.select_in("SELECT pmid, content_hash, version, title_only FROM live_records "
                                    "WHERE pmid IN ({marks})", probe):
            held[row[0]] = (store, ("r", row[1], row[2], row[3]))
        for row in store.select_in("SELECT pmid FROM live_deleted WHERE pmid IN ({marks})", probe):
            held.setdefault(row[0], (store, ("d",)))
    is_new = {id(s) for s in new}
    closed_old: list[int] = []
    closed_new: list[int] = []

    def close(store: RecordStore, pmid: str, sources: bool = False) -> None:
        (closed_new if id(store) in is_new else closed_old).extend(store.close_pmid(pmid, sources))

    for pmid in (p for p, n in named.items() if n > 1 or p in held):
        live = held.get(pmid)
        touched = [live[0]] if live else []
        for store, state, count in zip(new, states, counts, strict=True):
            mine = state.get(pmid)
            if mine is None:
                continue
            if mine[0] == "r":
                if live and live[1][0] == "r" and (live[1][1] == mine[1] or mine[2] < live[1][2]):
                    close(store, pmid)  # the same record again, or an older version: the held one stays
                    count["added"] -= 1
                    count["unchanged"] += 1
                    count["title_only"] -= mine[3]
                    touched.append(store)
                    continue
                if live:
                    close(live[0], pmid)
                    if live[1][0] == "r":
                        count["added"] -= 1
                        count["replaced"] += 1
            else:
                if live and live[1][0] == "r":
                    count["deleted"] += 1
                for earlier in touched:  # a deletion closes the record and every source link before it
                    close(earlier, pmid, sources=True)
            live = (store, mine)
            touched.append(store)
    return closed_old, closed_new
