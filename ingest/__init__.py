"""Fetch and parse PubMed records, and build versioned indexes from them."""
