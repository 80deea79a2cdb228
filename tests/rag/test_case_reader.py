"""The case reader on real TREC CDS 2014 cases (data/cases): concepts, ConText flags, vitals, patient factors."""

from __future__ import annotations

import csv

import pytest

from rag.case.factors import age_group, read_factors
from rag.case.measurements import read_measurements
from rag.case.reader import CaseReader
from rag.case.vocabulary import SYNONYMS, base_vocabulary, index_vocabulary, is_diagnosis
from tests.conftest import ROOT

CASES = ROOT / "data" / "cases"


def topics() -> list[str]:
    with open(CASES / "2014_description.csv", encoding="utf-8", newline="") as fh:
        return [row[0] for row in csv.reader(fh)]


@pytest.fixture(scope="module")
def reader() -> CaseReader:
    return CaseReader(base_vocabulary())


def concepts(mentions, positive=True) -> set[str]:
    return {m.concept for m in mentions if m.positive == positive and not (positive and m.negated)}


def test_vocabulary_has_hpo_findings_synonyms_and_orphanet_diseases():
    vocab = base_vocabulary()
    assert vocab.concepts[vocab.phrases["tachycardia"]].id == "HP:0001649"
    assert vocab.concepts[vocab.phrases["shortness of breath"]].name == "Dyspnea"
    assert vocab.concepts[vocab.phrases["diarrhoea"]].name == "Diarrhea"  # British spelling
    kawasaki = vocab.concepts[vocab.phrases["kawasaki disease"]]
    assert kawasaki.kind == "condition" and kawasaki.source == "Orphanet" and is_diagnosis(kawasaki)
    assert not is_diagnosis(vocab.concepts[vocab.phrases["hepatomegaly"]])  # a sign, not a diagnosis
    assert len(vocab.concepts) > 20000


def test_every_synonym_names_an_hpo_term():
    vocab = base_vocabulary()
    unresolved = [phrase for phrase in SYNONYMS if vocab.phrases.get(phrase) is None
                  or vocab.concepts[vocab.phrases[phrase]].source != "HPO via synonym table"]
    assert not unresolved


def test_index_vocabulary_reads_conditions_and_drugs_and_natural_order():
    vocab = index_vocabulary({("mesh", "Diabetes Mellitus, Type 2"): 3, ("mesh", "Humans"): 90,
                              ("chemical", "Budesonide"): 1})
    assert vocab.concepts[vocab.phrases["type 2 diabetes mellitus"]].id == "MESH:Diabetes Mellitus, Type 2"
    assert vocab.concepts[vocab.phrases["budesonide"]].kind == "drug"
    assert "humans" not in vocab.phrases  # a heading that is not a condition


def test_topic_1_negations_and_positives(reader):
    mentions = reader.read(topics()[0])
    assert {"Chest pain", "Hypertension", "Obesity", "Nausea", "Dyspnea"} <= concepts(mentions)
    negated = {m.concept for m in mentions if m.negated}
    assert {"Diabetes mellitus", "Hypercholesterolemia"} <= negated  # "She denies smoking, diabetes, ..."
    assert not negated & concepts(mentions)


def test_topic_14_list_negation(reader):
    mentions = reader.read(topics()[13])  # "He has had no fever, cough, rash or diarrhea."
    assert {m.concept for m in mentions if m.negated} == {"Fever", "Cough", "Skin rash", "Diarrhea"}


def test_informants_are_not_family_history(reader):
    # Topic 2: "Parents report that prior to the onset of fever and cough, he had loose stools."
    mentions = reader.read(topics()[1])
    assert {"Fever", "Cough", "Diarrhea", "Pulmonary infiltrates"} <= concepts(mentions)
    assert not any(m.family for m in mentions)
    # Topic 27: the siblings' adenomas are family history
    text = "Both siblings were found to have hundreds of colonic adenomas; his mother had breast cancer."
    assert all(m.family for m in reader.read(text))


def test_non_prefix_and_free_fluid(reader):
    mentions = reader.read(topics()[20])  # "a delicate non-palpable purpura on her calves"
    assert "Palpable purpura" in {m.concept for m in mentions if m.negated}
    mentions = reader.read(topics()[16])  # "hepatomegaly and abundant free intraperitoneal fluid"
    assert "Hepatomegaly" in concepts(mentions)


def test_vitals_become_findings_with_their_source(reader):
    mentions = reader.read(topics()[16])  # topic 17: "HR of 132 bpm, BP 80/40"
    vitals = {m.concept: m for m in mentions if m.kind == "measurement"}
    assert set(vitals) == {"Tachycardia", "Hypotension"}
    assert vitals["Tachycardia"].words == "HR of 132 bpm" and "SIRS" in vitals["Tachycardia"].detail
    assert "systolic <90 mmHg" in vitals["Hypotension"].detail


def test_reference_ranges():
    found = {m.measure: m.finding for m in read_measurements(
        "Temp 101.3 F, SpO2 88%, WBC 17,580/mm3, platelets 90,000, sodium 128, potassium 6.1, glucose 450 mg/dL, "
        "Hb 9.1 g/dL. Fractional excretion of sodium is 3.3%.")}
    assert found == {"temperature": "Fever", "oxygen saturation": "Hypoxemia", "white blood cells": "Leukocytosis",
                     "platelets": "Thrombocytopenia", "sodium": "Hyponatremia", "potassium": "Hyperkalemia",
                     "glucose": "Hyperglycemia", "hemoglobin": "Anemia"}
    # Topic 18, a 6-month-old: pulse 141/min is not judged by the adult range.
    infant = read_measurements(topics()[17], adult=False)
    assert [m.finding for m in infant if m.measure == "heart rate"] == [""]
    # Topic 25, an 8-year-old: "heart rate was 52/min, blood pressure of 155/98" is abnormal at any age.
    child = {m.measure: m.finding for m in read_measurements(topics()[24], adult=False)}
    assert child == {"heart rate": "Bradycardia", "systolic": "Hypertension", "diastolic": "Hypertension"}


def test_patient_factors_from_real_cases():
    cases = topics()
    f = read_factors(cases[6])  # topic 7
    assert f.age_group == "Adult" and f.sex == "female" and f.medications == ["lithium", "zolpidem"]
    assert read_factors(cases[0]).smoking == "never" and read_factors(cases[18]).smoking == "current"
    assert read_factors(cases[12]).pregnant  # "3 weeks post-partum"
    assert not read_factors(cases[27]).pregnant  # "negative urine pregnancy test"
    assert read_factors(cases[3]).age_group == "Child, Preschool" and read_factors(cases[17]).age_group == "Infant"
    assert read_factors(cases[13]).age_group == "Aged, 80 and over"
    assert age_group(0.02) == "Infant, Newborn" and age_group(70) == "Aged"
