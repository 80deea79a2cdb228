"""Ray builds across two machines' worth of networking: a head and a worker node in two network namespaces this
module creates, joined by a veth pair with addresses of their own, the shards on a folder both reach.

The head has no CPUs, so every parse, chunk and embed task runs on the worker node; the driver runs beside the head.
The same checks as the loopback tests (tests/ingest/test_distributed.py): the build equals the single-process one,
and killing an embedding worker on the other node loses and duplicates nothing. Needs root (namespaces); elsewhere
the module is skipped with the reason. Everything it made (processes by id, namespaces, the veth pair) is removed,
even on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ingest.build import FileSource, ingest
from ingest.embedder import load_embedder
from ingest.index import LoadedIndex
from pubmed_rag.settings import Settings
from tests.conftest import ROOT
from tests.ingest.test_distributed import _embed_workers, _jsonl_slice, assert_same_build, ordered_files, stop_tree

RAY = Path(sys.executable).with_name("ray")
IP = shutil.which("ip") or "/usr/sbin/ip"
TAG = f"{os.getpid() % 100000}"
HEAD_NS, WORKER_NS = f"prag-head-{TAG}", f"prag-work-{TAG}"
SUBNET = f"10.231.{os.getpid() % 250}"
HEAD_IP, WORKER_IP = f"{SUBNET}.1", f"{SUBNET}.2"
PORT = 6380
# The processes in the namespaces: multi-node Ray (not the loopback-only setting the other Ray tests export), nothing
# sent anywhere.
ENV = {**{k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"},
       "RAY_USAGE_STATS_ENABLED": "0", "RAY_DATA_USAGE_DISABLED": "1"}


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([IP, *args], capture_output=True, text=True, check=check, timeout=60)


def _why_not() -> str:
    """Why two namespaces cannot be made here ("" when they can)."""
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if not Path(IP).exists():
        return "the ip command (iproute2) is not installed"
    if not RAY.exists():
        return "Ray is not installed (pip install 'pubmed-rag[ray]')"
    probe = f"prag-probe-{TAG}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace here: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    pair = _ip("link", "add", f"pq{TAG}", "type", "veth", "peer", "name", f"pr{TAG}", check=False)
    if pair.returncode != 0:
        return f"cannot create a veth pair here: {pair.stderr.strip()}"
    _ip("link", "del", f"pq{TAG}", check=False)
    return ""


def _in(namespace: str, *cmd: str) -> list[str]:
    return [IP, "netns", "exec", namespace, *cmd]


def _remove_network() -> None:
    for namespace in (HEAD_NS, WORKER_NS):  # deleting a namespace deletes its end of the veth pair, and so the pair
        _ip("netns", "del", namespace, check=False)
    _ip("link", "del", f"ph{TAG}", check=False)  # still here if setup failed before moving it into a namespace


def _wait(what: str, ready, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not ready():
        assert time.time() < deadline, f"{what} did not happen in {timeout:.0f} s"
        time.sleep(0.5)


def _nodes_alive() -> int:
    probe = _in(HEAD_NS, sys.executable, "-c",
                f"import ray; ray.init(address='{HEAD_IP}:{PORT}', logging_level='ERROR'); "
                "print(sum(n['Alive'] for n in ray.nodes()))")
    done = subprocess.run(probe, capture_output=True, text=True, env=ENV, timeout=120)
    return int(done.stdout.strip() or 0) if done.returncode == 0 else 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``(address, worker node's ray process)``: a Ray head in one namespace, a worker node in the other."""
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    started: list[subprocess.Popen] = []
    try:
        for namespace in (HEAD_NS, WORKER_NS):
            _ip("netns", "add", namespace)
        _ip("link", "add", f"ph{TAG}", "type", "veth", "peer", "name", f"pw{TAG}")
        for namespace, device, address in ((HEAD_NS, f"ph{TAG}", HEAD_IP), (WORKER_NS, f"pw{TAG}", WORKER_IP)):
            _ip("link", "set", device, "netns", namespace)
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", device)
            _ip("-n", namespace, "link", "set", device, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
        common = ["--block", "--disable-usage-stats", "--object-store-memory", str(300 * 2**20)]
        head = subprocess.Popen(_in(HEAD_NS, str(RAY), "start", "--head", "--node-ip-address", HEAD_IP, "--port",
                                    str(PORT), "--num-cpus", "0", "--include-dashboard", "false", "--temp-dir",
                                    str(tmp_path_factory.mktemp("ray-head")), *common),
                                env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        started.append(head)
        _wait("the Ray head", lambda: head.poll() is None and _nodes_alive() == 1)
        worker = subprocess.Popen(_in(WORKER_NS, str(RAY), "start", "--address", f"{HEAD_IP}:{PORT}",
                                      "--node-ip-address", WORKER_IP, "--num-cpus", "2", *common),
                                  env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        started.append(worker)
        _wait("the worker node joining", lambda: worker.poll() is None and _nodes_alive() == 2)
        yield f"{HEAD_IP}:{PORT}", psutil.Process(worker.pid)
    finally:
        for proc in reversed(started):
            stop_tree(proc)
        _remove_network()
    listed = _ip("netns", "list").stdout
    assert HEAD_NS not in listed and WORKER_NS not in listed


def _driver(address: str, index_dir: Path, name: str, files: list[Path], *extra: str) -> list[str]:
    """``pubmed-rag ingest --ray`` run beside the head, in its namespace."""
    return _in(HEAD_NS, sys.executable, "-m", "ui.cli", "ingest", "--index", name, *map(str, files), "--ray", address,
               "--paths.index_dir", str(index_dir), "--embedding.backend", "torch", *extra)


def _settings(root: Path) -> Settings:
    return Settings.load({"paths.index_dir": str(root / "indexes"), "paths.cache_dir": str(root / "cache"),
                          "embedding.backend": "torch"})


def test_a_build_on_another_node_equals_the_single_process_build(cluster, tmp_path):
    address, _ = cluster
    files = ordered_files(tmp_path)
    single = _settings(tmp_path / "single")
    ingest([FileSource(f) for f in files], "eq", single, embedder=load_embedder("all-MiniLM-L6-v2", 256, "torch"))
    on_ray = _settings(tmp_path / "ray")
    done = subprocess.run(_driver(address, on_ray.paths.index_dir, "eq", files, "--ingest.ray_batch_size", "32"),
                          capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_same_build(single, on_ray, "eq")  # deletions included: the manifests' counts are compared


def test_killing_an_embedding_worker_on_the_other_node_loses_and_duplicates_nothing(cluster, tmp_path):
    address, worker_node = cluster
    source = _jsonl_slice(tmp_path, 60)
    settings = _settings(tmp_path)
    build = subprocess.Popen(_driver(address, settings.paths.index_dir, "f", [source], "--ingest.ray_batch_size",
                                     "8", "--ingest.ray_actors", "1"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, env=ENV)
    killed = None
    deadline = time.time() + 300
    while build.poll() is None and time.time() < deadline and killed is None:
        shards = list((settings.paths.index_dir / "f" / "versions").glob(".tmp-*/.ray-*/vectors-*.npz"))
        workers = _embed_workers(worker_node)  # processes of the worker node only
        if shards and workers:
            killed = workers[0].pid
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.1)
    output = build.communicate(timeout=600)[0].decode()
    assert build.returncode == 0, output
    assert killed is not None, "the build finished before a worker could be killed"
    pmids = sorted({json.loads(line)["pmid"] for line in source.read_text(encoding="utf-8").splitlines()})
    index = LoadedIndex(settings.paths.index_dir, "f")
    assert index.manifest["counts"]["records"] == len(pmids) == 60 and index.store.all_pmids() == pmids
    assert len(index.store.all_chunk_ids()) == index.manifest["counts"]["chunks"] == len(index.vectors)
