"""Citations page (researchers): does each cited abstract support the claim, contradict it, or not address it?"""

from __future__ import annotations

import streamlit as st

from pubmed_rag.sentences import split_sentences
from rag.check import check_claims, parse_claims
from ui.common import index_picker, md_escape, md_link, scorer

BADGE = {"supported": "green", "contradicted": "red", "not enough information": "gray"}

st.title("Check citations")
st.caption("Paste text whose claims cite PMIDs ([PMID:123], PMID 123), or enter one claim and its PMIDs. Each cited "
           "abstract is read against the claim: supported, contradicted, or not enough information.")
index = index_picker("cite_index")
text = st.text_area("Text with cited claims", key="cite_text", height=120)
col1, col2 = st.columns([3, 1])
claim = col1.text_input("Or one claim", key="cite_claim")
pmids = col2.text_input("PMIDs (comma-separated)", key="cite_pmids")

if st.button("Check", type="primary", disabled=index is None) and index:
    try:
        loaded, support = scorer(index)
    except RuntimeError as exc:  # the verifier's weights are missing or damaged; the message names the fallback
        st.error(str(exc))
        st.stop()
    claims = parse_claims(text) if text.strip() else []
    if claim.strip() and pmids.strip():
        typed = [p.strip() for p in pmids.replace(";", ",").split(",") if p.strip()]
        bad = [p for p in typed if not p.isdigit()]
        if bad:
            st.error("Not a PMID (PMIDs are numbers): " + ", ".join(md_escape(p) for p in bad))
        claims.append((claim.strip(), [p for p in typed if p.isdigit()]))
    if not claims:
        st.warning("No claim with a PMID found.")
    checks = check_claims(claims, loaded, support)
    records = loaded.store.get_many([r.pmid for c in checks for r in c.results if r.indexed])
    st.session_state["checks"] = checks
    st.session_state["check_warnings"] = support.warnings
    st.session_state["check_abstracts"] = {p: r.abstract or r.title for p, r in records.items()}

for warning in st.session_state.get("check_warnings", []):
    st.warning(warning, icon=":material/warning:")
abstracts = st.session_state.get("check_abstracts", {})
for check in st.session_state.get("checks", []):
    with st.container(border=True):
        st.markdown(f"**Claim:** {md_escape(check.claim)}")
        for r in check.results:
            if not r.indexed:
                st.warning(f"PMID {r.pmid} is not in this index.")
                continue
            probability = f" p={r.probability:.2f}" if r.probability is not None else ""
            st.markdown(f"{md_link(f'PMID {r.pmid}', r.url)} {md_escape(r.title)} — "
                        f":{BADGE.get(r.verdict, 'gray')}-badge[{r.verdict}{probability}] similarity {r.score:.2f}")
            if r.reason:
                st.caption(f"Why: {md_escape(r.reason)}")
            st.markdown(f"> :yellow-background[{md_escape(r.best_sentence)}]")
            abstract = abstracts.get(r.pmid, "")
            if abstract:
                with st.expander("Abstract, deciding sentence highlighted"):
                    # Every sentence is escaped: abstract text is shown as text, never as Markdown or HTML.
                    st.markdown(" ".join(f":yellow-background[{md_escape(s)}]" if s == r.best_sentence
                                         else md_escape(s) for s in split_sentences(abstract)))
