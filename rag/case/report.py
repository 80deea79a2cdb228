"""The case report as Markdown (the CLI's ``--markdown`` and the app's download). Every piece of text from the case or
an abstract is escaped: a ``<script>`` in either is shown as text, never run or rendered."""

from __future__ import annotations

import html
import re
from collections import Counter

from pubmed_rag.types import CaseReport, Finding

_MD = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def text(value: str) -> str:
    """``value`` as literal Markdown text: HTML escaped, Markdown syntax backslashed."""
    return _MD.sub(r"\\\1", html.escape(value or "", quote=False))


def _finding(f: Finding) -> str:
    badge = " · ".join(p for p in (f.design, str(f.year) if f.year else "",
                                   f"n = {f.sample_size:,}" if f.sample_size else "") if p)
    return f"- \"{text(' '.join(f.sentences))}\" [{f.number}]" + (f" ({text(badge)})" if badge else "")


def redaction_counts(report: CaseReport) -> dict[str, int]:
    """How many identifiers of each kind were removed, in the order first met."""
    return dict(Counter(r.kind for r in report.redactions))


def to_markdown(report: CaseReport) -> str:
    """The whole report: problems, differential, evidence per problem, what was redacted or read as negated,
    references."""
    out = ["# Case analysis", "", f"_{text(report.notice)}_", "", f"Index: {text(report.index)}", ""]
    out += [f"**Warning:** {text(w)}" for w in report.warnings] + ([""] if report.warnings else [])
    if report.redactions:
        out += ["**Removed before analysis:** " + ", ".join(f"{n} × {text(k)}" for k, n in
                                                            redaction_counts(report).items()), ""]
    out += ["## The case as analysed (identifiers replaced)", "", "> " + text(" ".join(report.text.split())), ""]
    out += ["## Problem list", ""]
    for category in ("known condition", "active finding", "medication", "patient factor"):
        items = [p for p in report.problems if p.category == category]
        if items:
            out.append(f"**{category.capitalize()}s**")
            out += [f"- {text(p.name)}" + (" (possible)" if p.uncertain else "") + " — “"
                    + "”, “".join(text(w) for w in p.words) + "”" for p in items]
            out.append("")
    if report.negated:
        out += ["**Read as negated, about a relative or hypothetical (not used as evidence)**"]
        out += [f"- {text(m.concept)} — “{text(m.words)}” ({', '.join(_why(m))})" for m in report.negated]
        out.append("")
    out += ["## Differential from the literature (suggestions, not a diagnosis)", ""]
    if not report.differential:
        out += ["No retrieved record ties a diagnosis to the case's findings.", ""]
    for i, c in enumerate(report.differential, start=1):
        cites = "".join(f"[{n}]" for n in c.records[:6])
        out.append(f"{i}. **{text(c.name)}** {cites} — explains: {text(', '.join(c.explains)) or 'none'}; "
                   f"not explained: {text(', '.join(c.unexplained)) or 'none'}")
        out += [f"    - \"{text(q.sentence)}\" [{q.number}]" for q in c.quotes]
    out.append("")
    out += ["## Evidence per problem", ""]
    for pe in report.evidence:
        boost = f" (searched for: {text(', '.join(pe.boosted_by))})" if pe.boosted_by else ""
        out.append(f"### {text(pe.problem)}: {pe.purpose}{boost}")
        out += [_finding(f) for f in pe.findings] or ["- No finding in the index answers this."]
        out.append("")
    out += ["## References", ""]
    for e in report.references:
        meta = " · ".join(p for p in (e.journal, str(e.year) if e.year else "", e.grade_label) if p)
        out.append(f"{e.number}. {text(e.display_title)} {text(meta)}. PMID {text(e.pmid)}, {e.url}")
    return "\n".join(out) + "\n"


def _why(mention) -> list[str]:
    return [name for name in ("negated", "family", "hypothetical") if getattr(mention, name)]
