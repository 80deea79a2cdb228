"""Chunking real abstracts: the Rust-backed token counter counts as the tokenizer does, and long abstracts split
into passages, in order and with nothing skipped, that each fit the embedder's window."""

from __future__ import annotations

from ingest.chunking import Chunker, token_counter
from tests.conftest import sample_records


def test_token_counter_matches_the_tokenizer_on_real_abstracts(embedder):
    count = token_counter(embedder.tokenizer)
    records = sample_records(60)
    for rec in records:
        for text in (rec.title, rec.abstract, rec.abstract[: len(rec.abstract) // 3]):
            assert count(text) == len(embedder.tokenizer.tokenize(text))
    assert max(count(r.abstract) for r in records) > 256  # long ones are among them


def test_long_abstracts_split_into_passages_that_fit(embedder):
    chunker = Chunker(embedder, overlap=32)
    long = [r for r in sample_records(60) if chunker.count_tokens(r.abstract) > 300]
    assert long
    for rec in long:
        pieces = chunker.split(rec)
        assert len(pieces) >= 2
        for text, start, end in pieces:
            assert text.startswith(rec.title.strip()) and rec.abstract[start:end] in text
            assert len(embedder.tokenizer(text)["input_ids"]) <= embedder.max_tokens
        for (_, a_start, a_end), (_, b_start, _) in zip(pieces, pieces[1:], strict=False):
            assert a_start < b_start <= a_end + 1  # in order, nothing skipped (adjacent or overlapping)
