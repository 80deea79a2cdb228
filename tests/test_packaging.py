"""The package as a user installs it: a wheel built from the checkout, installed (not editable) into a fresh venv,
answers and checks with the models it carries, without network access."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from pubmed_rag.checksums import sha256_file
from pubmed_rag.paths import MODELS, ROOT
from tests.conftest import FLAGSHIP

CLAIM = "As-needed budesonide-formoterol was noninferior to budesonide maintenance"


def _checkout_files() -> list[str]:
    """The files a clean clone of this working tree would have: tracked and new, not ignored."""
    done = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return [name for name in done.stdout.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the checkout (the checkout itself gets no build folders)."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in _checkout_files():
        target = src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(ROOT / name, target) if os.stat(ROOT).st_dev == os.stat(src).st_dev else \
            target.write_bytes((ROOT / name).read_bytes())
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                           "--no-index", "-q", "-w", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("pubmed_rag-*.whl")
    return built


def test_the_wheel_holds_every_shipped_model_file(wheel):
    shipped = {f"pubmed_rag/models/{p.relative_to(MODELS).as_posix()}": sha256_file(p)
               for p in MODELS.rglob("*") if p.is_file()}
    assert {"pubmed_rag/models/verifier/trained.safetensors", "pubmed_rag/models/reranker/trained.safetensors",
            "pubmed_rag/models/generator/adapter.safetensors"} <= set(shipped)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert set(shipped) <= names
        for name, digest in shipped.items():
            import hashlib

            assert hashlib.sha256(archive.read(name)).hexdigest() == digest, name
    assert "ingest/onnx_check_texts.json" in names and "ui/cli/main.py" in names


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed. Its dependencies are read from this test run's environment through a
    path entry (a plain path: that environment's editable install of the checkout is not activated), so nothing is
    downloaded."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                           "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return root


def offline_env(cache: Path) -> dict[str, str]:
    """No hub variables that would make libraries offline for us; any HTTP(S) request goes to a closed port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "PUBMED_RAG_"))}
    dead = "http://127.0.0.1:9"
    return {**env, "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "http_proxy": dead, "https_proxy": dead,
            "NO_PROXY": "", "no_proxy": "", "PUBMED_RAG_PATHS__CACHE_DIR": str(cache)}


def test_installed_wheel_answers_and_checks_offline(venv, small_index_dir, generator_cache, tmp_path):
    python, cli = venv / "bin" / "python", venv / "bin" / "pubmed-rag"
    env = offline_env(generator_cache)
    where = subprocess.run([str(python), "-c", "import rag, pubmed_rag.paths as p; print(rag.__file__); "
                            "print(p.MODELS)"], capture_output=True, text=True, cwd=tmp_path, env=env, check=True)
    module, models = where.stdout.split()
    assert module.startswith(str(venv)) and models.startswith(str(venv))  # the installed copy, not the checkout
    assert (Path(models) / "verifier" / "trained.safetensors").is_file()

    common = ["--index", "small", "--paths.index_dir", str(small_index_dir), "--json"]
    check = subprocess.run([str(cli), "check", "--claim", CLAIM, "--pmid", "29768149", *common],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert check.returncode == 0, check.stderr
    result = json.loads(check.stdout)[0]["results"][0]
    # The shipped verifier and rules, as in the checkout (tests/rag/test_check.py).
    assert result["verdict"] == "contradicted" and result["rule"] == "direction"

    ask = subprocess.run([str(cli), "ask", FLAGSHIP, "--k", "3", "--max-new-tokens", "24", *common],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert ask.returncode == 0, ask.stderr
    answer = json.loads(ask.stdout)
    assert answer["evidence"][0]["pmid"] == "29768149" and answer["findings"]
    assert answer["model"] == "smollm2-135m-instruct+trained" and answer["warnings"] == []
