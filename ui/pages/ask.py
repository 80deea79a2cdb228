"""Ask page (clinicians): a question, filters, the key findings quoted, a checked bottom line, evidence cards."""

from __future__ import annotations

import streamlit as st

from pubmed_rag.types import Answer, Evidence, Finding
from rag.citations import strip_markers
from rag.grading import FILTER_TYPES
from rag.pipeline import QuestionError
from rag.retrieve import Filters
from ui.common import DISCLAIMER, asker, index_picker, md_escape, md_link
from ui.examples import example_asked, example_buttons

_VERDICT = {"supported": (":material/check_circle:", "green"), "weak": (":material/warning:", "orange"),
            "unsupported": (":material/cancel:", "red"),
            "uncited": (":material/help:", "red")}

st.title("Ask PubMed evidence")
st.info(DISCLAIMER, icon=":material/medical_information:")

with st.sidebar:
    index = index_picker("ask_index")
    st.subheader("Filters")
    years = st.slider("Publication years", 1950, 2030, (1950, 2030), key="years")
    types = st.multiselect("Publication types", FILTER_TYPES, key="types")
    exclude_retracted = st.checkbox("Exclude retracted", value=True, key="exclude_retracted")
    k = st.slider("Number of sources", 1, 20, 5, key="k")

question = st.text_area("Question", key="question", height=80,
                        placeholder="e.g. Does as-needed budesonide-formoterol reduce exacerbations in mild asthma?")
ask = st.button("Ask", type="primary", disabled=index is None)
example_buttons(index)  # one click puts an example in the question box and asks it
ask = ask or example_asked()


def card(ev: Evidence, highlight: set[str], finding: Finding | None) -> None:
    with st.container(border=True):
        title = md_escape(ev.title) if ev.title else f"_{md_escape(ev.display_title)}_"
        st.subheader(f"\\[{ev.number}\\] {title}", anchor=f"ev-{ev.number}")
        meta = " · ".join(md_escape(str(x)) for x in (ev.journal, ev.year, ev.authors_short) if x)
        st.markdown(f":blue-badge[{md_escape(ev.grade_label)}] {meta}")
        if ev.retracted:
            st.error("Retracted publication: do not rely on this paper.", icon=":material/block:")
        elif ev.retraction_notice:
            st.warning("This record is a retraction notice.", icon=":material/warning:")
        links = md_link(f"PMID {ev.pmid}", ev.url)
        if ev.doi:
            links += " · " + md_link(f"DOI {ev.doi}", f"https://doi.org/{ev.doi}")
        relevance = (f"relevance {finding.relevance:.2f} (similarity of its best sentence to the question)"
                     if finding else "no sentence relevant enough to quote")
        st.markdown(f"{links} · rank {ev.number} · {relevance}")
        st.markdown(_highlighted(" ".join(ev.abstract.split()) or ev.passage, highlight))


def _highlighted(passage: str, sentences: set[str]) -> str:
    """The passage, escaped, with the quoted sentences on a yellow background."""
    spans = sorted((passage.find(s), s) for s in sentences if s and s in passage)
    out, pos = [], 0
    for start, sentence in spans:
        if start < pos:
            continue
        out.append(md_escape(passage[pos:start]))
        out.append(f":yellow-background[{md_escape(sentence)}]")
        pos = start + len(sentence)
    out.append(md_escape(passage[pos:]))
    return "".join(out)


def _cite_link(number: int, attributed: bool = False) -> str:
    star = "\\*" if attributed else ""
    return f"[\\[{number}{star}\\]](#ev-{number})"


def render_findings(findings: list[Finding]) -> None:
    """The key findings: each record's answering sentence(s), quoted verbatim, strongest first."""
    st.subheader("Key findings")
    for f in findings:
        badges = [f":blue-badge[{md_escape(f.design)}]" if f.design else "",
                  f":gray-badge[{f.year}]" if f.year else "",
                  f":green-badge[n = {f.sample_size:,}]" if f.sample_size else "",
                  f":gray-badge[{f.section.lower()}]" if f.section else ""]
        st.markdown(f"> “{md_escape(f.text)}” {_cite_link(f.number)}  \n> {' '.join(b for b in badges if b)}")


def render_bottom_line(answer: Answer) -> None:
    """The checked bottom line, under the findings: the sentences that passed, and what the checks dropped."""
    st.subheader("Bottom line")
    if answer.bottom_line:
        parts = []
        for s in answer.bottom_line:
            icon, color = _VERDICT[s.verdict]
            text = md_escape(" ".join(strip_markers(s.text).split()))
            cites = " ".join(_cite_link(c.number, c.attributed) for c in s.citations)
            body = text if s.verdict == "supported" else f":{color}[{text}]"
            parts.append(f"{icon} {body} {cites}")
        st.markdown("  \n".join(parts))
        st.caption("Written by the model from the key findings and checked against them (support, negation, "
                   "numbers, direction). :material/check_circle: supported · \\* citation attached by pubmed-rag.")
    else:
        st.caption("No generated sentence passed the checks: the key findings above are the answer.")
    if answer.dropped:
        st.caption(f"{len(answer.dropped)} generated sentence(s) were dropped ("
                   + ", ".join(dict.fromkeys(d.reason for d in answer.dropped)) + "); the JSON keeps them.")
    if answer.removed_citations:
        st.caption(f"Removed citations to evidence that does not exist: {answer.removed_citations}")


def render_answer(answer: Answer) -> None:
    """Findings first, the checked bottom line under them, then the evidence cards."""
    for warning in answer.warnings:
        st.warning(warning, icon=":material/warning:")
    if answer.redactions:
        st.caption("Redacted from the question before it was sent to the external model: "
                   + ", ".join(f"{r.kind} {md_escape(r.text)}" for r in answer.redactions))
    if answer.abstained:
        st.warning(f"{answer.answer} ({answer.abstain_reason}). The closest evidence is listed below.")
    else:
        if answer.findings:
            render_findings(answer.findings)
        render_bottom_line(answer)
    st.subheader("Evidence")
    highlight = {s for f in answer.findings for s in f.sentences}
    highlight |= {c.evidence_sentence for s in answer.bottom_line for c in s.citations}
    by_number = {f.number: f for f in answer.findings}
    for ev in answer.evidence:
        card(ev, highlight, by_number.get(ev.number))
    t = answer.timings
    first = f"{t.first_token:.2f} s" if t.first_token is not None else "-"
    st.caption(f"retrieve {t.retrieve * 1000:.0f} ms · findings {t.findings * 1000:.0f} ms · first token {first} · "
               f"total {t.total:.1f} s · model {answer.model} · index {answer.index} ({answer.retriever})")


if ask and index:
    filters = Filters(year_min=years[0] if years[0] > 1950 else None, year_max=years[1] if years[1] < 2030 else None,
                      publication_types=types, exclude_retracted=exclude_retracted)
    st.session_state.pop("answer", None)
    try:
        pipeline = asker(index)
        early = st.empty()  # the findings, the moment they exist
        live = st.empty()  # under them: progress, then the bottom line as it is written
        text = ""
        for event in pipeline.stream(question, k=k, filters=filters):
            if event.kind == "evidence":
                live.caption(f"{len(event.data)} sources retrieved; choosing the key findings ...")
            elif event.kind == "findings":
                with early.container():
                    render_findings(event.data)
                live.caption("Writing the bottom line from these findings ...")
            elif event.kind == "token":
                text += event.data
                with live.container():
                    st.subheader("Bottom line")
                    st.markdown(md_escape(text) + " ▌")
                    st.caption("Being written; only the sentences that pass the checks will stay.")
            else:
                st.session_state["answer"] = event.data
        live.empty()
        early.empty()
    except QuestionError as exc:
        st.error(str(exc))

if "answer" in st.session_state:
    render_answer(st.session_state["answer"])
