"""Safe Markdown built from user input and record fields."""

from __future__ import annotations

from pubmed_rag.settings import Settings
from ui.common import index_writes_allowed, md_escape, md_link


def test_md_link_cannot_be_broken_out_of():
    # A DOI as PubMed records may hold it, and one crafted to end the link and start another.
    assert md_link("DOI 10.1002/(SICI)1097", "https://doi.org/10.1002/(SICI)1097") == \
        "[DOI 10\\.1002/\\(SICI\\)1097](https://doi.org/10.1002/%28SICI%291097)"
    crafted = md_link("PMID 1](javascript:alert(1)) [x", "https://pubmed.ncbi.nlm.nih.gov/1)](javascript:alert(1))/")
    assert crafted.count("](") == 1 and "javascript:alert%281%29" in crafted and "%5D%28" in crafted
    assert md_escape("<script>") == "\\<script\\>"


def test_index_writes_follow_the_setting_and_the_bound_address():
    auto = Settings.load()
    assert index_writes_allowed(auto, "127.0.0.1") and index_writes_allowed(auto, "localhost")
    assert not index_writes_allowed(auto, "0.0.0.0") and not index_writes_allowed(auto, "")
    assert index_writes_allowed(Settings.load({"app.index_writes": "on"}), "0.0.0.0")
    assert not index_writes_allowed(Settings.load({"app.index_writes": "off"}), "127.0.0.1")
