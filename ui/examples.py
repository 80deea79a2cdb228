"""Example questions for the Ask page: one click fills the question box and asks it.

Each was checked against the sample index (`pubmed-rag ask "..." --index sample --json`): its first key finding
is quoted from the record named here. A button shows only where that record is in the chosen index.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from ingest.index import current_folder
from ingest.manifest import open_store, read_manifest
from pubmed_rag.settings import Settings

_ASKED = "example_asked"


@dataclass(frozen=True)
class Example:
    """A question and the PMID of the record in data/sample that answers it."""

    question: str
    pmid: str


EXAMPLES = (
    Example("Does as-needed budesonide-formoterol reduce severe exacerbations in mild asthma?", "29768149"),
    Example("Does medical expulsive therapy with tamsulosin or nifedipine help adults pass ureteric stones?",
            "25998582"),
    Example("Does crizotinib improve overall survival in ALK-positive non-small-cell lung cancer?", "21933749"),
    Example("Is olanzapine effective in acute bipolar mania?", "10986547"),
    Example("Is ibuprofen a safe analgesic after cardiac surgery?", "26702342"),
)


@st.cache_data(show_spinner=False)
def _indexed(folder: str, pmids: tuple[str, ...]) -> set[str]:
    store = open_store(Path(folder), read_manifest(Path(folder)))
    try:
        return set(store.get_many(pmids))
    finally:
        store.close()


def examples_for(index: str | None, settings: Settings | None = None) -> list[Example]:
    """The examples whose record is in ``index`` (none when no index is chosen)."""
    if index is None:
        return []
    s = settings or Settings.load()
    present = _indexed(str(current_folder(s.paths.index_dir, index)), tuple(e.pmid for e in EXAMPLES))
    return [e for e in EXAMPLES if e.pmid in present]


def _choose(question: str, key: str) -> None:
    # A callback runs before the page reruns, so the question box can still be set.
    st.session_state[key] = question
    st.session_state[_ASKED] = True


def example_buttons(index: str | None, key: str = "question") -> None:
    """A row of example questions; a click puts the question in the text area ``key`` and asks it."""
    shown = examples_for(index)
    if not shown:
        return
    st.caption("Example questions (a click asks one):")
    with st.container(horizontal=True, gap="small"):
        for example in shown:
            st.button(example.question, key=f"example_{example.pmid}", on_click=_choose, args=(example.question, key))


def example_asked() -> bool:
    """Whether an example was clicked since the last call (the page then asks it)."""
    return bool(st.session_state.pop(_ASKED, False))
