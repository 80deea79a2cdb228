"""Distributed ingest on Ray Data: files are parsed and chunked in parallel and the chunks embedded by an actor pool.

The pipeline (``prepare``):

1. one task per input file parses it and writes its items, in order, to a records shard (``records-NNNNN.jsonl``,
   written atomically, so a retried task rewrites the same file), and emits the file's chunk texts;
2. an actor pool embeds the chunks (the model loaded once per actor) and each actor writes the vectors of every batch
   to a vectors shard (``vectors-*.npz``); a killed actor is restarted and its batch retried by Ray;
3. the driver then applies the records shards in file order through the single-process build (``ingest.build``),
   with an embedder that looks the vectors up by chunk text. Deletions and newer PMID versions therefore keep their
   meaning across files, and the published version is the one a single-process build makes.

Shards live in a work folder that every node must reach (by default inside the build's staging folder under
``paths.index_dir``; on a cluster, a shared filesystem: ``ingest.ray_work_dir``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ingest.embedder import Embedder, load_embedder, resolve_model_path
from ingest.sources import FileSource
from pubmed_rag.records import Deletion, IngestError, Record, Skipped
from pubmed_rag.settings import Settings

log = logging.getLogger(__name__)
RECORDS = "records-{:05d}.jsonl"


# -- records shards ------------------------------------------------------------------------------------------------
def _item_line(item: Record | Deletion | Skipped, chunks: list[tuple[str, int, int]] | None = None) -> str:
    if isinstance(item, Record):
        return json.dumps({"record": item.to_dict(), "chunks": chunks or []}, ensure_ascii=False)
    if isinstance(item, Deletion):
        return json.dumps({"delete": list(item.pmids), "source": item.source})
    return json.dumps({"skipped": item.reason, "source": item.source}, ensure_ascii=False)


@dataclass
class ShardSource:
    """One input file's items as its parse task wrote them: applied by the driver exactly as the file would be."""

    path: Path  # the records shard
    name: str  # the input file, as provenance and messages name it
    chunks: dict[str, list[tuple[str, int, int]]]  # filled as records are read: content hash -> the task's chunks
    kind: str = "file"

    def items(self) -> Iterator[Record | Deletion | Skipped]:
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                data = json.loads(line)
                if "record" in data:
                    record = Record.from_dict(data["record"])
                    self.chunks[record.content_hash()] = [tuple(c) for c in data["chunks"]]
                    yield record
                elif "delete" in data:
                    yield Deletion(tuple(data["delete"]), data["source"])
                elif "skipped" in data:
                    yield Skipped(data["source"], data["skipped"])
                else:  # the file failed part-way: fail here, after what it yielded, as the file itself would
                    raise IngestError(data["error"])


# -- Ray stages ----------------------------------------------------------------------------------------------------
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


def _parse_chunk(row: dict[str, Any], config: dict[str, Any]) -> list[dict[str, Any]]:
    """Ray Data stage (a task per file): one input file -> its records shard, and one row per chunk text (plus a
    row counting its records)."""
    from ingest.sources import parse_file

    chunker = _chunker(config["model"], config["max_tokens"], config["overlap"])
    order, path, name = int(row["order"]), row["path"], row["name"]
    target = Path(config["work"]) / RECORDS.format(order)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    texts: list[str] = []
    records = 0
    with open(tmp, "w", encoding="utf-8") as out:
        try:
            for item in parse_file(Path(path)):
                item = _rename(item, path, name)
                chunks = chunker.split(item) if isinstance(item, Record) else None
                out.write(_item_line(item, chunks) + "\n")
                if chunks is not None:
                    records += 1
                    texts.extend(text for text, _, _ in chunks)
        except (IngestError, OSError, EOFError) as exc:
            problem = str(exc) if isinstance(exc, IngestError) else f"{path}: cannot read ({exc})."
            out.write(json.dumps({"error": problem.replace(path, name)}, ensure_ascii=False) + "\n")
    os.replace(tmp, target)
    return [{"order": order, "text": "", "records": records}] + [
        {"order": order, "text": t, "records": 0} for t in dict.fromkeys(texts)]


def _rename(item: Record | Deletion | Skipped, path: str, name: str) -> Record | Deletion | Skipped:
    """The item naming the input file as the driver was given it (workers read it by its absolute path), so records,
    provenance and messages are the ones a single-process build writes."""
    if isinstance(item, Deletion):
        return dataclasses.replace(item, source=item.source.replace(path, name))
    item.source = item.source.replace(path, name)
    return item


class _Embed:
    """Ray Data stage (an actor pool): a batch of chunk texts -> one vectors shard; returns its name and counts."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.embedder = load_embedder(config["model"], config["max_tokens"], config["backend"],
                                      Path(config["cache_dir"]))
        self.work = Path(config["work"])
        self.batch_size = config["batch_size"]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        texts = [str(t) for t in batch["text"] if t]
        name = ""
        if texts:
            vectors = self.embedder.encode(texts, batch_size=self.batch_size)
            name = f"vectors-{uuid.uuid4().hex}.npz"
            tmp = self.work / f".{name}"
            with open(tmp, "wb") as handle:
                np.savez(handle, texts=np.array(texts, dtype=object).astype(str), vectors=vectors)
            os.replace(tmp, self.work / name)
        return {"shard": [name], "chunks": [len(texts)], "records": [int(np.sum(batch["records"]))]}


# -- the driver ----------------------------------------------------------------------------------------------------
class PrecomputedEmbedder:
    """The build's embedder, answering from the vectors the cluster computed (by chunk text); anything the cluster
    did not embed (a non-file source) is embedded here. ``misses`` counts those texts."""

    def __init__(self, base: Embedder, vectors: dict[str, np.ndarray]) -> None:
        self.base, self.lookup, self.misses = base, vectors, 0
        self.name, self.dimension, self.max_tokens = base.name, base.dimension, base.max_tokens

    @property
    def tokenizer(self) -> Any:
        return self.base.tokenizer

    def count_tokens(self, text: str) -> int:
        return self.base.count_tokens(text)

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.lookup))
        if missing:
            self.misses += len(missing)
            self.lookup.update(zip(missing, self.base.encode(missing, batch_size=batch_size), strict=True))
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self.lookup[t] for t in texts]).astype(np.float32)


class PrecomputedChunker:
    """The build's chunker, answering with the chunks the parse tasks made (the driver would otherwise spend most of
    its time tokenising again: measured 203 records/s for chunking against 158 for the whole apply)."""

    def __init__(self, base: Any, chunks: dict[str, list[tuple[str, int, int]]]) -> None:
        self.base, self.chunks = base, chunks

    def split(self, record: Record) -> list[tuple[str, int, int]]:
        found = self.chunks.pop(record.content_hash(), None)
        return found if found is not None else self.base.split(record)


def applying(progress: Any) -> Any:
    """The build's progress sink for the driver's pass: records applied count as "apply" (parse and embed were
    counted on the cluster), and looking vectors up is not embedding."""

    def report(stage: str, advance: int, total: int | None = None) -> None:
        if stage == "parse":
            progress("apply", advance, total)
        elif stage != "embed":
            progress(stage, advance, total)

    return report


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


def prepare(sources: list, embedder: Embedder, settings: Settings, work: Path,
            progress: Any = None) -> tuple[list, PrecomputedEmbedder, dict[str, list[tuple[str, int, int]]]]:
    """Parse, chunk and embed the file sources on Ray; return the sources to apply (file sources replaced by their
    records shards, in the same order), the embedder that serves the cluster's vectors, and the chunks the tasks made
    (filled as the shards are read; ``PrecomputedChunker`` serves them)."""
    import ray
    from ray.data import ActorPoolStrategy


    cfg = settings.ingest
    resources = connect(cfg.ray, verbose=logging.getLogger("pubmed_rag").isEnabledFor(logging.DEBUG))
    work.mkdir(parents=True, exist_ok=True)
    files = [s for s in sources if isinstance(s, FileSource)]
    actors = cfg.ray_actors or max(1, int(resources.get("CPU", 1)))
    ds = ray.data.from_items([{"order": i, "path": str(Path(s.path).resolve()), "name": s.name}
                              for i, s in enumerate(files)], override_num_blocks=max(1, len(files)))
    common = {"model": embedder.name, "max_tokens": embedder.max_tokens, "work": str(work)}
    ds = ds.flat_map(_parse_chunk, fn_kwargs={"config": {**common, "overlap": settings.embedding.chunk_overlap}},
                     num_cpus=1)
    ds = ds.map_batches(_Embed, fn_constructor_kwargs={"config": {
        **common, "backend": settings.embedding.backend, "cache_dir": str(settings.paths.cache_dir),
        "batch_size": settings.embedding.batch_size}},
        # An autoscaling pool: a fixed pool as large as the cluster would hold every CPU and starve the parse tasks.
        batch_size=cfg.ray_batch_size, num_cpus=1, compute=ActorPoolStrategy(min_size=1, max_size=actors))
    # Ray Data's actor pools restart a killed actor and retry its batch by default (max_restarts and
    # max_task_retries -1): a lost worker loses nothing, and a retried batch only rewrites its own shard.
    shards = []
    for row in ds.iter_rows():
        if row["shard"]:
            shards.append(work / row["shard"])
        if progress:
            progress("parse", int(row["records"]))
            progress("embed", int(row["chunks"]))
    vectors: dict[str, np.ndarray] = {}
    for shard in shards:
        with np.load(shard) as data:
            vectors.update(zip(data["texts"].tolist(), data["vectors"], strict=True))
    chunks: dict[str, list[tuple[str, int, int]]] = {}
    by_file = {id(s): ShardSource(work / RECORDS.format(i), s.name, chunks) for i, s in enumerate(files)}
    return [by_file.get(id(s), s) for s in sources], PrecomputedEmbedder(embedder, vectors), chunks
