"""Evaluation metrics and data loaders on real files and hand-checkable rankings."""

from __future__ import annotations

import json
import math

import pytest

from rag.evaluation import (
    Question,
    bioasq_snippet_records,
    calibrate_support,
    decide,
    evaluate_qa,
    parse_decision,
    qa_metrics,
    retrieval_metrics,
    roc_auc,
)
from rag.evaluation.qa import QA_SYSTEM, qa_prompt
from rag.pipeline import Asker
from tests.conftest import FakeGenerator, pubmedqa_questions


def test_retrieval_metrics_by_hand():
    m = retrieval_metrics([["a", "x", "b"], ["y", "z"]], [["a", "b"], ["z"]])
    assert m["recall@1"] == 0.25  # (1/2 + 0) / 2
    assert m["recall@5"] == 1.0
    assert m["mrr"] == 0.75  # (1 + 1/2) / 2
    ndcg_q1 = (1 + 1 / 2) / (1 + 1 / 1.5849625007211562)
    assert m["ndcg@10"] == pytest.approx((ndcg_q1 + 1 / 1.5849625007211562) / 2, abs=1e-4)


def test_qa_metrics_and_decision_rule():
    assert parse_decision("Yes. Because ...") == "yes"
    assert parse_decision("The answer is: no, it does not") == "no"
    assert parse_decision("Unclear from the evidence") == "maybe"
    m = qa_metrics(["yes", "no", "yes", "maybe"], ["yes", "no", "no", "maybe"], ("yes", "no", "maybe"))
    assert m["accuracy"] == 0.75 and m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3, abs=1e-4)


def test_roc_auc():
    assert roc_auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert roc_auc([0.5], [0.5]) == 0.5


def test_bioasq_snippet_documents_from_real_golden_file():
    from tests.conftest import FIXTURES

    raw = json.loads((FIXTURES / "bioasq_9B1_sample.json").read_text())["questions"]
    docs = {r.pmid: r for r in bioasq_snippet_records(raw, exclude=set())}
    assert docs and all(r.title or r.abstract for r in docs.values())
    first = raw[0]["snippets"][0]
    pmid = first["document"].rsplit("/", 1)[-1]
    assert " ".join(first["text"].split()) in (docs[pmid].title + " " + docs[pmid].abstract)


class ScoringGenerator(FakeGenerator):
    """Streams a fixed text and scores options by a fixed table (log-probabilities)."""

    def __init__(self, text: str, scores: dict[str, float]) -> None:
        super().__init__(text)
        self.scores = scores
        self.prompts: list[str] = []

    def choose(self, system: str, user: str, options: list[str]) -> dict[str, float]:
        self.prompts.append(user)
        return {o: self.scores.get(o, -30.0) for o in options}


def test_decision_rules_sum_the_forms_of_each_label():
    log = math.log
    scorer = ScoringGenerator("", {"yes": log(0.2), "Yes": log(0.3), "no": log(0.4), "maybe": log(0.05)})
    labels = ("yes", "no", "maybe")
    assert decide(scorer, "Is it?", [], labels) == "yes"  # 0.5 against 0.4
    assert scorer.prompts[-1] == qa_prompt("Is it?", "")
    # calibrated: 'no' is 0.42 / 0.15 of its content-free probability, 'yes' only 0.53 / 0.8
    assert decide(scorer, "Is it?", [], labels, content_free={"yes": 0.8, "no": 0.15, "maybe": 0.05}) == "no"
    assert decide(FakeGenerator("Maybe, the data are unclear."), "Is it?", [], ("yes", "no")) == "no"
    assert decide(FakeGenerator("Yes, it is."), "Is it?", [], ("yes", "no")) == "yes"


def test_real_generator_scores_the_options(asker):
    q = pubmedqa_questions()[0]
    evidence = asker.retriever.search(q["question"], 3)
    forms = ["yes", "Yes", "no", "No", "maybe", "Maybe"]
    scores = asker.generator.choose(QA_SYSTEM, qa_prompt(q["question"], "x"), forms)
    assert set(scores) == set(forms) and all(-60 < s < 0 for s in scores.values())
    assert sum(math.exp(s) for s in scores.values()) <= 1.0 + 1e-4  # distinct replies of one distribution
    assert decide(asker.generator, q["question"], evidence, ("yes", "no", "maybe")) in ("yes", "no", "maybe")


def test_qa_settings_on_real_pubmedqa_questions(asker):
    raw = pubmedqa_questions()[:6]
    questions = [Question(q["pmid"], q["question"], [q["pmid"]], q["final_decision"]) for q in raw]
    gold = [q.answer for q in questions]
    assert gold == ["yes", "no", "yes", "no", "maybe", "no"]
    off_topic = ScoringGenerator("The stock market rose sharply on Tuesday.", {"Yes": -0.1})
    fake = Asker(asker.settings, index="small", generator=off_topic, embedder=asker.embedder)
    labels = ("yes", "no", "maybe")

    got = evaluate_qa(fake, questions, labels, "retrieval", exclude_own=True)
    assert got["n"] == 6 and got["argmax"]["accuracy"] == round(2 / 6, 4) and got["argmax"]["predicted"] == {"yes": 6}
    assert off_topic.prompts[0] == qa_prompt("N/A", "[1] N/A")  # the content-free prompt, scored once
    own = fake.index.store.get(questions[0].qid).abstract
    assert all(own[:80] not in p for p in off_topic.prompts)  # PubMedQA*: the question's own abstract is excluded

    no_retrieval = evaluate_qa(fake, questions, labels, "no-retrieval", exclude_own=True)
    assert no_retrieval["calibrated"]["predicted"] == {"yes": 6} and off_topic.prompts[-1].startswith("Question:")
    verified = evaluate_qa(fake, questions, labels, "verified", exclude_own=True, max_new_tokens=8)
    # an unsupported answer makes the pipeline abstain, and an abstention is the decision 'maybe'
    assert verified["abstained"] == 6 and verified["argmax"]["predicted"] == {"maybe": 6}
    assert verified["argmax"]["accuracy"] == round(1 / 6, 4) and verified["argmax"]["accuracy_when_answered"] == 0.0
    assert verified["per_question"][4] == {"id": questions[4].qid, "gold": "maybe", "abstained": True,
                                           "argmax": "maybe", "calibrated": "maybe"}
    yes_no = evaluate_qa(fake, questions[:2], ("yes", "no"), "verified", exclude_own=True, max_new_tokens=8)
    assert yes_no["calibrated"]["predicted"] == {"abstained": 2} and yes_no["calibrated"]["accuracy"] == 0.0
    with pytest.raises(ValueError, match="unknown QA setting"):
        evaluate_qa(fake, questions, labels, "oracle", exclude_own=True)


def test_support_calibration_on_real_pubmedqa_items(asker):
    from tests.conftest import FIXTURES

    result = calibrate_support(FIXTURES / "pubmedqa_pqal_30.json", asker.scorer)
    assert result["claims"] == 64  # the conclusion sentences of the first 30 PubMedQA-L items
    assert result["auc"] > 0.9 and result["auc_hard"] < result["auc"]  # on-topic negatives are harder
    assert result["weak_threshold"] <= result["supported_threshold"]
    assert 0 <= result["hard_fpr_at_supported"] <= 1 and result["tpr_at_supported"] > 0.8


def test_rouge_su4_by_hand_and_rouge2_from_the_package():
    from rag.evaluation import rouge

    # unigrams a, b shared; skip-bigrams (a, b) shared of 3 each: 3 of 6 on both sides.
    assert rouge("a b c", ["x y", "a b d"]) == {"rouge2": 0.5, "su4": 0.5}
    assert rouge("The rate was lower [1].", ["the rates were lower"])["rouge2"] > 0  # stemmed, markers are numbers


def test_answers_evaluation_on_a_real_bioasq_summary_question(small_settings, embedder, generator_cache):
    from ingest.build import RecordsSource, ingest
    from rag.evaluation import bioasq_answer_questions, evaluate_answers, load_bioasq
    from tests.conftest import FIXTURES

    fixture = FIXTURES / "bioasq_9B1_sample.json"
    questions = bioasq_answer_questions([fixture])
    assert [(q["task"], q["type"], q["gold"]) for q in questions] == [("9B", "summary",
                                                                       ["27823966", "12899756", "12777642"])]
    ingest([RecordsSource("bioasq", bioasq_snippet_records(load_bioasq([fixture]), set()))], "small", small_settings,
           embedder=embedder)
    small_settings.paths.cache_dir = generator_cache
    faithful = "IFIT1 may interact with Rho/Rac guanine nucleotide exchange factor [1]."
    asker = Asker(small_settings, index="small", embedder=embedder, generator=FakeGenerator(faithful))
    out = evaluate_answers(asker, questions, ["default", "findings-only", "lead"])
    for name in ("default", "findings-only", "lead"):
        r = out[name]
        assert r["n"] == 1 and r["gold_in_evidence"] == 1 and r["abstained_with_gold"] == 0.0
        assert 0.1 < r["su4"] <= 1 and r["echo_share"] == 0.0
    default = out["default"]["per_question"][0]
    assert default["findings"][0]["pmid"] in questions[0]["gold"] and "IFIT1" in default["text"]
    assert out["default"]["bottom_line_survival"] in (0.0, 1.0)
    assert out["findings-only"]["per_question"][0]["bottom_line"] == []
