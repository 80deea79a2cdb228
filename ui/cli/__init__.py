"""``pubmed-rag``: the command-line front end, a thin shell over the ``ingest`` and ``rag`` library calls."""

from ui.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
