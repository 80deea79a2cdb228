from __future__ import annotations

from rag.langchain import PubMedRetriever, answer_chain
from rag.pipeline import Asker
from rag.retrieve import Filters
from tests.conftest import FakeGenerator, pubmedqa_questions


def test_retriever_returns_documents_with_pmid_metadata(asker):
    retriever = PubMedRetriever(retriever=asker.retriever, k=3)
    docs = retriever.invoke("as-needed budesonide-formoterol mild asthma exacerbations")
    assert len(docs) == 3 and docs[0].metadata["pmid"] == "29768149" and docs[0].id == "29768149"
    assert docs[0].metadata["journal"] == "The New England journal of medicine" and docs[0].metadata["year"] == 2018
    filtered = PubMedRetriever(retriever=asker.retriever, k=4, filters=Filters(year_min=2026)).invoke("children")
    assert len(filtered) == 4 and all(d.metadata["year"] == 2026 for d in filtered)


def test_answer_chain_invokes_the_pipeline(asker):
    text = "Mitochondrial dynamics were delineated into four categories based on distribution and motility [1]."
    fake = Asker(asker.settings, index="small", generator=FakeGenerator(text), embedder=asker.embedder)
    q = pubmedqa_questions()[0]
    result = answer_chain(fake).invoke({"question": q["question"]})
    assert result["findings"][0]["pmid"] == q["pmid"] == "21645374"
    said = [s["text"] for s in result["bottom_line"]] + [d["text"] for d in result["dropped"]]
    assert any(t.startswith("Mitochondrial dynamics were delineated") for t in said)
    assert answer_chain(fake).invoke(q["question"])["evidence"][0]["pmid"] == "21645374"

