"""Agreement rules: direction, negation and numbers, on sentences from the NEJM SYGMA 1 abstract and PubMedQA."""

from __future__ import annotations

from rag.agreement import (
    direction_reason,
    disagreement,
    negated,
    number_conflict_reason,
    numbers,
    numbers_reason,
    polarity_reason,
)

CONCLUSION = ("In patients with mild asthma, as-needed budesonide-formoterol provided superior asthma-symptom control to "
              "as-needed terbutaline, assessed according to electronically recorded weeks with well-controlled asthma, "
              "but was inferior to budesonide maintenance therapy.")
RATES = ("The annual rate of severe exacerbations was 0.20 with terbutaline, 0.07 with budesonide-formoterol, and 0.09 "
         "with budesonide maintenance therapy; the rate ratio was 0.36 (95% CI, 0.27 to 0.49).")


def test_direction_names_both_words():
    claim = "As-needed budesonide-formoterol was noninferior to budesonide maintenance"
    assert direction_reason(claim, CONCLUSION) == "direction disagrees: 'inferior' in the abstract, 'noninferior' in the claim"
    assert direction_reason("Exacerbation rates were lower with budesonide-formoterol than with terbutaline",
                            "Exacerbation rates were similar and were lower than the rate with terbutaline.") is None
    assert "'decreased' in the abstract, 'increased' in the claim" in direction_reason(
        "Mortality increased with treatment", "Mortality decreased with treatment")


def test_polarity_is_scoped_to_what_the_negation_governs():
    assert polarity_reason("Budesonide reduced exacerbations", "Budesonide did not reduce exacerbations") == \
        "polarity disagrees: 'not reduce' in the abstract, 'reduced' in the claim"
    assert "'no difference' in the claim" in polarity_reason(
        "There was no significant difference in mortality", "Mortality differed significantly between the groups")
    # Both negated, or the negation governs something else: no disagreement.
    assert polarity_reason("21% had no respiratory symptoms", "No respiratory symptoms were seen in 21%") is None
    assert polarity_reason("No patients with diabetes died", "Patients with diabetes had higher mortality") is None
    assert negated("failed to reach significance") and not negated("Notably, rates fell")


def test_numbers_ignore_names_and_keep_measurements():
    assert numbers("COVID-19 and IL-6 in 1,277 patients: 34.4% vs 31.10%, -3.2") == {"1277", "34.4", "31.1", "-3.2"}
    assert numbers_reason("rate ratio 0.36", RATES) is None
    assert numbers_reason("rate ratio 0.63", RATES) == "numbers not in the evidence: 0.63"
    assert number_conflict_reason("the rate ratio was 0.63", RATES) == \
        "numbers disagree: 0.63 in the claim, 0.07, 0.09, 0.2 in the abstract"
    # A count or a year the evidence does not repeat is not a changed figure; nor is one stated elsewhere.
    assert number_conflict_reason("In 2018, 3849 patients were randomized", RATES) is None
    assert number_conflict_reason("the odds ratio was 1.14", RATES, context="odds ratio, 1.14") is None


def test_disagreement_returns_the_first_rule():
    assert disagreement("X was not associated with Y", "X was associated with Y")[0] == "polarity"
    assert disagreement("budesonide-formoterol was noninferior to budesonide maintenance", CONCLUSION)[0] == "direction"
    assert disagreement("Exacerbation rates were lower than with terbutaline", RATES) is None
