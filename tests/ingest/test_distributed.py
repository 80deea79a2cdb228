"""Ray builds against a real loopback-only Ray cluster on this machine: equivalence, faults, bad input.

The cluster is started by the fixture (``ray start --head --block`` on 127.0.0.1 with 2 CPUs and a temp folder of its
own; with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` the head binds loopback only) and stopped afterwards, even on
failure, by the ids of the processes it started: another Ray cluster on the machine is never touched.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from ingest.build import FileSource, ingest
from ingest.embedder import load_embedder
from ingest.index import IndexLayout, LoadedIndex, verify_index
from pubmed_rag.records import IngestError
from pubmed_rag.settings import Settings
from tests.conftest import ROOT, SAMPLE_ABSTRACTS, XML
from tests.ingest.test_build import truncated_baseline

# Ray reads this when it is imported: set before anything imports it, so this process's driver binds loopback too.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
RAY = Path(sys.executable).with_name("ray")
LOOPBACK = dict(os.environ)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_tree(head: subprocess.Popen) -> None:
    """Stop the head process and every process it started (GCS, raylet, workers), by id: nothing else on the machine
    (another run's Ray cluster) is touched."""
    try:
        root = psutil.Process(head.pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=30)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    head.wait(timeout=30)


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """``(address, head process)`` of a loopback Ray cluster this module starts (``ray start --block`` keeps every
    process it starts under it) and stops by process id, with a temp folder of its own."""
    import ray

    port = _free_port()
    start = [str(RAY), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
             "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
             "--object-store-memory", str(300 * 2**20), "--temp-dir", str(tmp_path_factory.mktemp("ray"))]
    head = subprocess.Popen(start, env=LOOPBACK, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:  # the head is up when its GCS port accepts connections
            assert head.poll() is None, f"ray start exited with {head.returncode}"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.time() < deadline, "the Ray head did not start in 120 s"
            time.sleep(0.5)
        ray.init(address=address, log_to_driver=False, logging_level="WARNING")
        assert [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]] == ["127.0.0.1"]
        yield address, psutil.Process(head.pid)
    finally:
        ray.shutdown()
        stop_tree(head)


@pytest.fixture(scope="module")
def ray_address(ray_head) -> str:
    return ray_head[0]


def _settings(tmp_path: Path, ray: str = "", **extra) -> Settings:
    return Settings.load({"paths.index_dir": str(tmp_path / "indexes"), "paths.cache_dir": str(tmp_path / "cache"),
                          "embedding.backend": "torch", "ingest.ray": ray, **extra})


def _jsonl_slice(tmp_path: Path, n: int) -> Path:
    with gzip.open(SAMPLE_ABSTRACTS, "rt", encoding="utf-8") as src:
        lines = [next(src) for _ in range(n)]
    out = tmp_path / f"slice{n}.jsonl"
    out.write_text("".join(lines), encoding="utf-8")
    return out


def _contents(settings: Settings, name: str) -> tuple[dict, dict[tuple, str], dict[tuple, np.ndarray]]:
    """An index's records, counts, deletions, and its chunks and vectors keyed by (PMID, start offset): chunk ids
    differ between a sharded and a one-store build (shard k numbers its chunks from k << 40)."""
    index = LoadedIndex(settings.paths.index_dir, name)
    records = {r.pmid: r.content_hash() for r in index.store.iter_records()}
    deleted = sorted(p for shard in index.store.shards
                     for (p,) in shard.conn.execute("SELECT pmid FROM live_deleted"))
    chunk_ids = index.store.all_chunk_ids()
    found = index.store.chunks(chunk_ids)
    chunks = {(c.pmid, c.start): c.text for c in found.values()}
    vectors = dict(zip(((found[i].pmid, found[i].start) for i in chunk_ids), index.vectors.vectors(chunk_ids),
                       strict=True))
    return {"records": records, "deleted": deleted, "manifest": index.manifest["counts"]}, chunks, vectors


def ordered_files(tmp_path: Path) -> list[Path]:
    """Files whose order matters: the 2026 baseline subset, its daily update, a JSONL slice, an efetch file, a
    DeleteCitation for its record, then that file again (the record comes back: only file order gives this)."""
    delete = tmp_path / "delete.xml"
    delete.write_text('<PubmedArticleSet><DeleteCitation><PMID Version="1">27797938</PMID></DeleteCitation>'
                      "</PubmedArticleSet>", encoding="utf-8")
    return [XML / "pubmed26n1334.xml.gz", XML / "pubmed26n1335.xml.gz", _jsonl_slice(tmp_path, 20),
            XML / "pubmed4.xml", delete, XML / "pubmed4.xml"]


def revision_file(tmp_path: Path, corrected: int = 3, deleted: int = 4) -> tuple[Path, str, str]:
    """An update file as PubMed writes one: the real baseline subset's record ``corrected`` as Version 2 with its
    title corrected, and a DeleteCitation of record ``deleted``; returns the file and the two PMIDs."""
    text = gzip.open(XML / "pubmed26n1334.xml.gz", "rt", encoding="utf-8").read()
    articles = re.findall(r"<PubmedArticle>.*?</PubmedArticle>", text, re.S)
    fixed, gone = (re.search(r'<PMID Version="\d+">(\d+)</PMID>', articles[n]).group(1) for n in (corrected, deleted))
    article = articles[corrected].replace(f'<PMID Version="1">{fixed}</PMID>', f'<PMID Version="2">{fixed}</PMID>', 1)
    article = article.replace("</ArticleTitle>", " (corrected)</ArticleTitle>", 1)
    out = tmp_path / "update-revision.xml"
    out.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<PubmedArticleSet>\n{article}\n<DeleteCitation>'
                   f'<PMID Version="1">{gone}</PMID></DeleteCitation>\n</PubmedArticleSet>\n', encoding="utf-8")
    return out, fixed, gone


def assert_same_build(single: Settings, on_ray: Settings, name: str) -> None:
    """The two builds hold the same records, deletions, chunk texts and vectors, and nothing is left over."""
    (a, a_chunks, a_vectors), (b, b_chunks, b_vectors) = _contents(single, name), _contents(on_ray, name)
    assert a == b and len(a["records"]) == a["manifest"]["records"] > 40
    assert a_chunks == b_chunks and len(a_chunks) == a["manifest"]["chunks"]
    assert min(float(a_vectors[i] @ b_vectors[i]) for i in a_chunks) >= 0.9999
    assert verify_index(on_ray.paths.index_dir, name).ok
    # No shard is left behind in the published version or the staging area, and every store shard is listed.
    versions = on_ray.paths.index_dir / name / "versions"
    assert not list(versions.glob(".tmp-*")) and not list(versions.rglob(".ray-*"))
    listed = LoadedIndex(on_ray.paths.index_dir, name).manifest["store"]["shards"]
    assert sorted(p.name for p in (on_ray.paths.index_dir / name).glob("store*.sqlite")) == sorted(listed)


def test_ray_build_equals_the_single_process_build(ray_address, tmp_path):
    files = ordered_files(tmp_path)
    single = _settings(tmp_path / "single")
    expected = ingest([FileSource(f) for f in files], "eq", single,
                      embedder=load_embedder("all-MiniLM-L6-v2", 256, "torch"))
    on_ray = _settings(tmp_path / "ray", ray_address, **{"ingest.ray_batch_size": 32})
    summary = ingest([FileSource(f) for f in files], "eq", on_ray)
    fields = ("added", "replaced", "deleted", "unchanged", "skipped", "title_only", "chunks_embedded", "version")
    assert [getattr(summary, f) for f in fields] == [getattr(expected, f) for f in fields]
    assert (summary.added, summary.deleted, summary.version) == (82, 1, "v0001")
    assert_same_build(single, on_ray, "eq")

    # An update on top, through the shards the first build wrote: a revised record and a DeleteCitation of records
    # in the baseline file's shard, and new records in a file of their own.
    update, fixed, gone = revision_file(tmp_path)
    more = _jsonl_slice(tmp_path, 30)
    expected = ingest([FileSource(update), FileSource(more)], "eq", single,
                      embedder=load_embedder("all-MiniLM-L6-v2", 256, "torch"))
    summary = ingest([FileSource(update), FileSource(more)], "eq", on_ray)
    assert [getattr(summary, f) for f in fields if f != "chunks_embedded"] == [
        getattr(expected, f) for f in fields if f != "chunks_embedded"]
    # the cluster embeds every record of a file (it does not read the index); the 20 already indexed are dropped
    assert summary.chunks_embedded > expected.chunks_embedded
    assert (summary.added, summary.replaced, summary.deleted, summary.unchanged, summary.version) == (
        10, 1, 1, 20, "v0002")
    assert_same_build(single, on_ray, "eq")
    index = LoadedIndex(on_ray.paths.index_dir, "eq")
    assert index.store.get(gone) is None and index.store.get(fixed).title.endswith("(corrected)")
    assert index.store.get(fixed).version == 2 and len(index.store.shards) == 1 + 6 + 2


def _embed_workers(head: psutil.Process) -> list[psutil.Process]:
    """The embedding actors' worker processes of this module's cluster: descendants of its head, none of another."""
    found = []
    for proc in head.children(recursive=True):
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "_Embed" in cmdline and "ray::" in cmdline:
            found.append(proc)
    return found


def test_killing_an_embedding_worker_loses_and_duplicates_nothing(ray_head, tmp_path):
    ray_address, head = ray_head
    source = _jsonl_slice(tmp_path, 60)
    settings = _settings(tmp_path, ray_address, **{"ingest.ray_batch_size": 8, "ingest.ray_actors": 1})
    result: dict = {}
    build = threading.Thread(target=lambda: result.update(summary=ingest([FileSource(source)], "f", settings)))
    build.start()
    killed = None
    deadline = time.time() + 240
    while build.is_alive() and time.time() < deadline and killed is None:
        shards = list((settings.paths.index_dir / "f" / "versions").glob(".tmp-*/.ray-*/vectors-*.npz"))
        workers = _embed_workers(head)
        if shards and workers:  # the pool is embedding: kill its worker process mid-stage
            killed = workers[0].pid
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.1)
    build.join(timeout=300)
    assert killed is not None, "the build finished before a worker could be killed"
    assert not psutil.pid_exists(killed) or psutil.Process(killed).status() == psutil.STATUS_ZOMBIE
    summary = result["summary"]
    pmids = [json.loads(line)["pmid"] for line in source.read_text(encoding="utf-8").splitlines()]
    index = LoadedIndex(settings.paths.index_dir, "f")
    assert summary.added == len(set(pmids)) == index.manifest["counts"]["records"] == 60
    assert index.store.all_pmids() == sorted(set(pmids))
    # Every record's chunks are there once: the same count a single-process chunking gives, and as many vectors.
    assert len(index.store.all_chunk_ids()) == index.manifest["counts"]["chunks"] == len(index.vectors)


def test_killed_driver_leaves_the_served_version_and_a_rerun_completes(ray_address, tmp_path):
    settings = _settings(tmp_path)
    ingest([FileSource(XML / "pubmed2.xml")], "k", settings, embedder=load_embedder("all-MiniLM-L6-v2", 256, "torch"))
    layout = IndexLayout(settings.paths.index_dir, "k")
    before = (layout.current() / "manifest.json").read_text()
    big = _jsonl_slice(tmp_path, 60)
    cmd = [sys.executable, "-m", "ui.cli", "ingest", "--index", "k", str(big), "--ray", ray_address,
           "--paths.index_dir", str(settings.paths.index_dir), "--embedding.backend", "torch",
           "--ingest.ray_batch_size", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, env=LOOPBACK)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not list(layout.versions.glob(".tmp-*/.ray-*/vectors-*")):
        time.sleep(0.1)
    assert proc.poll() is None, proc.stdout.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (layout.current() / "manifest.json").read_text() == before and verify_index(layout.index_dir, "k").ok
    summary = ingest([FileSource(big)], "k", _settings(tmp_path, ray_address))
    assert summary.version == "v0002" and summary.added == 60
    assert not list(layout.versions.glob(".tmp-*"))
    assert LoadedIndex(layout.index_dir, "k").manifest["counts"]["records"] == 62


def test_bad_input_on_one_file_fails_the_ray_build_and_publishes_nothing(ray_address, tmp_path):
    settings = _settings(tmp_path, ray_address)
    cut = truncated_baseline(tmp_path)
    with pytest.raises(IngestError) as failed:
        ingest([FileSource(XML / "pubmed4.xml"), FileSource(cut)], "bad", settings)
    assert str(failed.value).startswith(f"{cut}: the gzip stream is truncated or corrupt") and "truncated or corrupt" in str(failed.value)
    assert "Nothing was published" in str(failed.value)
    layout = IndexLayout(settings.paths.index_dir, "bad")
    assert layout.current() is None and not list(layout.versions.glob(".tmp-*"))
