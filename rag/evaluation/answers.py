"""Answers to BioASQ questions scored against the experts' ideal answers, setting by setting."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from rag.evaluation.metrics import rouge

ANSWER_SETTINGS = ("default", "findings-only", "generated", "lead")
# The default answer with another generator configuration, on the same evidence: ``base-generator`` is the installed
# SmolLM2-135M-Instruct without the weights trained for the bottom line.
GENERATOR_SETTINGS = {"base-generator": {"adapter": ""}}
_BOTTOM_LINE = ("default", *GENERATOR_SETTINGS)
# Findings only, with the key-finding sentences scored by this ``answer.sentence_scorer`` whatever the settings say.
SCORER_SETTINGS = {"findings-cosine": "cosine", "findings-reranker": "reranker"}


def evaluate_answers(asker, questions: list[dict], settings: Iterable[str] = ANSWER_SETTINGS,
                     progress: Callable[[int], None] | None = None) -> dict:
    """Answers to BioASQ questions (``bioasq_answer_questions``) scored against the experts' ideal answers.

    Settings, each over the same questions and the same retrieved evidence (top ``retrieval.k``):
    ``default`` (key findings and the checked bottom line), ``findings-only`` (no generation), ``generated`` (the
    previous design: the model writes the answer from the passages) and ``lead`` (the first sentence of each of the
    top 3 records); ``findings-cosine`` and ``findings-reranker`` are ``findings-only`` with the key-finding sentences
    scored by that ``answer.sentence_scorer``; ``base-generator`` is ``default`` with the base model writing the
    bottom line instead of the trained one (``GENERATOR_SETTINGS``). The scored text is
    ``Answer.summary(answer.summary_findings)``; for ``generated`` the verified sentences, for ``lead`` the 3
    sentences.

    Per setting: ROUGE-2 and ROUGE-SU4 F1 (best over the references), abstention when a gold document is among the
    evidence, the share of shown sentences that echo the question, bottom-line survival and drop reasons, latency.
    """
    import time

    import numpy as np

    from rag.bottom_line import echo_detail, prompt_formatting
    from rag.findings import abstract_sentences

    n_summary = asker.settings.answer.summary_findings
    threshold = asker.settings.answer.echo_threshold
    rows: dict[str, list[dict]] = {s: [] for s in settings}
    extractors = {s: asker.findings for s in settings}
    for s in settings:
        if s in SCORER_SETTINGS:
            from rag.sentence_scorers import finding_extractor

            answer_settings = asker.settings.answer.model_copy(update={"sentence_scorer": SCORER_SETTINGS[s]})
            extractors[s] = finding_extractor(answer_settings, asker.embedder, asker.settings.paths.cache_dir)
    from rag.generation import load_generator

    # Only the settings that name another generator load one here; the configured one loads when first used.
    generators = {s: load_generator(asker.settings.generator.model_copy(update=GENERATOR_SETTINGS[s]),
                                    asker.settings.paths.cache_dir) for s in settings if s in GENERATOR_SETTINGS}
    configured, configured_generator = asker.findings, asker._generator
    for q in questions:
        for setting in settings:
            started = time.perf_counter()
            asker.findings = extractors[setting]
            asker._generator = generators.get(setting, configured_generator)
            if setting == "lead":
                evidence = asker.retriever.search(q["body"], asker.settings.retrieval.k)
                firsts = [abstract_sentences([tuple(s) for s in e.sections] or [("", "", e.abstract)]) for e in evidence]
                shown = [s[0].text for s in firsts[:3] if s]
                text, answer = " ".join(shown), None
            else:
                kwargs = {"generated": {"mode": "generated"}, "findings-only": {"bottom_line": False},
                          **{name: {"bottom_line": False} for name in SCORER_SETTINGS}}.get(setting, {})
                answer = asker.ask(q["body"], **kwargs)
                evidence = answer.evidence
                text = answer.summary(0 if setting == "generated" else n_summary)
                shown = [s.text for s in answer.bottom_line] + [x for f in answer.findings for x in f.sentences]
            elapsed = time.perf_counter() - started
            gold_in = bool(set(q["gold"]) & {e.pmid for e in evidence})
            scores = rouge(text, q["ideal"]) if text else {"rouge2": 0.0, "su4": 0.0}
            echoes = [s for s in shown if echo_detail(q["body"], s, asker.embedder, threshold)]
            row = {"id": q["id"], "task": q["task"], "type": q["type"], "text": text, **scores, "seconds": elapsed,
                   "gold_in_evidence": gold_in, "abstained": bool(answer and answer.abstained),
                   "shown_sentences": len(shown), "echoes": echoes}
            if answer is not None:
                row.update(findings_seconds=answer.timings.findings, model=answer.model)
                row.update(bottom_line=[s.text for s in answer.bottom_line], abstain_reason=answer.abstain_reason,
                           dropped=[(d.text, d.reason) for d in answer.dropped], pmids=[e.pmid for e in evidence],
                           findings=[f.model_dump(include={"number", "pmid", "sentences", "best", "design", "year",
                                                           "sample_size", "section"}) for f in answer.findings])
            rows[setting].append(row)
            if setting not in generators:  # the configured generator, once a setting has loaded it
                configured_generator = asker._generator
        asker.findings, asker._generator = configured, configured_generator
        if progress:
            progress(1)
    out: dict = {}
    for setting, rs in rows.items():
        with_gold = [r for r in rs if r["gold_in_evidence"]]
        shown = sum(r["shown_sentences"] for r in rs)
        summary = {
            "n": len(rs),
            "rouge2": round(float(np.mean([r["rouge2"] for r in rs])), 4),
            "su4": round(float(np.mean([r["su4"] for r in rs])), 4),
            "abstained_with_gold": round(sum(r["abstained"] for r in with_gold) / max(1, len(with_gold)), 4),
            "gold_in_evidence": len(with_gold),
            "echo_share": round(sum(len(r["echoes"]) for r in rs) / max(1, shown), 4),
            "p50_s": round(float(np.median([r["seconds"] for r in rs])), 3),
        }
        if any("findings_seconds" in r for r in rs):
            summary["findings_p50_s"] = round(float(np.median([r.get("findings_seconds", 0.0) for r in rs])), 3)
        if setting in _BOTTOM_LINE:
            summary["model"] = next((r["model"] for r in rs if r.get("model")), "")
            generated = [r for r in rs if not r["abstained"]]
            summary["bottom_line_survival"] = round(
                sum(bool(r["bottom_line"]) for r in generated) / max(1, len(generated)), 4)
            summary["bottom_line_shown_of_all"] = round(sum(bool(r["bottom_line"]) for r in rs) / max(1, len(rs)), 4)
            summary["drop_reasons"] = dict(Counter(reason for r in rs for _, reason in r["dropped"]).most_common())
            summary["shown_with_echo_or_leak"] = sum(
                1 for r in rs for text in r["bottom_line"] if text in r["echoes"] or prompt_formatting(text))
        out[setting] = {**summary, "per_question": rs}
    return out


def answers_table(results: dict) -> str:
    """A markdown table of ``evaluate_answers``' summaries, and the drop reasons of each bottom-line setting."""
    lines = ["| setting | n | ROUGE-2 | ROUGE-SU4 | abstained with gold evidence | echo share | bottom line shown "
             "| findings p50 | p50 |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        survival = f"{r['bottom_line_survival']:.1%}" if "bottom_line_survival" in r else "-"
        findings = f"{r['findings_p50_s']:.2f} s" if "findings_p50_s" in r else "-"
        lines.append(f"| {name} | {r['n']} | {r['rouge2']:.4f} | {r['su4']:.4f} | {r['abstained_with_gold']:.1%} "
                     f"({r['gold_in_evidence']} with gold) | {r['echo_share']:.1%} | {survival} | {findings} "
                     f"| {r['p50_s']:.2f} s |")
    for name, r in results.items():
        if "drop_reasons" in r:
            lines.append("")
            lines.append(f"{name} ({r.get('model', '')}): dropped bottom-line sentences by reason: "
                         + (", ".join(f"{k} {v}" for k, v in r["drop_reasons"].items()) or "none")
                         + f"; shown sentences echoing the question or carrying prompt text: "
                         f"{r['shown_with_echo_or_leak']}")
    return "\n".join(lines)
