"""Vitals and labs in a case turned into findings by a reference-range table whose every row names its source.

``heart rate 135`` becomes Tachycardia and ``BP 70/40`` Hypotension. The ranges are adults'. For children only the
side of a row that is abnormal at any age applies (a heart rate under 60, a blood pressure over 140/90): children's
normal heart and breathing rates are higher and their blood pressure lower, and depend on age.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SIRS = ("Bone RC et al. ACCP/SCCM consensus: definitions for sepsis and organ failure (SIRS criteria). "
        "Chest 1992;101:1644-55")
ESC_ESH = ("Williams B et al. 2018 ESC/ESH Guidelines for the management of arterial hypertension. "
           "Eur Heart J 2018;39:3021-104")
SHOCK = ("Cecconi M et al. Consensus on circulatory shock and hemodynamic monitoring. Intensive Care Med "
         "2014;40:1795-815")
BTS = ("O'Driscoll BR et al. BTS guideline for oxygen use in adults (target SpO2 94-98%). "
       "Thorax 2017;72(Suppl 1):ii1-ii90")
WHO_HB = ("WHO. Haemoglobin concentrations for the diagnosis of anaemia and assessment of severity "
          "(WHO/NMH/NHD/MNM/11.1), 2011")
MEDLINEPLUS = "MedlinePlus (NLM), {test}: normal range {normal}, https://medlineplus.gov/lab-tests/{page}/"
ADA = "American Diabetes Association. Classification and diagnosis of diabetes. Diabetes Care 2024;47(Suppl 1):S20-S42"

@dataclass(frozen=True)
class Range:
    """One row of the table: a measurement outside ``low``-``high`` is the named finding."""

    measure: str
    low: float | None
    high: float | None
    below: str  # the HPO term named when the value is below ``low``
    above: str
    source: str
    adults_only: bool = True
    # Below the adult low or above the adult high that is abnormal at any age too (a child's heart rate under 60 is
    # bradycardia, a blood pressure over 140/90 is high): the sides of an adults-only row that still apply to children.
    child_low: bool = False
    child_high: bool = False


RANGES: dict[str, Range] = {
    "heart rate": Range("heart rate", 60, 100, "Bradycardia", "Tachycardia",
                        SIRS + " (>90/min); adult normal 60-100/min", child_low=True),
    "respiratory rate": Range("respiratory rate", 12, 20, "Bradypnea", "Tachypnea", SIRS + " (>20/min)", child_low=True),
    "temperature": Range("temperature", 36.0, 38.0, "Hypothermia", "Fever", SIRS + " (>38 or <36 C)", adults_only=False),
    "systolic": Range("systolic blood pressure", 90, 139, "Hypotension", "Hypertension",
                      SHOCK + " (systolic <90 mmHg); " + ESC_ESH + " (>=140/90 mmHg)", child_high=True),
    "diastolic": Range("diastolic blood pressure", None, 89, "", "Hypertension", ESC_ESH, child_high=True),
    "oxygen saturation": Range("oxygen saturation", 94, None, "Hypoxemia", "", BTS, adults_only=False),
    "hemoglobin": Range("hemoglobin", 12.0, None, "Anemia", "", WHO_HB + " (<12 g/dL non-pregnant women, <13 men)"),
    "white blood cells": Range("white blood cells", 4000, 12000, "Leukopenia", "Leukocytosis",
                               SIRS + " (>12,000 or <4,000/uL)"),
    "platelets": Range("platelets", 150000, None, "Thrombocytopenia", "", MEDLINEPLUS.format(
        test="Complete blood count", normal="150,000-400,000/uL", page="complete-blood-count"), adults_only=False),
    "sodium": Range("sodium", 135, 145, "Hyponatremia", "Hypernatremia", MEDLINEPLUS.format(
        test="Sodium blood test", normal="135-145 mEq/L", page="sodium-blood-test"), adults_only=False),
    "potassium": Range("potassium", 3.5, 5.2, "Hypokalemia", "Hyperkalemia", MEDLINEPLUS.format(
        test="Potassium blood test", normal="3.7-5.2 mEq/L", page="potassium-blood-test"), adults_only=False),
    "glucose": Range("glucose", None, 200, "", "Hyperglycemia", ADA + " (random glucose >=200 mg/dL)", adults_only=False),
}

_NUM = r"(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)"
_IS = r"\s*(?:of|is|was|:|=|at|up to)?\s*"


def _measure(names: str, unit: str = "", before: str = r"\b") -> re.Pattern[str]:
    """``<one of names> [of|is|was|:] <number> [unit]``; the unit is group 2 when given."""
    return re.compile(rf"{before}(?:{names}){_IS}{_NUM}\s*{unit}", re.I)


_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("heart rate", _measure(r"heart rate|pulse(?: rate)?|HR|P", r"(?:/min|bpm|beats)?")),
    ("respiratory rate", _measure(r"respiratory rate|respirations|RR|R", r"(?:/min|breaths)?")),
    ("temperature", re.compile(rf"\b(?:(?:temperature|temp|T){_IS})?{_NUM}\s*(?:°|º|degrees?\s*)?\s*(C|F)\b(?!\w)",
                               re.I)),
    ("blood pressure", re.compile(rf"\b(?:blood pressure|BP){_IS}(\d{{2,3}})\s*/\s*(\d{{2,3}})", re.I)),
    ("oxygen saturation", _measure(r"oxygen saturation|O2 sat(?:uration)?|SpO2|sat(?:uration)?|saturating", "%")),
    ("hemoglobin", _measure(r"hemoglobin|haemoglobin|Hgb|Hb", r"(g/dl|g/l)?")),
    ("white blood cells", _measure(r"white blood cell count|white blood cells|white count|WBC(?: count)?|leukocytes?",
                                   r"(k|x ?10\^?9|/mm3|/uL|/μL)?")),
    ("platelets", _measure(r"platelets?(?: count)?|plt", r"(k|x ?10\^?9)?")),
    ("sodium", _measure(r"sodium|Na\+?", r"\b", before=r"(?<!excretion of )\b")),
    ("potassium", _measure(r"potassium|K\+?", r"\b")),
    ("glucose", _measure(r"glucose|blood sugar", r"(mg/dl|mmol/l)?")),
]


# Values outside these bounds are not read as that measure (a percentage after "sodium", a date after "P").
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "heart rate": (20, 250), "respiratory rate": (4, 80), "temperature": (30, 45), "systolic": (40, 280),
    "diastolic": (20, 180), "oxygen saturation": (40, 100), "hemoglobin": (2, 25), "white blood cells": (100, 200_000),
    "platelets": (1000, 2_000_000), "sodium": (100, 180), "potassium": (1.5, 9.5), "glucose": (20, 2000),
}


@dataclass(frozen=True)
class Measurement:
    """A value read in the case and the finding the table makes of it (``finding`` empty when in range)."""

    measure: str
    value: float
    words: str
    start: int
    end: int
    finding: str
    rule: str
    source: str


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _judge(key: str, value: float, adult: bool) -> tuple[str, str]:
    row = RANGES[key]
    child = row.adults_only and not adult
    if row.low is not None and value < row.low and row.below and (not child or row.child_low):
        return row.below, f"{row.measure} {value:g} < {row.low:g}" + (" (abnormal at any age)" if child else "")
    if row.high is not None and value > row.high and row.above and (not child or row.child_high):
        return row.above, f"{row.measure} {value:g} > {row.high:g}" + (" (abnormal at any age)" if child else "")
    if child:
        return "", f"{row.measure}: adult range not applied (not an adult)"
    return "", f"{row.measure} {value:g} within {row.low if row.low is not None else ''}-{row.high or ''}"


def read_measurements(text: str, adult: bool = True) -> list[Measurement]:
    """Every vital sign and lab value ``text`` states, with the finding its reference range makes of it."""
    out: list[Measurement] = []
    taken: list[tuple[int, int]] = []
    for key, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            if any(s < match.end() and match.start() < e for s, e in taken):
                continue
            values: list[tuple[str, float]] = []
            if key == "blood pressure":
                values = [("systolic", _number(match.group(1))), ("diastolic", _number(match.group(2)))]
            elif key == "temperature":
                value = _number(match.group(1))
                if match.group(2).upper() == "F":
                    value = round((value - 32) * 5 / 9, 1)
                values = [(key, value)]
            else:
                value = _number(match.group(1))
                unit = (match.group(2) or "").lower() if match.lastindex and match.lastindex >= 2 else ""
                if key == "hemoglobin" and unit == "g/l":
                    value /= 10
                if key in ("white blood cells", "platelets") and (unit.startswith("k") or "10" in unit or value < 1000):
                    value *= 1000
                if key == "glucose" and unit == "mmol/l":
                    value *= 18
                values = [(key, value)]
            taken.append((match.start(), match.end()))
            for measure, value in values:
                low, high = PLAUSIBLE[measure]
                if not low <= value <= high:
                    continue
                finding, rule = _judge(measure, value, adult)
                out.append(Measurement(measure, value, match.group(0).strip(), match.start(), match.end(), finding,
                                       rule, RANGES[measure].source))
    return sorted(out, key=lambda m: m.start)
