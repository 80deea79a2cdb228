"""Evaluation harness, one module per job (as sentence-transformers' ``evaluation/``):

- ``datasets``: BioASQ, PubMedQA-L and the abstract corpus; ``scifact``: SciFact-format claim files;
- ``metrics``: retrieval, QA, ROC AUC, ROUGE;
- ``retrieval``, ``qa``, ``answers``, ``verify``: the evaluations behind ``pubmed-rag eval``;
- ``calibration``: support and abstention thresholds.
"""

from rag.evaluation.answers import ANSWER_SETTINGS, answers_table, evaluate_answers
from rag.evaluation.calibration import calibrate_abstention, calibrate_support
from rag.evaluation.datasets import (
    Question,
    bioasq_answer_questions,
    bioasq_corpus,
    bioasq_questions,
    bioasq_snippet_records,
    load_bioasq,
    load_corpus,
    pubmedqa_questions,
)
from rag.evaluation.metrics import KS, markdown_table, qa_metrics, retrieval_metrics, roc_auc, rouge
from rag.evaluation.qa import QA_SETTINGS, decide, evaluate_qa, parse_decision, pick
from rag.evaluation.retrieval import evaluate_retrieval

__all__ = [
    "ANSWER_SETTINGS", "KS", "QA_SETTINGS", "Question", "answers_table", "bioasq_answer_questions", "bioasq_corpus",
    "bioasq_questions", "bioasq_snippet_records", "calibrate_abstention", "calibrate_support", "decide",
    "evaluate_answers", "evaluate_qa", "evaluate_retrieval", "load_bioasq", "load_corpus", "markdown_table",
    "parse_decision", "pick", "pubmedqa_questions", "qa_metrics", "retrieval_metrics", "roc_auc", "rouge",
]
