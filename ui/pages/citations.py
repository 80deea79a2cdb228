"""Citations page (researchers): does each cited abstract support the claim that cites it?"""

from __future__ import annotations

import streamlit as st

from rag.check import check_claim, parse_claims
from ui.common import index_picker, md_escape, scorer

st.title("Check citations")
st.caption("Paste text whose claims cite PMIDs ([PMID:123], PMID 123), or enter one claim and its PMIDs.")
index = index_picker("cite_index")
text = st.text_area("Text with cited claims", key="cite_text", height=120)
col1, col2 = st.columns([3, 1])
claim = col1.text_input("Or one claim", key="cite_claim")
pmids = col2.text_input("PMIDs (comma-separated)", key="cite_pmids")

if st.button("Check", type="primary", disabled=index is None) and index:
    loaded, support = scorer(index)
    claims = parse_claims(text) if text.strip() else []
    if claim.strip() and pmids.strip():
        claims.append((claim.strip(), [p.strip() for p in pmids.replace(";", ",").split(",") if p.strip()]))
    if not claims:
        st.warning("No claim with a PMID found.")
    st.session_state["checks"] = [check_claim(c, p, loaded, support) for c, p in claims]

for check in st.session_state.get("checks", []):
    with st.container(border=True):
        st.markdown(f"**Claim:** {md_escape(check.claim)}")
        for r in check.results:
            if not r.indexed:
                st.warning(f"PMID {r.pmid} is not in this index.")
                continue
            color = {"supported": "green", "weak": "orange", "unsupported": "red"}[r.verdict]
            st.markdown(f"[PMID {r.pmid}]({r.url}) {md_escape(r.title)} — :{color}-badge[{r.verdict}] "
                        f"support {r.score:.2f}")
            st.markdown(f"> :yellow-background[{md_escape(r.best_sentence)}]")
