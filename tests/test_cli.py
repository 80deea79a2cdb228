"""The pubmed-rag command line, run as a user runs it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings

import pytest

from ingest.build import FileSource, ingest
from ingest.index import IndexLayout
from tests.conftest import ROOT, XML, pubmedqa_questions
from ui.cli import main


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ui.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=600)


def test_ask_json_and_unknown_index(small_index_dir, generator_cache):
    q = pubmedqa_questions()[0]
    common = ["--paths.index_dir", str(small_index_dir), "--paths.cache_dir", str(generator_cache)]
    done = run("ask", q["question"], "--index", "small", "--json", "--k", "3", "--max-new-tokens", "32", *common)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert q["pmid"] in [e["pmid"] for e in data["evidence"]] and len(data["evidence"]) == 3
    assert {c["pmid"] for s in data["bottom_line"] for c in s["citations"]} <= {e["pmid"] for e in data["evidence"]}
    assert data["findings"][0]["pmid"] == q["pmid"] and data["findings"][0]["sentences"]
    assert data["model"] == "smollm2-135m-instruct+trained" and not data["warnings"]  # pubmed_rag/models/generator, loaded lazily

    text = run("ask", q["question"], "--index", "small", "--k", "2", "--max-new-tokens", "24", *common)
    # Findings first: printed as soon as they exist, the checked bottom line after them.
    assert text.returncode == 0 and text.stdout.index("Key findings") < text.stdout.index("Bottom line") < \
        text.stdout.index("References")
    assert text.stdout.count("Key findings") == 1
    assert f"PMID {q['pmid']}" in text.stdout and "https://pubmed.ncbi.nlm.nih.gov/" in text.stdout

    missing = run("ask", q["question"], "--index", "small", "--k", "2", "--max-new-tokens", "8",
                  "--generator.adapter", "/nonexistent/generator", *common)
    assert missing.returncode == 0 and "warning: the trained generator could not be loaded" in missing.stderr
    assert "/nonexistent/generator/adapter.safetensors" in missing.stderr

    bad = run("ask", "anything", "--index", "nope", *common)
    assert bad.returncode == 1 and "unknown index 'nope'" in bad.stderr
    empty = run("ask", "  ", "--index", "small", *common)
    assert empty.returncode == 1 and "the question is empty" in empty.stderr


def test_ingest_and_index_commands(tmp_path):
    idx = ["--paths.index_dir", str(tmp_path)]
    # A missing input fails the build before any model loads: nothing is created.
    missing = run("ingest", "--index", "cli", str(XML / "pubmed2.xml"), str(tmp_path / "missing.xml"), *idx)
    assert missing.returncode == 1 and f"error: {tmp_path / 'missing.xml'}: no such file" in missing.stderr
    assert "index 'cli' was not created" in missing.stderr and not (tmp_path / "cli" / "CURRENT").exists()
    done = run("ingest", "--index", "cli", str(XML / "pubmed2.xml"), *idx)
    assert done.returncode == 0, done.stderr
    assert "index 'cli' v0001: 2 added" in done.stdout
    listed = run("index", "list", *idx)
    assert listed.stdout.startswith("cli\t2 records")
    info = json.loads(run("index", "info", "cli", *idx).stdout)
    assert info["counts"]["records"] == 2 and info["embedding"]["model"] == "all-MiniLM-L6-v2"
    verified = run("index", "verify", "cli", *idx)
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"] is True
    unknown = run("index", "info", "nope", *idx)
    assert unknown.returncode == 1 and "unknown index 'nope'" in unknown.stderr
    split = run("index", "reshard", "cli", "--shards", "2", *idx)
    assert split.returncode == 0 and "index 'cli' v0002: record store in 1 shard(s) -> 2, 2 records" in split.stdout
    info = json.loads(run("index", "info", "cli", *idx).stdout)
    assert info["store"]["shards"] == ["store-00001.sqlite", "store-00002.sqlite"] and info["counts"]["records"] == 2
    assert json.loads(run("index", "verify", "cli", *idx).stdout)["ok"] is True
    bad = run("index", "reshard", "cli", "--shards", "0", *idx)
    assert bad.returncode == 1 and "error: shards must be at least 1, not 0" in bad.stderr


def test_settings_from_env_and_flags_and_unknown_keys_rejected():
    from pubmed_rag.settings import Settings

    env = {"PUBMED_RAG_EMBEDDING__BATCH_SIZE": "7", "NCBI_EMAIL": "a@b.org"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        s = Settings.load({"retrieval.k": "9"})
        assert (s.embedding.batch_size, s.ncbi.email, s.retrieval.k) == (7, "a@b.org", 9)
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Settings.load({"retrieval.nonsense": 1})
    bad = run("index", "list", "--retrieval.k", "0")
    assert bad.returncode != 0 and "retrieval.k" in bad.stderr


def test_eval_qa_on_real_pubmedqa_items(small_index_dir, generator_cache, tmp_path):
    from tests.conftest import FIXTURES

    common = ["--paths.index_dir", str(small_index_dir), "--paths.cache_dir", str(generator_cache)]
    out = tmp_path / "qa.json"
    done = run("eval", "qa", "--dataset", "pubmedqa", "--pubmedqa", str(FIXTURES / "pubmedqa_pqal_30.json"),
               "--index", "small", "--n", "3", "--qa-settings", "no-retrieval", "--out", str(out), *common)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())["results"]["no-retrieval"]
    items = list(json.loads((FIXTURES / "pubmedqa_pqal_30.json").read_text()))
    assert [r["id"] for r in result["per_question"]] == [items[0], items[10], items[20]]  # evenly spaced
    assert result["n"] == 3 and sum(result["argmax"]["predicted"].values()) == 3
    assert "per_question" not in json.loads(done.stdout)["no-retrieval"]  # printed summary only


# One flag each subcommand's help must list, besides the settings flags every subcommand has.
HELP_FLAGS = {"ingest": "--allow-partial", "index": "{list,info,verify,compact,reshard}", "ask": "--max-new-tokens",
              "check": "--claim", "case": "--markdown", "eval": "--trec-cds"}


@pytest.mark.parametrize("command", sorted(HELP_FLAGS))
def test_help_of_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: pubmed-rag {command} ")
    assert HELP_FLAGS[command] in out and "--paths.index_dir VALUE" in out and "-v, --verbose" in out
    # Descriptions with a literal '%' (the reason --help used to crash) come through as written.
    flat = " ".join(out.split())
    assert "abstains on 1.5% of PubMedQA questions" in flat and "(5% of mismatches pass)" in flat


def test_top_level_help_and_verbose_before_or_after_the_command(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0 and "{ingest,index,ask,check,case,eval,train}" in capsys.readouterr().out
    from ui.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["-v", "index", "list"]).verbose is True
    assert parser.parse_args(["index", "list", "-v"]).verbose is True
    assert parser.parse_args(["index", "list"]).verbose is False


@pytest.fixture
def restore_logging():
    """Let a test call pubmed_rag.logs.configure without leaking its process-wide changes."""
    import transformers

    env = {var: os.environ.pop(var, None) for var in ("TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS",
                                                       "TQDM_DISABLE")}
    verbosity = transformers.logging.get_verbosity()
    bars = transformers.logging.is_progress_bar_enabled()
    levels = {name: logging.getLogger(name).level for name in ("sentence_transformers", "huggingface_hub")}
    root = logging.getLogger().level
    with warnings.catch_warnings():
        yield transformers
    transformers.logging.set_verbosity(verbosity)
    transformers.logging.enable_progress_bar() if bars else transformers.logging.disable_progress_bar()
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logging.getLogger().setLevel(root)
    for var, value in env.items():
        os.environ.pop(var, None) if value is None else os.environ.__setitem__(var, value)


def test_library_chatter_is_off_by_default_and_on_with_verbose(restore_logging):
    from huggingface_hub.utils import are_progress_bars_disabled

    from pubmed_rag.logs import configure

    transformers = restore_logging
    configure(verbose=False)
    assert transformers.logging.get_verbosity() == logging.ERROR
    assert not transformers.logging.is_progress_bar_enabled() and are_progress_bars_disabled()
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "error" and os.environ["TQDM_DISABLE"] == "1"
    assert logging.getLogger("sentence_transformers").getEffectiveLevel() == logging.ERROR
    # The tokenizer's "sequence length is longer than the specified maximum" warning is a transformers warning.
    assert not transformers.logging.get_logger("transformers.tokenization_utils_base").isEnabledFor(logging.WARNING)
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn_explicit("library chatter", UserWarning, "x.py", 1, module="transformers.modeling_utils")
        warnings.warn_explicit("ours", UserWarning, "y.py", 1, module="ingest.build")
    assert [str(w.message) for w in caught] == ["ours"]

    configure(verbose=True)
    assert transformers.logging.get_verbosity() == logging.WARNING
    assert transformers.logging.is_progress_bar_enabled()
    assert "TQDM_DISABLE" not in os.environ and "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ
    assert logging.getLogger("sentence_transformers").getEffectiveLevel() == logging.INFO
    assert transformers.logging.get_logger("transformers.tokenization_utils_base").isEnabledFor(logging.WARNING)


def test_our_progress_bars_show_where_library_bars_are_hidden():
    # TQDM_DISABLE is what configure() sets: a library's plain tqdm bar is hidden, our ingest bars are not.
    code = ("from tqdm import tqdm\nfrom ui.cli.main import TqdmProgress\n"
            "for _ in tqdm(range(3), desc='library-bar'): pass\n"
            "p = TqdmProgress(); p('parse', 31, 31); p.close()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "TQDM_DISABLE": "1"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "library-bar" not in done.stderr and "parse: 100%" in done.stderr and "31/31" in done.stderr


def test_index_list_prints_nothing_on_stderr(settings, embedder):
    ingest([FileSource(XML / "pubmed2.xml")], "quiet", settings, embedder=embedder)
    done = run("index", "list", "--paths.index_dir", str(settings.paths.index_dir))
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("quiet\t2 records\t")


def test_truncated_baseline_file_publishes_nothing(settings, embedder, tmp_path):
    idx = ["--paths.index_dir", str(settings.paths.index_dir)]
    ingest([FileSource(XML / "pubmed2.xml")], "daily", settings, embedder=embedder)
    layout = IndexLayout(settings.paths.index_dir, "daily")
    manifest = (layout.current() / "manifest.json").read_text()
    listed = run("index", "list", *idx).stdout
    assert listed.startswith("daily\t2 records\t")
    cut = tmp_path / "pubmed26n1334.xml.gz"  # a partial download of the real 2026 baseline subset
    data = (XML / "pubmed26n1334.xml.gz").read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 5])

    failed = run("ingest", "--index", "daily", str(cut), *idx)
    assert failed.returncode == 1
    assert f"error: {cut}: the gzip stream is truncated or corrupt" in failed.stderr
    assert "after 8 complete records" in failed.stderr
    assert "Nothing was published: index 'daily' still serves v0001" in failed.stderr and "--allow-partial" in failed.stderr
    assert failed.stdout == ""
    assert (layout.root / "CURRENT").read_text() == "v0001"
    assert sorted(p.name for p in layout.versions.iterdir()) == ["v0001"]  # no staging folder left behind
    assert (layout.current() / "manifest.json").read_text() == manifest
    assert run("index", "list", *idx).stdout == listed

    partial = run("ingest", "--index", "daily", str(cut), "--allow-partial", *idx)
    assert partial.returncode == 0, partial.stderr
    assert "index 'daily' v0002: 8 added" in partial.stdout
    assert f"warning: {cut}: the gzip stream is truncated" in partial.stderr and "were kept" in partial.stderr
    assert run("index", "list", *idx).stdout.startswith("daily\t10 records\t")


def test_ingest_query_fetches_indexes_and_removes_the_staging_folder(tmp_path):
    from tests.eutils_server import EUtilsServer

    with EUtilsServer() as server:
        done = run("ingest", "--index", "q", "--query", "obesity AND 2026[dp]", "--max", "15",
                   "--ncbi.base_url", server.url, "--ncbi.batch_size", "10", "--paths.index_dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "fetched 2 batches for 30 matching records (3 requests, 0 retries)" in done.stderr
    assert "index 'q' v0001: 15 added" in done.stdout
    assert (tmp_path / "q" / "CURRENT").exists() and not (tmp_path / "q" / "fetch").exists()


def test_case_from_stdin_as_json_and_markdown(small_index_dir, generator_cache):
    common = ["--paths.index_dir", str(small_index_dir), "--paths.cache_dir", str(generator_cache), "--index", "small"]
    case = ("Name: Marjorie Pennington. A 64-year-old obese female with diagnosis of diabetes mellitus and persistently "
            "elevated HbA1c. She takes metformin and lisinopril. She denies fever or chills.")
    done = subprocess.run([sys.executable, "-m", "ui.cli", "case", "-", "--json", *common], input=case,
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert "Pennington" not in done.stdout + done.stderr and report["text"].startswith("Name: [NAME].")
    assert report["redactions"] == [{"kind": "name", "text": "[NAME]"}]
    problems = {p["name"]: p["category"] for p in report["problems"]}
    assert problems["Diabetes mellitus"] == "known condition" and problems["Obesity"] == "known condition"
    assert problems["metformin"] == "medication" and problems["lisinopril"] == "medication"
    assert {m["concept"] for m in report["negated"]} == {"Fever", "Chills"}




def test_case_markdown_from_a_file_and_errors(small_index_dir, generator_cache, tmp_path, capsys):
    common = ["--paths.index_dir", str(small_index_dir), "--paths.cache_dir", str(generator_cache), "--index", "small"]
    case = tmp_path / "case.txt"
    case.write_text("Patient Marjorie Pennington, a 45-year-old man with fever and cough. <script>alert(1)</script>")
    assert main(["case", str(case), "--markdown", *common]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("# Case analysis") and "## Problem list" in out.out and "- Fever — “fever”" in out.out
    assert "Pennington" not in out.out + out.err and "<script>" not in out.out and "&lt;script&gt;" in out.out
    # A fallback (here reranking off: its weights are missing) is said on the terminal and in the report.
    (tmp_path / "empty-reranker").mkdir()
    assert main(["case", str(case), "--markdown", *common, "--retrieval.reranker", str(tmp_path / "empty-reranker")]) == 0
    out = capsys.readouterr()
    assert "warning: reranking is off, the ranking is unchanged: reranker weights not found" in out.err
    assert "**Warning:** reranking is off" in out.out
    case.write_text("   ")
    assert main(["case", str(case), *common]) == 1
    assert "error: the case is empty" in capsys.readouterr().err
    assert main(["case", str(tmp_path / "missing.txt"), *common]) == 1
    assert capsys.readouterr().err.startswith("error: cannot read the case from")


def test_eval_cases_trec_and_medqa(small_index_dir, generator_cache, tmp_path):
    out = tmp_path / "cases.json"
    done = run("eval", "cases", "--trec-cds", str(ROOT / "data/cases/2014_description.csv"),
               str(ROOT / "data/cases/2014_summary.csv"), "--medqa", str(XML.parent / "cases/medqa_sample.jsonl"),
               "--index", "small", "--paths.index_dir", str(small_index_dir), "--paths.cache_dir",
               str(generator_cache), "--out", str(out))
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())["results"]
    trec = results["trec_cds"]
    assert trec["cases"] == 30 and trec["negation_leaks"] == 0 and trec["recall"] >= 0.80
    assert f"concept recall {trec['recall']:.3f}" in done.stdout
    medqa = results["medqa"]
    assert medqa["diagnosis"]["questions"] == 6 and medqa["pharmacotherapy"]["questions"] == 6
    assert medqa["diagnosis"]["chance"] == 0.25
    assert "| diagnosis | 6 |" in done.stdout and 0 <= medqa["diagnosis"]["similarity"] <= 1
    bad = run("eval", "cases", "--trec-cds", str(ROOT / "data/cases/2014_description.csv"), str(out))
    assert bad.returncode == 1 and "must hold the same topics" in bad.stderr


def test_shared_data_defaults_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    from ui.cli import build_parser

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["eval", "verify"])
    assert args.data.is_absolute() and args.data == ROOT.parent / "shared" / "data"
    assert build_parser().parse_args(["train", "verifier"]).data == args.data
    assert build_parser().parse_args(["eval", "qa"]).pubmedqa == args.data / "pubmedqa" / "test_set.json"
