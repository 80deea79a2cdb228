"""Retrieve evidence, generate an answer conditioned on it, attach and verify citations."""
