"""LangChain interop: a ``BaseRetriever`` over an index and a runnable answer chain."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import ConfigDict

from pubmed_rag.types import Evidence
from rag.pipeline import Asker
from rag.retrieve import Filters, IndexRetriever


def to_document(ev: Evidence) -> Document:
    meta = ev.model_dump(exclude={"passage", "abstract"})
    return Document(page_content=ev.passage, metadata=meta, id=ev.pmid)


class PubMedRetriever(BaseRetriever):
    """Evidence from a pubmed-rag index as LangChain ``Document``s (metadata: PMID, title, journal, year, ...)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: IndexRetriever
    k: int = 5
    filters: Filters | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [to_document(ev) for ev in self.retriever.search(query, self.k, self.filters)]


def answer_chain(asker: Asker) -> Runnable[Any, dict]:
    """A runnable that takes a question (``str`` or ``{"question": ...}``) and returns the answer as a dict."""

    def run(value: Any) -> dict:
        question = value["question"] if isinstance(value, dict) else str(value)
        return asker.ask(question).model_dump()

    return RunnableLambda(run, name="pubmed_rag_answer")
