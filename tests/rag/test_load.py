"""Under load: one ``Asker`` (what the app shares between sessions) answering 8 callers at once gives exactly the
serial answers, with no errors and bounded memory growth. The figures for full answers are measured by
bench/bench_load.py (docs/reliability.md)."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from pubmed_rag.settings import Settings
from tests.conftest import FIXTURES, pubmedqa_questions

CALLERS = 8
QUESTIONS = 200


def fixture_questions() -> list[str]:
    """The tests' 58 distinct real questions (PubMedQA test split, PubMedQA-L, BioASQ 9B), repeated to 200 in order: a
    realistic mix of new and repeated questions."""
    pqal = json.loads((FIXTURES / "pubmedqa_pqal_30.json").read_text())
    bioasq = json.loads((FIXTURES / "bioasq_9B1_sample.json").read_text())["questions"]
    distinct = list(dict.fromkeys([q["question"] for q in pubmedqa_questions()] + [q["QUESTION"] for q in pqal.values()]
                                  + [q["body"] for q in bioasq]))
    return [distinct[i % len(distinct)] for i in range(QUESTIONS)]


def comparable(answer) -> dict:
    """Everything an answer says; only how long it took may differ."""
    return answer.model_dump(exclude={"timings"})


@pytest.fixture(scope="module")
def shared_asker(small_index_dir, embedder, generator_cache):
    from rag.pipeline import Asker

    s = Settings.load({"paths.index_dir": str(small_index_dir), "paths.cache_dir": str(generator_cache)})
    return Asker(s, index="small", embedder=embedder)  # the shipped verifier and settings, as the app serves


def test_200_questions_from_8_callers_at_once_match_the_serial_answers(shared_asker):
    questions = fixture_questions()
    assert len(questions) == 200 and len(set(questions)) == 58
    process = psutil.Process(os.getpid())
    ask = lambda q: shared_asker.ask(q, bottom_line=False)  # noqa: E731 - evidence, findings, their checks
    serial = [comparable(ask(q)) for q in questions]
    assert sum(1 for a in serial if a["findings"]) > 150  # most questions found quotable evidence
    before = process.memory_info().rss
    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        concurrent = [comparable(a) for a in pool.map(ask, questions)]
    grown = (process.memory_info().rss - before) / 2**20
    assert concurrent == serial
    assert grown < 200, f"resident memory grew by {grown:.0f} MiB under load"


def test_full_answers_from_8_callers_at_once_match_the_serial_answers(shared_asker):
    """The bottom line too (the generator and the verifier shared by all callers), on 16 questions."""
    questions = fixture_questions()[:16]
    ask = lambda q: shared_asker.ask(q, max_new_tokens=24)  # noqa: E731
    serial = [comparable(ask(q)) for q in questions]
    # The generator wrote for most of them (what survives the checks is rarer: docs/evaluation.md).
    assert sum(1 for a in serial if a["new_tokens"] > 0) >= 8 and not any(a["warnings"] for a in serial)
    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        concurrent = [comparable(a) for a in pool.map(ask, questions)]
    assert concurrent == serial
