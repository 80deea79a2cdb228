"""Split abstracts into passages that fit the embedder's window, each keeping the record's title."""

from __future__ import annotations

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ingest.embedder import Embedder
from pubmed_rag.records import Record


class Chunker:
    """Token-aware splitting with LangChain's ``RecursiveCharacterTextSplitter``."""

    def __init__(self, embedder: Embedder, overlap: int = 32) -> None:
        self.embedder = embedder
        self.overlap = overlap
        self._splitters: dict[int, RecursiveCharacterTextSplitter] = {}

    def _splitter(self, budget: int) -> RecursiveCharacterTextSplitter:
        if budget not in self._splitters:
            self._splitters[budget] = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
                self.embedder.tokenizer,
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
        budget = max(32, self.embedder.max_tokens - self.embedder.count_tokens(title) - 3)
        if self.embedder.count_tokens(abstract) <= budget:
            return [(_join(title, abstract), 0, len(abstract))]
        out = []
        for doc in self._splitter(budget).create_documents([abstract]):
            start = int(doc.metadata.get("start_index", abstract.find(doc.page_content)))
            out.append((_join(title, doc.page_content), start, start + len(doc.page_content)))
        return out


def _join(title: str, passage: str) -> str:
    return f"{title}\n{passage}" if title else passage
