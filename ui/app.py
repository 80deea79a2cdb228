"""pubmed-rag Streamlit app: `streamlit run ui/app.py`."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing too

from ui.first_run import building_page, sample_build  # noqa: E402 - needs the path above

st.set_page_config(page_title="pubmed-rag", page_icon=":material/library_books:", layout="wide")
build = sample_build()
if build is not None:  # first run: the sample index is being built; the pages open when it is published
    setup = st.Page(lambda: building_page(build), title="Setting up", icon=":material/hourglass_top:", url_path="setup")
    pages = st.navigation([setup], position="hidden")
else:
    pages = st.navigation([
        st.Page("pages/ask.py", title="Ask", icon=":material/question_answer:", default=True),
        st.Page("pages/case.py", title="Case", icon=":material/stethoscope:"),
        st.Page("pages/library.py", title="Library", icon=":material/folder_open:"),
        st.Page("pages/citations.py", title="Citations", icon=":material/fact_check:"),
    ])
pages.run()
