"""pubmed-rag Streamlit app: `streamlit run ui/app.py`."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing too

st.set_page_config(page_title="pubmed-rag", page_icon="📚", layout="wide")
pages = st.navigation([
    st.Page("pages/ask.py", title="Ask", icon="❓", default=True),
    st.Page("pages/library.py", title="Library", icon="🗂️"),
    st.Page("pages/citations.py", title="Citations", icon="🔎"),
])
pages.run()
