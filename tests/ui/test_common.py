"""Safe Markdown built from user input and record fields."""

from __future__ import annotations

from ui.common import md_escape, md_link


def test_md_link_cannot_be_broken_out_of():
    # A DOI as PubMed records may hold it, and one crafted to end the link and start another.
    assert md_link("DOI 10.1002/(SICI)1097", "https://doi.org/10.1002/(SICI)1097") == \
        "[DOI 10\\.1002/\\(SICI\\)1097](https://doi.org/10.1002/%28SICI%291097)"
    crafted = md_link("PMID 1](javascript:alert(1)) [x", "https://pubmed.ncbi.nlm.nih.gov/1)](javascript:alert(1))/")
    assert crafted.count("](") == 1 and "javascript:alert%281%29" in crafted and "%5D%28" in crafted
    assert md_escape("<script>") == "\\<script\\>"
