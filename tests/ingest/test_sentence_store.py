"""Sentences and their vectors stored at ingest (ingest.sentence_store), read back by the index."""

from __future__ import annotations

import numpy as np

from ingest.index import LoadedIndex
from ingest.sentence_store import SENTENCES_FILE, SentenceStore
from pubmed_rag.sentences import evidence_sentences


def test_ingest_stores_each_abstracts_sentences_and_vectors(small_index_dir, embedder):
    index = LoadedIndex(small_index_dir, "small")
    assert (small_index_dir / "small" / SENTENCES_FILE).is_file() and index.sentences is not None
    sygma = index.store.get_many(["29768149"])["29768149"]
    stored = index.sentences.get_many([sygma.abstract, "a text never indexed"])
    assert list(stored) == [sygma.abstract]  # only what was ingested
    sentences, vectors = stored[sygma.abstract]
    assert sentences == evidence_sentences(sygma.abstract) and len(sentences) > 5
    assert vectors.dtype == np.float16 and vectors.shape == (len(sentences), 384)
    fresh = embedder.encode(sentences)
    assert np.min(np.sum(fresh * vectors.astype(np.float32), axis=1)) > 0.999
    # One row per distinct text ingested: the 180 sample abstracts, the baseline subset and the NEJM trial.
    assert index.sentences.count() >= 180


def test_store_is_keyed_by_content_and_by_model(tmp_path, embedder):
    store = SentenceStore(tmp_path / SENTENCES_FILE, "all-MiniLM-L6-v2")
    text = "Budesonide-formoterol reduced exacerbations. It was inferior for symptom control."
    assert store.add([text, text, ""], embedder) == 1
    assert store.add([text], embedder) == 0  # already stored: nothing embedded again
    store.close()
    assert SentenceStore.open(tmp_path, "another-model") is None
    reread = SentenceStore.open(tmp_path, "all-MiniLM-L6-v2")
    assert reread.get_many([text])[text][0] == ["Budesonide-formoterol reduced exacerbations.",
                                                "It was inferior for symptom control."]
