"""First run: the sample index builds in the background behind a progress screen; example questions on the Ask page."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ingest.index import list_indexes
from tests.conftest import FLAGSHIP, ROOT, XML
from tests.ui.test_app import texts, ui_env  # noqa: F401 - ui_env: the fixture used below
from ui import first_run
from ui.examples import EXAMPLES


def test_the_app_and_the_makefile_build_the_same_sample_files():
    names = ["abstracts.jsonl.gz", "medline16n0902_clinical.xml.gz", "pubmed-29768149.xml", "pubmed26n1334.xml.gz",
             "pubmed26n1335.xml.gz", "pubmed4.xml"]
    assert [p.name for p in first_run.sample_files()] == names
    dry = subprocess.run(["make", "--no-print-directory", "-n", "-B", "-o", ".venv/.installed", "indexes/sample/CURRENT"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert dry.split() == [".venv/bin/pubmed-rag", "ingest", "--index", "sample"] + [f"data/sample/{n}" for n in names]


def first_run_env(monkeypatch, tmp_path, sample, cache) -> Path:
    """An empty index folder, the default index ("sample") built from ``sample``; returns the index folder."""
    monkeypatch.setattr(first_run, "SAMPLE_DIR", sample)
    monkeypatch.setattr(first_run, "FOLLOW_SECONDS", 0.0)
    index_dir = tmp_path / "indexes"
    monkeypatch.setenv("PUBMED_RAG_PATHS__INDEX_DIR", str(index_dir))
    monkeypatch.delenv("PUBMED_RAG_PATHS__DEFAULT_INDEX", raising=False)
    monkeypatch.setenv("PUBMED_RAG_PATHS__CACHE_DIR", str(cache))
    return index_dir


def wait_for(build: first_run.Build) -> None:
    deadline = time.monotonic() + 300
    while not build.done and time.monotonic() < deadline:
        time.sleep(0.5)


def test_first_screen_shows_the_sample_build_then_the_pages(tmp_path, monkeypatch, generator_cache):
    sample = tmp_path / "sample"
    sample.mkdir()
    for name in ("pubmed-29768149.xml", "pubmed4.xml"):  # two real records: a quick build
        shutil.copy(XML / name, sample)
    index_dir = first_run_env(monkeypatch, tmp_path, sample, generator_cache)
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=120)
    at.run()  # the screen as the build starts (the page would follow it; here it returns at once)
    assert not at.exception
    assert [t.value for t in at.title] == ["pubmed-rag"]
    assert "First run: building the sample index from the 2 files in data/sample" in at.info[0].value
    assert at.progress[0].value < 100 and ("Loading the embedding model" in at.progress[0].text
                                          or "records read" in at.progress[0].text)
    build = first_run.sample_build()
    assert build is not None and build.files == [sample / "pubmed-29768149.xml", sample / "pubmed4.xml"]
    wait_for(build)
    assert build.error is None and build.summary.added == 2
    assert build.read == build.total == 2 and build.embedded == build.summary.chunks_embedded == 7
    assert build.fraction() == 1.0 and build.status().startswith("Done: 2 records, 7 chunks")
    assert list_indexes(index_dir) == ["sample"] and first_run.sample_build() is None
    at.run()  # the next run (the page reruns itself when the build ends) shows the pages
    assert not at.exception
    assert "Ask PubMed evidence" in [t.value for t in at.title]
    assert at.selectbox(key="ask_index").value == "sample"
    assert at.button(key="example_29768149").label == FLAGSHIP


def test_a_sample_file_that_fails_shows_the_error_and_builds_nothing(tmp_path, monkeypatch, generator_cache):
    sample = tmp_path / "sample"
    sample.mkdir()
    (sample / "pubmed26n1334.xml.gz").write_bytes((XML / "pubmed26n1334.xml.gz").read_bytes()[:40_000])  # cut short
    index_dir = first_run_env(monkeypatch, tmp_path, sample, generator_cache)
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=120)
    at.run()
    wait_for(first_run.sample_build())
    at.run()
    assert not at.exception and at.error[0].value == "The sample index could not be built:"
    assert "pubmed26n1334.xml.gz" in at.code[0].value and "truncated" in at.code[0].value
    assert at.button[0].label == "Try again" and list_indexes(index_dir) == []


@pytest.mark.usefixtures("ui_env")
def test_no_build_when_the_default_index_is_another_one(monkeypatch):
    monkeypatch.setattr(first_run, "SAMPLE_DIR", XML)  # data files here, yet the default index is "small"
    assert first_run.sample_build() is None
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception and "Ask PubMed evidence" in [t.value for t in at.title] and not at.progress


@pytest.mark.usefixtures("ui_env")
def test_an_example_question_fills_the_box_and_is_answered():
    at = AppTest.from_file(str(ROOT / "ui" / "pages" / "ask.py"), default_timeout=600)
    at.run()
    # Only the examples whose record is in the chosen index: of the five, the small index holds the NEJM trial.
    assert len(EXAMPLES) == 5 and [b.label for b in at.button if str(b.key).startswith("example_")] == [FLAGSHIP]
    at.button(key="example_29768149").click().run()
    assert not at.exception
    assert at.text_area(key="question").value == FLAGSHIP
    answer = at.session_state["answer"]
    assert answer.question == FLAGSHIP and answer.evidence[0].pmid == "29768149"
    assert "[PMID 29768149](https://pubmed.ncbi.nlm.nih.gov/29768149/)" in texts(at)
