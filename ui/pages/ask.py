"""Ask page (clinicians): a question, filters, a streamed answer with verified citations, evidence cards."""

from __future__ import annotations

import streamlit as st

from rag.answer import Answer
from rag.grading import FILTER_TYPES
from rag.pipeline import QuestionError
from rag.retrieve import Evidence, Filters
from ui.common import DISCLAIMER, asker, index_picker, md_escape
from ui.examples import example_asked, example_buttons

_VERDICT = {"supported": ("✅", "green"), "weak": ("⚠️", "orange"), "unsupported": ("❌", "red"),
            "uncited": ("❔", "red")}

st.title("Ask PubMed evidence")
st.info(DISCLAIMER, icon="⚕️")

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


def card(ev: Evidence, highlight: set[str]) -> None:
    with st.container(border=True):
        st.subheader(f"\\[{ev.number}\\] {md_escape(ev.title) or '_(untitled)_'}", anchor=f"ev-{ev.number}")
        meta = " · ".join(md_escape(str(x)) for x in (ev.journal, ev.year, ev.authors_short) if x)
        st.markdown(f":blue-badge[{md_escape(ev.grade_label)}] {meta}")
        if ev.retracted:
            st.error("Retracted publication: do not rely on this paper.", icon="🚫")
        elif ev.retraction_notice:
            st.warning("This record is a retraction notice.", icon="⚠️")
        links = f"[PMID {ev.pmid}]({ev.url})"
        if ev.doi:
            links += f" · [DOI {md_escape(ev.doi)}](https://doi.org/{ev.doi})"
        st.markdown(f"{links} · score {ev.score:.3f}")
        st.markdown(_highlighted(ev.passage, highlight))


def _highlighted(passage: str, sentences: set[str]) -> str:
    """The passage, escaped, with the sentences that support the answer on a yellow background."""
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


def _cite_link(number: int, attributed: bool) -> str:
    star = "\\*" if attributed else ""
    return f"[\\[{number}{star}\\]](#ev-{number})"


def render_answer(answer: Answer) -> None:
    if answer.redactions:
        st.caption("Redacted from the question before it was sent to the external model: "
                   + ", ".join(f"{r.kind} {md_escape(r.text)}" for r in answer.redactions))
    if answer.abstained:
        st.warning(f"{answer.answer} ({answer.abstain_reason}). The closest evidence is listed below.")
    else:
        parts = []
        for s in answer.sentences:
            icon, color = _VERDICT[s.verdict]
            text = md_escape(" ".join(s.text.split()))
            cites = " ".join(_cite_link(c.number, c.attributed) for c in s.citations)
            body = text if s.verdict == "supported" else f":{color}[{text}]"
            parts.append(f"{icon} {body} {cites}")
        st.markdown("  \n".join(parts))
        st.caption("✅ supported · ⚠️ weak support · ❌ unsupported · ❔ uncited · \\* citation attached by pubmed-rag "
                   "(the model did not cite it). Citation numbers link to the evidence cards below.")
        if answer.removed_citations:
            st.caption(f"Removed citations to evidence that does not exist: {answer.removed_citations}")
    st.subheader("Evidence")
    highlight = {c.evidence_sentence for s in answer.sentences for c in s.citations}
    for ev in answer.evidence:
        card(ev, highlight)
    t = answer.timings
    first = f"{t.first_token:.2f} s" if t.first_token is not None else "-"
    st.caption(f"retrieve {t.retrieve * 1000:.0f} ms · first token {first} · total {t.total:.1f} s · "
               f"model {answer.model} · index {answer.index} ({answer.retriever})")


if ask and index:
    filters = Filters(year_min=years[0] if years[0] > 1950 else None, year_max=years[1] if years[1] < 2030 else None,
                      publication_types=types, exclude_retracted=exclude_retracted)
    st.session_state.pop("answer", None)
    try:
        pipeline = asker(index)
        live = st.empty()
        text = ""
        for event in pipeline.stream(question, k=k, filters=filters):
            if event.kind == "evidence":
                live.caption(f"{len(event.data)} sources retrieved; writing the answer ...")
            elif event.kind == "token":
                text += event.data
                live.markdown(md_escape(text) + " ▌")
            else:
                st.session_state["answer"] = event.data
        live.empty()
    except QuestionError as exc:
        st.error(str(exc))

if "answer" in st.session_state:
    render_answer(st.session_state["answer"])
