"""AppTest tests of each page on a small real index."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from ingest.build import RecordsSource, ingest
from ingest.pubmed_xml import parse_xml_file
from pubmed_rag.records import Record
from tests.conftest import ROOT, XML

PAGES = ROOT / "ui" / "pages"


@pytest.fixture
def ui_env(small_settings, generator_cache, monkeypatch):
    monkeypatch.setenv("PUBMED_RAG_PATHS__INDEX_DIR", str(small_settings.paths.index_dir))
    monkeypatch.setenv("PUBMED_RAG_PATHS__DEFAULT_INDEX", "small")
    monkeypatch.setenv("PUBMED_RAG_PATHS__CACHE_DIR", str(generator_cache))
    monkeypatch.setenv("PUBMED_RAG_GENERATOR__MAX_NEW_TOKENS", "24")
    return small_settings


def texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [s.value for s in at.subheader] + [c.value for c in at.caption]
                     + [w.value for w in at.warning] + [e.value for e in at.error])


def test_ask_page_answers_with_evidence_and_filters_change_it(ui_env):
    at = AppTest.from_file(str(PAGES / "ask.py"), default_timeout=600)
    at.run()
    assert not at.exception
    assert "not medical advice" in at.info[0].value.lower()
    at.text_area(key="question").input("Does as-needed budesonide-formoterol reduce exacerbations in mild asthma?")
    at.button[0].click().run()
    assert not at.exception
    out = texts(at)
    assert "[PMID 29768149](https://pubmed.ncbi.nlm.nih.gov/29768149/)" in out
    assert "Inhaled Combined Budesonide\\-Formoterol as Needed in Mild Asthma" in out
    assert "Randomized controlled trial" in out and "retrieve" in out and "smollm2-135m-instruct" in out
    unfiltered = {line for line in out.splitlines() if line.startswith("[PMID ")}
    # Filter to 2026 publications: the evidence changes to 2026 records only.
    at.slider(key="years").set_value((2026, 2030))
    at.button[0].click().run()
    filtered = texts(at)
    assert "29768149" not in filtered
    pmid_lines = {line for line in filtered.splitlines() if line.startswith("[PMID ")}
    assert pmid_lines and pmid_lines != unfiltered
    assert all("2026" in m.value for m in at.markdown if m.value.startswith(":blue-badge["))


def test_ask_page_shows_findings_first_and_warns_when_the_trained_generator_is_missing(ui_env, monkeypatch, tmp_path):
    monkeypatch.setenv("PUBMED_RAG_GENERATOR__ADAPTER", str(tmp_path / "no-such-generator"))
    at = AppTest.from_file(str(PAGES / "ask.py"), default_timeout=600)
    at.run()
    at.text_area(key="question").input("Does as-needed budesonide-formoterol reduce exacerbations in mild asthma?")
    at.button[0].click().run()
    assert not at.exception
    warning = next(w.value for w in at.warning if "trained generator could not be loaded" in w.value)
    assert "no-such-generator" in warning and "the base model writes the bottom line" in warning
    headers = [s.value for s in at.subheader]
    assert headers.index("Key findings") < headers.index("Bottom line") < headers.index("Evidence")


def test_title_with_script_tag_is_shown_as_text(small_settings, embedder, monkeypatch, generator_cache):
    rec = next(i for i in parse_xml_file(XML / "pubmed4.xml") if isinstance(i, Record))
    hostile = Record.from_dict({**rec.to_dict(), "pmid": "27797938",
                                "title": "<script>alert('x')</script> Telomere length and pancreatic cancer"})
    ingest([RecordsSource("hostile", [hostile])], "small", small_settings, embedder=embedder)
    monkeypatch.setenv("PUBMED_RAG_PATHS__INDEX_DIR", str(small_settings.paths.index_dir))
    monkeypatch.setenv("PUBMED_RAG_PATHS__CACHE_DIR", str(generator_cache))
    monkeypatch.setenv("PUBMED_RAG_GENERATOR__MAX_NEW_TOKENS", "8")
    at = AppTest.from_file(str(PAGES / "ask.py"), default_timeout=600)
    at.run()
    at.text_area(key="question").input("leucocyte telomere length pancreatic cancer risk TERT")
    at.button[0].click().run()
    titles = [s.value for s in at.subheader if "Telomere length" in s.value]
    assert titles == ["\\[1\\] \\<script\\>alert\\('x'\\)\\</script\\> Telomere length and pancreatic cancer"]


def test_library_page_lists_index_and_verifies(ui_env):
    at = AppTest.from_file(str(PAGES / "library.py"), default_timeout=120)
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    row = table[table["index"] == "small"].iloc[0]
    assert row["records"] == 211 and row["embedding model"] == "all-MiniLM-L6-v2"
    at.button(key="verify").click().run()
    assert "small: checksums and counts match the manifest" in at.success[0].value


def test_citations_page_scores_a_claim(ui_env):
    at = AppTest.from_file(str(PAGES / "citations.py"), default_timeout=120)
    at.run()
    at.text_area(key="cite_text").input(
        "As-needed budesonide-formoterol was noninferior to budesonide maintenance "
        "[PMID:29768149]. Mitochondria form rings around the nucleus in lace plant PCD (PMID 99999999).")
    at.button[0].click().run()
    assert not at.exception
    out = texts(at)
    assert "[PMID 29768149](https://pubmed.ncbi.nlm.nih.gov/29768149/)" in out and ":red-badge[contradicted p=" in out
    assert "'noninferior' in the claim" in out.replace("\\", "")  # the reason, escaped as text
    assert ":yellow-background[" in out and "inferior to budesonide maintenance therapy" in out.replace("\\", "")
    assert "PMID 99999999 is not in this index." in out


def test_library_page_builds_an_index_from_a_pubmed_query(ui_env, monkeypatch):
    from tests.eutils_server import EUtilsServer

    with EUtilsServer() as server:
        monkeypatch.setenv("PUBMED_RAG_NCBI__BASE_URL", server.url)
        monkeypatch.setenv("PUBMED_RAG_NCBI__BATCH_SIZE", "10")
        monkeypatch.setenv("PUBMED_RAG_APP__INDEX_WRITES", "on")  # the operator allows index writes
        at = AppTest.from_file(str(PAGES / "library.py"), default_timeout=300)
        at.run()
        at.text_input(key="target").input("from-query")
        assert "Builds run in this process (set ingest.ray" in texts(at)  # the Ray address comes from settings only
        at.text_input(key="query").input("pediatric neurology 2026")
        at.text_input(key="ncbi_email").input("librarian@example.org")
        at.button[1].click().run()  # the query form's submit button
        assert not at.exception
        assert any("index 'from-query' v0001: 30 added" in s.value for s in at.success), [e.value for e in at.error]
        assert any(e == "efetch.fcgi" and p["email"] == "librarian@example.org" for e, p in server.requests)
        assert "Fetched 3 batches for 30 matching records" in texts(at)
    # Built through ingest.entrez.ingest_query, as the CLI does: the staging fetch folder went with the publish.
    index_root = ui_env.paths.index_dir / "from-query"
    assert (index_root / "CURRENT").exists() and not (index_root / "fetch").exists()
    listed = AppTest.from_file(str(PAGES / "library.py"), default_timeout=120)
    listed.run()
    assert "from-query" in set(listed.dataframe[0].value["index"])


def test_two_sessions_asking_at_once_get_their_own_answers(ui_env, monkeypatch):
    import threading

    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import local_script_runner

    # A Streamlit server compiles a page once, in one ScriptCache shared by every session; AppTest gives each run its
    # own, and Python 3.11's compiler is not thread-safe (two pages compiled at once failed in CI with "AST
    # constructor recursion depth mismatch"). Share one cache, as the server does.
    shared = ScriptCache()
    monkeypatch.setattr(local_script_runner, "ScriptCache", lambda: shared)

    questions = {"asthma": "Does as-needed budesonide-formoterol reduce exacerbations in mild asthma?",
                 "lace": "Do mitochondria play a role in remodelling lace plant leaves during programmed cell death?"}
    apps = {name: AppTest.from_file(str(PAGES / "ask.py"), default_timeout=600) for name in questions}
    for name, at in apps.items():
        at.run()
        at.text_area(key="question").input(questions[name])
        at.button[0].click()
    threads = [threading.Thread(target=at.run) for at in apps.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert "[PMID 29768149]" in texts(apps["asthma"]) and "[PMID 29768149]" not in texts(apps["lace"])
    assert "[PMID 21645374]" in texts(apps["lace"]) and "[PMID 21645374]" not in texts(apps["asthma"])
    assert apps["asthma"].session_state["answer"].question != apps["lace"].session_state["answer"].question


def test_case_page_analyses_an_example_case(ui_env):
    at = AppTest.from_file(str(PAGES / "case.py"), default_timeout=600)
    at.run()
    example = next(b for b in at.button if b.label.startswith("Chest pain"))
    example.click().run()
    assert at.text_area(key="case_text").value.startswith("A 58-year-old African-American woman presents to the ER")
    at.text_area(key="case_text").input("Mrs. Marjorie Pennington. " + at.text_area(key="case_text").value)
    next(b for b in at.button if b.label == "Analyse").click().run()
    assert not at.exception
    out = texts(at)
    assert "Problem list" in out and "Differential from the literature" in out and "Evidence per problem" in out
    assert "Hypertension — “hypertension”" in out.replace("\\", "")
    assert "~~Diabetes mellitus~~" in out.replace("\\", "")  # "She denies ... diabetes"
    assert "Removed before analysis: 1 × name" in out and "Pennington" not in out
    assert "Pennington" not in at.session_state["case_report"].model_dump_json()


def test_citations_page_says_when_the_verifier_falls_back_to_pytorch(ui_env, monkeypatch):
    import rag.onnx_cross_encoder
    from ingest.onnx_embedder import OnnxUnavailable
    from rag.verify import scoring_model

    def failed_export(*args, **kwargs):
        raise OnnxUnavailable("exporting the verifier to ONNX failed (RuntimeError: test)")

    monkeypatch.setattr(rag.onnx_cross_encoder, "load_onnx", failed_export)
    monkeypatch.setenv("PUBMED_RAG_VERIFY__CANDIDATES", "4")  # settings of their own: not the cached scorer
    scoring_model.cache_clear()
    try:
        at = AppTest.from_file(str(PAGES / "citations.py"), default_timeout=300)
        at.run()
        at.text_input(key="cite_claim").input("As-needed budesonide-formoterol was noninferior to budesonide "
                                              "maintenance")
        at.text_input(key="cite_pmids").input("29768149")
        at.button[0].click().run()
        assert not at.exception
        assert [w.value for w in at.warning] == [
            "the verifier runs on PyTorch, slower: exporting the verifier to ONNX failed (RuntimeError: test)"]
        assert ":red-badge[contradicted p=" in texts(at)  # the same verdict, from the PyTorch model
    finally:
        scoring_model.cache_clear()  # later tests get the ONNX model again


def test_citations_page_refuses_typed_pmids_that_are_not_numbers(ui_env):
    at = AppTest.from_file(str(PAGES / "citations.py"), default_timeout=120)
    at.run()
    at.text_input(key="cite_claim").input("As-needed budesonide-formoterol was noninferior to maintenance therapy.")
    at.text_input(key="cite_pmids").input("29768149, 1)](javascript:alert(1))")
    at.button[0].click().run()
    assert not at.exception
    out = texts(at)
    assert "Not a PMID (PMIDs are numbers): 1\\)\\]\\(javascript" in out
    assert "[PMID 29768149](https://pubmed.ncbi.nlm.nih.gov/29768149/)" in out and "](javascript" not in out


def test_library_page_is_read_only_unless_index_writes_are_allowed(ui_env):
    at = AppTest.from_file(str(PAGES / "library.py"), default_timeout=120)
    at.run()  # AppTest sets no server.address: like a server listening on every interface
    assert not at.exception and "small" in set(at.dataframe[0].value["index"])
    assert any("Building and updating indexes is off on this server" in i.value for i in at.info)
    assert not at.text_input and [b.label for b in at.button] == ["Verify"]  # no build form, no Ray address box
