from __future__ import annotations

from pubmed_rag.sentences import split_sentences
from rag.citations import markers, strip_markers


def test_split_keeps_trailing_markers_with_their_sentence():
    text = "Budesonide reduced exacerbations [1]. It was non-inferior. [2][3] Mitochondria moved (M1-M4) in cells [4]."
    assert split_sentences(text) == [
        "Budesonide reduced exacerbations [1].", "It was non-inferior. [2][3]", "Mitochondria moved (M1-M4) in cells [4]."]


def test_markers_forms():
    assert markers("A [1] and [2, 3] and [4-6] and [1].") == [1, 2, 3, 4, 5, 6]
    assert strip_markers("Aspirin helps [1][2].") == "Aspirin helps."
