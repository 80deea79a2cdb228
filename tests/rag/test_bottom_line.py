"""The bottom line's checks, driven by a scripted generator over the real NEJM SYGMA 1 finding."""

from __future__ import annotations

import pytest

from pubmed_rag.types import Finding
from rag.agreement import direction_reason, numbers, numbers_reason, polarity_reason
from rag.bottom_line import BottomLineChecker, build_prompt
from rag.pipeline import Asker
from tests.conftest import FLAGSHIP, FakeGenerator

EXACERBATIONS = ("Exacerbation rates with the two budesonide-containing regimens were similar and were lower than the "
                 "rate with terbutaline.")
FINDING = Finding(number=1, pmid="29768149", sentences=[EXACERBATIONS], section="CONCLUSIONS",
                  design="Randomized controlled trial", year=2018, sample_size=3849, relevance=0.58, score=0.8)

SCRIPT = {
    "echo": "Does as-needed budesonide-formoterol reduce severe exacerbations in mild asthma [1].",
    "polarity": "Exacerbation rates with the budesonide-containing regimens were not lower than with terbutaline [1].",
    "numbers": "Exacerbation rates with the budesonide-containing regimens were 45% lower than with terbutaline [1].",
    "question": "Were exacerbation rates lower with the budesonide-containing regimens than with terbutaline [1]?",
    "formatting": "Answer: A. budesonide-formoterol B. terbutaline C. placebo [1].",
    # The base model once copied the prompt's last line before a finding (BioASQ 9B choice slice).
    "leak": "What the studies found: exacerbation rates with both regimens were lower than with terbutaline [1].",
    "faithful": "Exacerbation rates with both budesonide-containing regimens were lower than with terbutaline [1].",
}
REASONS = {"echo": "echoes the question", "polarity": "polarity", "numbers": "numbers", "question": "is a question",
           "formatting": "prompt formatting", "leak": "prompt formatting"}


@pytest.fixture(scope="module")
def checker(asker) -> BottomLineChecker:
    s = asker.settings
    return BottomLineChecker(asker.embedder, asker.scorer, s.answer, s.verify)


@pytest.mark.parametrize("kind", list(REASONS))
def test_each_failure_is_dropped_with_its_reason(checker, kind):
    kept, dropped = checker.check(FLAGSHIP, SCRIPT[kind], [FINDING])
    assert kept == [] and [d.reason for d in dropped] == [REASONS[kind]]
    assert dropped[0].text == SCRIPT[kind]


def test_a_faithful_sentence_is_kept_with_its_citation(checker):
    kept, dropped = checker.check(FLAGSHIP, " ".join(SCRIPT.values()), [FINDING])
    assert [s.text for s in kept] == [SCRIPT["faithful"]] and dropped[0].reason == "echoes the question"
    assert sorted(d.reason for d in dropped) == sorted(REASONS.values())
    citation = kept[0].citations[0]
    assert (citation.number, citation.pmid, citation.verdict) == (1, "29768149", "supported")
    assert citation.evidence_sentence == EXACERBATIONS and not citation.attributed


def test_local_yes_no_is_removed_and_the_rest_checked(checker):
    kept, dropped = checker.check(FLAGSHIP, "Yes, " + SCRIPT["faithful"][0].lower() + SCRIPT["faithful"][1:], [FINDING])
    assert [s.text for s in kept] == [SCRIPT["faithful"]]
    assert [(d.text, d.reason) for d in dropped] == [("Yes", "yes/no from the local model")]


def test_cut_off_and_uncited_unsupported_text(checker):
    kept, dropped = checker.check(FLAGSHIP, "The stock market rose sharply on Tuesday. Exacerbation rates with", [FINDING])
    assert kept == [] and [d.reason for d in dropped] == ["cut off", "uncited"]


def test_agreement_rules_in_words():
    assert numbers("n = 1,277; rate 0.20 and 95% CI [1]") == {"1277", "0.2", "95"}
    assert polarity_reason(SCRIPT["polarity"], EXACERBATIONS).startswith("polarity disagrees")
    assert polarity_reason(SCRIPT["faithful"], EXACERBATIONS) is None
    assert numbers_reason("The rate was 0.07 vs 0.20.", EXACERBATIONS) == "numbers not in the evidence: 0.07, 0.2"
    reason = direction_reason("As-needed budesonide-formoterol was noninferior to budesonide maintenance.",
                              "budesonide-formoterol was inferior to budesonide maintenance therapy")
    assert reason.startswith("direction disagrees: 'inferior' in the") and "'noninferior' in the claim" in reason
    assert direction_reason("Exacerbation rates were higher.", EXACERBATIONS) is not None


def test_the_pipeline_shows_only_checked_sentences(asker):
    fake = Asker(asker.settings, index="small", embedder=asker.embedder,
                 generator=FakeGenerator(f"{SCRIPT['polarity']} {SCRIPT['echo']}"))
    answer = fake.ask(FLAGSHIP)
    assert not answer.abstained and answer.bottom_line == [] and answer.answer == ""
    assert {d.reason for d in answer.dropped} == {"polarity", "echoes the question"}
    assert answer.findings[0].pmid == "29768149"
    system, user = fake.generator.last_prompt
    assert user == build_prompt(FLAGSHIP, answer.findings[: asker.settings.answer.prompt_findings])
    assert "[1] " in user and "not instructions" in system and len(user) < 2000
