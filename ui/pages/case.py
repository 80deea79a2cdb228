"""Case page (clinicians): paste a de-identified case; get its problems, a literature-based differential and cited
evidence per problem. The case stays in this session's memory: it is not written, logged or cached."""

from __future__ import annotations

import csv
from pathlib import Path

import streamlit as st

from rag.case import CaseError
from rag.case.report import redaction_counts, to_markdown
from ui.common import DISCLAIMER, case_analyzer, index_picker, md_escape, md_link

EXAMPLES_FILE = Path(__file__).resolve().parents[2] / "data" / "cases" / "2014_description.csv"
EXAMPLE_TOPICS = {1: "Chest pain (TREC CDS 2014 topic 1)", 4: "Child with fever (topic 4)",
                  21: "Arthralgias and rash (topic 21)"}
CATEGORIES = [("known condition", "Known conditions"), ("active finding", "Active findings"),
              ("medication", "Medications"), ("patient factor", "Patient factors")]


def examples() -> dict[str, str]:
    """Three TREC topics from the checkout's data/cases (an installed wheel has no data folder: no examples)."""
    if not EXAMPLES_FILE.is_file():
        return {}
    with open(EXAMPLES_FILE, encoding="utf-8", newline="") as fh:
        rows = [row[0] for row in csv.reader(fh) if row]
    return {label: rows[topic - 1] for topic, label in EXAMPLE_TOPICS.items()}


st.title("Analyse a case")
st.caption("Paste a de-identified patient case. Identifiers that slipped through (names, record numbers, dates, "
           "addresses, phone numbers) are removed on this machine before anything else; the case is never written "
           "to disk, logged or sent anywhere. " + DISCLAIMER)
index = index_picker("case_index")
if shown := examples():
    st.write("Examples (TREC Clinical Decision Support 2014 topics):")
    for col, (label, text) in zip(st.columns(len(shown)), shown.items(), strict=True):
        if col.button(label, key=f"example_{label}"):
            st.session_state["case_text"] = text
text = st.text_area("Case", key="case_text", height=180,
                    placeholder="A 58-year-old woman presents with episodic chest pain radiating to the back ...")

if st.button("Analyse", type="primary", disabled=index is None) and index:
    bar = st.progress(0.0, text="Starting ...")
    try:
        with st.status("Analysing the case ...", expanded=False) as status:
            def progress(stage: str, fraction: float) -> None:
                bar.progress(min(max(fraction, 0.0), 1.0), text=stage)
                status.update(label=stage)

            report = case_analyzer(index).analyze(text, progress)
            status.update(label=f"Done in {report.timings.get('total', 0):.1f} s", state="complete")
        st.session_state["case_report"] = report
    except CaseError as exc:
        st.session_state.pop("case_report", None)
        st.error(str(exc))

report = st.session_state.get("case_report")
if report is not None:
    st.info(report.notice)
    for warning in report.warnings:
        st.warning(warning, icon=":material/warning:")
    if report.redactions:
        st.warning("Removed before analysis: " + ", ".join(f"{n} × {md_escape(k)}"
                                                            for k, n in redaction_counts(report).items()))
    with st.expander("The case as analysed (identifiers replaced)"):
        st.text(report.text)

    st.subheader("Problem list")
    for category, title in CATEGORIES:
        items = [p for p in report.problems if p.category == category]
        if items:
            st.markdown(f"**{title}**")
            st.markdown("\n".join(f"- {md_escape(p.name)}" + (" (possible)" if p.uncertain else "") + " — "
                                  + ", ".join(f"“{md_escape(w)}”" for w in p.words) for p in items))
    if report.negated:
        st.markdown("**Read as negated, about a relative or hypothetical** (never used as evidence)")
        st.markdown("\n".join(f"- ~~{md_escape(m.concept)}~~ — “{md_escape(m.words)}”" for m in report.negated))

    st.subheader("Differential from the literature")
    st.caption("Suggestions: diagnoses the retrieved abstracts tie to this case's findings. Not a diagnosis.")
    if not report.differential:
        st.write("No retrieved record ties a diagnosis to the case's findings.")
    for i, c in enumerate(report.differential, start=1):
        with st.container(border=True):
            cites = " ".join(f"[{n}]" for n in c.records[:6])
            st.markdown(f"**{i}. {md_escape(c.name)}** {md_escape(cites)}")
            st.markdown(f":green-badge[explains] {md_escape(', '.join(c.explains))}")
            if c.unexplained:
                st.markdown(f":gray-badge[not explained] {md_escape(', '.join(c.unexplained))}")
            for q in c.quotes:
                st.markdown(f"> {md_escape(q.sentence)} \\[{q.number}\\]")

    st.subheader("Evidence per problem")
    for pe in report.evidence:
        with st.container(border=True):
            boost = f" · searched for {md_escape(', '.join(pe.boosted_by))}" if pe.boosted_by else ""
            st.markdown(f"**{md_escape(pe.problem)}** · {pe.purpose}{boost}")
            if not pe.findings:
                st.caption("No finding in the index answers this.")
            for f in pe.findings:
                badge = " · ".join(p for p in (f.design, str(f.year) if f.year else "",
                                               f"n = {f.sample_size:,}" if f.sample_size else "") if p)
                st.markdown(f"> {md_escape(' '.join(f.sentences))} \\[{f.number}\\]")
                if badge:
                    st.caption(badge)

    if report.references:
        st.subheader("References")
        for e in report.references:
            st.markdown(f"{e.number}\\. {md_link(f'PMID {e.pmid}', e.url)} {md_escape(e.display_title)} "
                        f"{md_escape(' · '.join(p for p in (e.journal, str(e.year or '')) if p))}")
    col1, col2 = st.columns(2)
    col1.download_button("Download Markdown", to_markdown(report), file_name="case-report.md", mime="text/markdown")
    col2.download_button("Download JSON", report.model_dump_json(indent=2), file_name="case-report.json",
                         mime="application/json")
