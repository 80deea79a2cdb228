"""The front ends: the Streamlit app (``ui/app.py``, ``ui/pages/``) and the ``pubmed-rag`` command line (``ui/cli/``)."""
