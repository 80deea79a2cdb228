"""Study-design grading from publication types and MeSH headings."""

from __future__ import annotations

from pubmed_rag.records import RETRACTION_NOTICE_TYPES

# (grade, label, publication types, MeSH headings); higher grade = stronger design. First match wins.
_LEVELS: list[tuple[int, str, set[str], set[str]]] = [
    (6, "Systematic review / meta-analysis", {"Meta-Analysis", "Systematic Review", "Network Meta-Analysis"},
     {"Meta-Analysis as Topic", "Systematic Reviews as Topic"}),
    (5, "Randomized controlled trial", {"Randomized Controlled Trial", "Equivalence Trial"},
     {"Random Allocation", "Double-Blind Method", "Single-Blind Method"}),
    (4, "Clinical trial", {"Clinical Trial", "Clinical Trial, Phase I", "Clinical Trial, Phase II",
                           "Clinical Trial, Phase III", "Clinical Trial, Phase IV", "Controlled Clinical Trial",
                           "Pragmatic Clinical Trial", "Adaptive Clinical Trial", "Multicenter Study"}, set()),
    (3, "Observational study", {"Observational Study", "Comparative Study", "Validation Study",
                                "Evaluation Study"},
     {"Cohort Studies", "Prospective Studies", "Retrospective Studies", "Case-Control Studies",
      "Cross-Sectional Studies", "Longitudinal Studies", "Follow-Up Studies"}),
    (2, "Case report / series", {"Case Reports"}, set()),
    (0, "Review / editorial / letter", {"Review", "Editorial", "Letter", "Comment", "News", "Published Erratum",
                                        *RETRACTION_NOTICE_TYPES}, set()),
]
UNGRADED = (1, "Other / unclassified")

# Publication types offered as filters, in grade order.
FILTER_TYPES = ["Meta-Analysis", "Systematic Review", "Randomized Controlled Trial", "Clinical Trial",
                "Observational Study", "Comparative Study", "Case Reports", "Review", "Editorial", "Letter"]


def grade(publication_types: list[str], mesh: list[str]) -> tuple[int, str]:
    """Return ``(grade, label)``; meta-analysis 6 > RCT 5 > trial 4 > observational 3 > case 2 > other 1 > review 0."""
    types, headings = set(publication_types), set(mesh)
    for value, label, by_type, _ in _LEVELS:
        if types & by_type:
            return value, label
    for value, label, _, by_mesh in _LEVELS:
        if headings & by_mesh:
            return value, label
    return UNGRADED
