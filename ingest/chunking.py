"""Split abstracts into passages that fit the embedder's window, each keeping the record's title."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ingest.embedder import Embedder
from pubmed_rag.records import Record


class Chunker:
    """Token-aware splitting with LangChain's ``RecursiveCharacterTextSplitter``."""

    def __init__(self, embedder: Embedder, overlap: int = 32) -> None:
        self.embedder = embedder
        self.overlap = overlap
        self._splitters: dict[int, RecursiveCharacterTextSplitter] = {}
        self.count_tokens = token_counter(embedder.tokenizer)

    def _splitter(self, budget: int) -> RecursiveCharacterTextSplitter:
        if budget not in self._splitters:
            self._splitters[budget] = RecursiveCharacterTextSplitter(
                length_function=self.count_tokens,
                chunk_size=budget,
                chunk_overlap=min(self.overlap, budget // 4),
                separators=["\n\n", "\n", ". ", "; ", ", ", " ", ""],
                keep_separator="end",
                add_start_index=True,
            )
        return self._splitters[budget]

    def split(self, record: Record) -> list[tuple[str, int, int]]:
        """Return ``(chunk text, start, end)``; offsets index into ``record.abstract``."""
        abstract = record.abstract
        if not abstract.strip():
            return []
        title = record.title.strip()
        # Room for the title and the two special tokens the embedder adds.
        budget = max(32, self.embedder.max_tokens - self.count_tokens(title) - 3)
        if self.count_tokens(abstract) <= budget:
            return [(_join(title, abstract), 0, len(abstract))]
        out: list[tuple[str, int, int]] = []
        for doc in self._splitter(budget).create_documents([abstract]):
            piece = doc.page_content
            start = int(doc.metadata.get("start_index", -1))
            if start < 0 or abstract[start:start + len(piece)] != piece:
                # LangChain's own offset search can miss (-1) where a piece repeats text before the previous one's
                # overlap; look from the previous piece on, then anywhere.
                after = out[-1][1] + 1 if out else 0
                start = abstract.find(piece, after)
                start = start if start >= 0 else abstract.find(piece)
            out.append((_join(title, piece), start, start + len(piece)))
        return out


def _join(title: str, passage: str) -> str:
    return f"{title}\n{passage}" if title else passage


def token_counter(tokenizer: Any) -> Callable[[str], int]:
    """Tokens in a text without special tokens, as ``len(tokenizer.tokenize(text))`` counts them, but through a
    copy of a fast tokenizer's Rust backend (no truncation, no padding): LangChain calls it for every piece it
    tries, and transformers' per-call work was most of the time chunking took (8.4 s per 1,000 records)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return lambda text: len(tokenizer.tokenize(text))
    from tokenizers import Tokenizer

    fast = Tokenizer.from_str(backend.to_str())
    fast.no_truncation()
    fast.no_padding()
    return lambda text: len(fast.encode(text, add_special_tokens=False).ids)
