"""pubmed-rag: cited answers to medical evidence questions from PubMed abstracts."""

__version__ = "0.1.0"
