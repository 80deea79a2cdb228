"""Case analysis: a pasted patient case -> problem list, literature-based differential, cited evidence per problem."""

from rag.case.analyze import CaseAnalyzer, CaseError

__all__ = ["CaseAnalyzer", "CaseError"]
