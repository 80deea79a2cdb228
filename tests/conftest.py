"""Shared fixtures: real records from tests/fixtures, built into small real indexes."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from ingest.build import FileSource, RecordsSource, ingest
from ingest.embedder import load_embedder
from ingest.jsonl import record_from_json
from pubmed_rag.settings import Settings

ROOT = Path(__file__).parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
XML = FIXTURES / "pubmed_xml"
SAMPLE = ROOT / "data" / "sample"  # the demo's data (data/sample/SOURCES.md)
# The tests' abstracts: the first 120 PubMedQA abstracts (with year and MeSH) and the first 60 BC5CDR abstracts of
# the shared corpus, in that order (written by data/make_sample.py).
SAMPLE_ABSTRACTS = FIXTURES / "sample_abstracts.jsonl.gz"
# The SYGMA 1 trial (PMID 29768149, in tests/fixtures/pubmed_xml) asked about in many tests.
FLAGSHIP = "Does as-needed budesonide-formoterol reduce severe exacerbations in mild asthma?"


def sample_records(n: int, source: str | None = None) -> list:
    """The first ``n`` real abstracts of the tests' abstracts file (optionally of one source)."""
    out = []
    with gzip.open(SAMPLE_ABSTRACTS, "rt", encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if source and json.loads(line)["source"] != source:
                continue
            out.append(record_from_json(line, f"sample:{i}", "sample"))
            if len(out) == n:
                break
    return out


def pubmedqa_questions() -> list[dict]:
    """40 questions of PubMedQA's test split whose abstracts are among the tests' abstracts."""
    return json.loads((FIXTURES / "pubmedqa_questions.json").read_text())


@pytest.fixture(scope="session")
def embedder():
    return load_embedder("all-MiniLM-L6-v2", 256)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load({"paths.index_dir": str(tmp_path / "indexes"), "paths.cache_dir": str(tmp_path / "cache")})


@pytest.fixture(scope="session")
def small_index_dir(tmp_path_factory, embedder) -> Path:
    """Index 'small': 120 PubMedQA abstracts + 60 BC5CDR abstracts + the 2026 baseline subset + an NEJM trial."""
    root = tmp_path_factory.mktemp("indexes")
    s = Settings.load({"paths.index_dir": str(root)})
    records = sample_records(120, "pubmedqa") + sample_records(60, "bc5cdr")
    ingest([RecordsSource("sample", records), FileSource(XML / "pubmed26n1334.xml.gz"),
            FileSource(XML / "pubmed-29768149.xml")], "small", s, embedder=embedder)
    return root


@pytest.fixture
def small_settings(small_index_dir: Path, tmp_path: Path) -> Settings:
    """Settings pointing at a private copy of the 'small' index."""
    dest = tmp_path / "indexes"
    shutil.copytree(small_index_dir, dest)
    return Settings.load({"paths.index_dir": str(dest), "paths.default_index": "small",
                          "paths.cache_dir": str(tmp_path / "cache")})


@pytest.fixture(scope="session")
def generator_cache(tmp_path_factory) -> Path:
    """One GGUF -> safetensors conversion per test session."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def asker(small_index_dir, embedder, generator_cache):
    from rag.pipeline import Asker

    # The answer-pipeline tests pin the similarity scorer: the trained verifier has tests of its own (test_verify).
    s = Settings.load({"paths.index_dir": str(small_index_dir), "paths.cache_dir": str(generator_cache),
                       "verify.scorer": "cosine"})
    return Asker(s, index="small", embedder=embedder)


class FakeGenerator:
    """A test double that streams a given text, to test citation handling independently of the model."""

    name = "fake"

    def __init__(self, text: str) -> None:
        self.text = text

    def stream(self, system: str, user: str, max_new_tokens: int, stop=(), citations=()):
        self.last_prompt = (system, user)
        for word in self.text.split(" "):
            yield word + " "
