"""Streamlit app: pages that display what the ``ingest`` and ``rag`` library calls return."""
