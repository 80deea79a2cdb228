"""Patient factors that change what evidence applies: age group, sex, pregnancy, kidney or liver impairment,
allergies, smoking and current medications, each with the words of the case it was read from."""

from __future__ import annotations

import re
from collections.abc import Callable

from pubmed_rag.types import PatientFactors

# MeSH's age-group headings (the publication's population filter): (upper bound in years, heading).
AGE_GROUPS: list[tuple[float, str]] = [
    (1 / 12, "Infant, Newborn"), (2, "Infant"), (6, "Child, Preschool"), (13, "Child"), (19, "Adolescent"),
    (45, "Adult"), (65, "Middle Aged"), (80, "Aged"), (200, "Aged, 80 and over"),
]
_AGE = re.compile(r"\b(\d{1,3})[\s-]*(year|yr|month|mo|week|wk|day)s?[\s-]*old\b|\b(\d{1,3})\s*(?:yo|y/o|y\.o\.)\b|"
                  r"\baged?\s+(\d{1,3})\b", re.I)
_UNIT_YEARS = {"year": 1.0, "yr": 1.0, "month": 1 / 12, "mo": 1 / 12, "week": 1 / 52, "wk": 1 / 52, "day": 1 / 365}
_FEMALE = re.compile(r"\b(woman|women|female|girl|lady|mother|she|her|pregnant|postpartum|post-partum)\b", re.I)
_MALE = re.compile(r"\b(man|men|male|boy|gentleman|father|he|his|him)\b", re.I)
_PREGNANT = re.compile(r"\b(pregnant|pregnancy|gestation(?:al)?|gravid|G\d+P\d+|weeks? of gestation|trimester|"
                       r"post-?partum|puerperal|given birth|gave birth|delivered (?:a|her|twins)|breast-?feeding)\b", re.I)
_NOT_PREGNANT = re.compile(r"\b(pregnancy test (?:is |was )?negative|negative (?:urine |serum )?pregnancy test|"
                           r"not pregnant|(?:hCG|gonadotropin)\)? (?:is |was )?negative)\b", re.I)
_WISH = re.compile(r"\b(?:become|get|getting|trying to|wants? to|plans? to|like to|hoping to|avoid)\s*$", re.I)
_KIDNEY = re.compile(r"\b(chronic kidney disease|CKD|renal (?:failure|insufficiency|impairment)|kidney (?:failure|"
                     r"disease|impairment)|on dialysis|hemodialysis|haemodialysis|end-stage renal|ESRD|"
                     r"acute kidney injury|AKI|elevated creatinine|high (?:BUN and )?creatinine)\b", re.I)
_LIVER = re.compile(r"\b(cirrhosis|hepatic (?:failure|impairment|insufficiency)|liver (?:failure|disease|impairment|"
                    r"cirrhosis)|hepatitis|Child-Pugh)\b", re.I)
_ALLERGY = re.compile(r"\ballerg(?:y|ies|ic) to ([\w\- ,]+?)(?:[.;]|$| and (?:she|he|takes|is))|"
                      r"\b([\w\-]+) allergy\b", re.I)
_SMOKER = re.compile(r"\b(smoker|smokes|smoking|cigarettes|pack[- ]years?|tobacco)\b", re.I)
_NON_SMOKER = re.compile(r"\b(non-?smoker|never smoked|does not smoke|doesn't smoke|denies (?:[\w ,]*?)?smoking|"
                         r"no (?:history of )?smoking|quit smoking|former smoker|ex-smoker)\b", re.I)
_MEDS_CUE = re.compile(r"\b(?:takes|taking|is on|was on|on|receiving|treated with|started on|prescribed|"
                       r"medications?(?: include| are|:)|drugs? include|therapy with|maintained on)\s+([^.;]{1,120})",
                       re.I)
_NO_MEDS = re.compile(r"\b(no medications|takes no medications|not on any medications|no regular medications|"
                      r"no current medications)\b", re.I)

# USAN/INN stems that mark a word as a drug name (https://www.ama-assn.org/about/united-states-adopted-names).
DRUG_STEMS = re.compile(
    r"(pril|sartan|olol|alol|statin|mab|nib|azole|cillin|cef\w*|mycin|micin|cycline|floxacin|prazole|dipine|tidine|"
    r"parin|xaban|gatran|triptan|setron|lukast|gliptin|gliflozin|glutide|formin|semide|thiazide|tiazide|pam|lam|"
    r"pidem|zepam|azepam|barbital|profen|fenac|coxib|sone|olone|asone|terol|tropium|vir|navir|conazole|fungin|"
    r"oxacin|penem|bactam|platin|taxel|rubicin|trexate|mustine|tinib|lizumab|ximab|zumab|umab|cept|kinra|afil|"
    r"tadine|triptyline|ipramine|oxetine|aline|faxine|azodone|apine|idone|peridol|lithium|warfarin|heparin|insulin|"
    r"aspirin|metformin|digoxin|amiodarone|levothyroxine|prednisone|morphine|oxycodone|codeine|fentanyl|tramadol|"
    r"acetaminophen|paracetamol|ibuprofen|naproxen|clopidogrel|allopurinol|colchicine|methotrexate|"
    r"hydroxychloroquine|estrogen|estradiol|progesterone|contraceptives?|levonorgestrel|tamoxifen|ondansetron|"
    r"furosemide|spironolactone|nitroglycerin|albuterol|salbutamol|budesonide|fluticasone|montelukast|"
    r"valproate|carbamazepine|phenytoin|levetiracetam|lamotrigine|gabapentin|pregabalin|sertraline|citalopram|"
    r"escitalopram|fluoxetine|paroxetine|bupropion|mirtazapine|quetiapine|olanzapine|risperidone|haloperidol|"
    r"clozapine|vancomycin|amoxicillin|doxycycline|azithromycin|ciprofloxacin|nitrofurantoin|trimethoprim|"
    r"sulfamethoxazole|chloroquine|mefloquine|atovaquone|proguanil|primaquine|isoniazid|rifampin|zidovudine)$", re.I)
_NOT_DRUGS = frozenset("examination sulfa penicillin season the a an her his this that with medications medication no "
                       "any room air oxygen hospice".split())


def age_group(years: float) -> str:
    """MeSH age-group heading for an age in years."""
    return next(name for bound, name in AGE_GROUPS if years < bound)


def is_drug_name(word: str, known: Callable[[str], bool] = lambda w: False) -> bool:
    """Whether ``word`` names a drug: the index's chemical names (``known``) or a USAN/INN stem."""
    word = word.strip().lower()
    return len(word) > 3 and word not in _NOT_DRUGS and (known(word) or bool(DRUG_STEMS.search(word)))


def read_factors(text: str, known_drug: Callable[[str], bool] = lambda w: False) -> PatientFactors:
    """Age (MeSH age group), sex, pregnancy, kidney/liver impairment, allergies, smoking and current medications."""
    factors = PatientFactors()
    words: dict[str, str] = {}
    match = _AGE.search(text)
    if match:
        if match.group(1):
            years = int(match.group(1)) * _UNIT_YEARS[match.group(2).lower()]
        else:
            years = float(match.group(3) or match.group(5))
        factors.age_years = round(years, 2)
        factors.age_group = age_group(years)
        words["age"] = match.group(0)
    female, male = _FEMALE.findall(text), _MALE.findall(text)
    if female or male:
        factors.sex = "female" if len(female) >= len(male) else "male"
        words["sex"] = (female or male)[0]
    pregnant = next((m for m in _PREGNANT.finditer(text) if not _WISH.search(text[max(0, m.start() - 30):m.start()])),
                    None)
    if pregnant and not _NOT_PREGNANT.search(text) and factors.sex != "male":
        factors.pregnant = True
        words["pregnancy"] = pregnant.group(0)
    for name, pattern in (("kidney impairment", _KIDNEY), ("liver impairment", _LIVER)):
        hit = pattern.search(text)
        if hit:
            setattr(factors, name.replace(" ", "_"), True)
            words[name] = hit.group(0)
    for hit in _ALLERGY.finditer(text):
        items = re.split(r",\s*|\s+and\s+|\s+or\s+", hit.group(1) or hit.group(2))
        factors.allergies += [i.strip() for i in items if i.strip() and i.strip().lower() not in ("no", "known")]
        words.setdefault("allergies", hit.group(0))
    non_smoker, smoker = _NON_SMOKER.search(text), _SMOKER.search(text)
    if non_smoker:
        factors.smoking = "former" if re.search(r"quit|former|ex-", non_smoker.group(0), re.I) else "never"
        words["smoking"] = non_smoker.group(0)
    elif smoker:
        factors.smoking = "current"
        words["smoking"] = smoker.group(0)
    if not _NO_MEDS.search(text):
        for hit in _MEDS_CUE.finditer(text):
            for word in re.findall(r"[A-Za-z][\w-]+", hit.group(1))[:8]:
                if is_drug_name(word, known_drug) and word.lower() not in (m.lower() for m in factors.medications):
                    factors.medications.append(word.strip())
                    words.setdefault("medications", hit.group(0).strip())
    factors.words = words
    return factors
