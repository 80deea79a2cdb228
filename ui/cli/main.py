"""``pubmed-rag``: a thin command-line shell over the library calls in ``ingest`` and ``rag``.

Every setting is a flag (``--embedding.batch_size 8``), built from the settings tree itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pubmed_rag.records import IngestError
from pubmed_rag.settings import Settings, iter_fields
from ui.cli.progress import TqdmProgress


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--section.name VALUE`` flag per setting, with the setting's description as help."""
    group = parser.add_argument_group("settings (also PUBMED_RAG_<SECTION>__<NAME> in the environment)")
    for name, info in iter_fields():
        # argparse %-formats help strings: a literal '%' in a description ("1.5% of questions") must be doubled.
        group.add_argument(f"--{name}", dest=f"set:{name}", default=None, metavar="VALUE",
                           help=(info.description or "").replace("%", "%%"))


def _add_common_flags(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """``-v`` (accepted before or after the subcommand) and, on subcommands, the setting flags."""
    # On subcommands the default is SUPPRESS so that `pubmed-rag -v ask ...` is not reset by the subparser.
    parser.add_argument("-v", "--verbose", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="show library logging, warnings and model-loading progress bars")
    if not top:
        _add_setting_flags(parser)


def _settings(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Settings:
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("set:") and v is not None}
    overrides.update({k: v for k, v in (extra or {}).items() if v is not None})
    return Settings.load(overrides)


def build_parser() -> argparse.ArgumentParser:
    """The ``pubmed-rag`` parser: one subcommand per task, every setting a flag on each."""
    parser = argparse.ArgumentParser(prog="pubmed-rag", description=__doc__.splitlines()[0])
    _add_common_flags(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="build or update an index from files or a live PubMed query")
    p.add_argument("files", nargs="*", type=Path, help="PubMed XML (.xml/.xml.gz), MEDLINE text or JSONL files")
    p.add_argument("--index", help="index name (default: paths.default_index)")
    p.add_argument("--query", help="PubMed query to fetch through E-utilities")
    p.add_argument("--mindate", help="earliest publication date (YYYY or YYYY/MM/DD)")
    p.add_argument("--maxdate", help="latest publication date")
    p.add_argument("--max", type=int, dest="max_records", help="fetch at most N records")
    p.add_argument("--allow-partial", action="store_true", dest="allow_partial",
                   help="publish what could be read when a file is truncated, malformed or missing (default: fail "
                   "and keep the served version); same as --ingest.allow_partial true")
    p.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="parse, chunk and embed on a Ray cluster (ADDRESS, or 'auto': this machine's cluster, else "
                   "a local one); same as --ingest.ray ADDRESS")
    _add_common_flags(p)

    p = sub.add_parser("index", help="list, describe, verify, compact or reshard indexes (compact: merge the vector "
                       "shards, drop deleted vectors, --index.type to change the type; reshard: split the record "
                       "store into --shards N, searched in parallel)")
    p.add_argument("action", choices=["list", "info", "verify", "compact", "reshard"])
    p.add_argument("name", nargs="?")
    p.add_argument("--shards", type=int, default=4, help="reshard: how many store shards (default 4)")
    _add_common_flags(p)

    p = sub.add_parser("ask", help="answer a question with cited PubMed evidence")
    p.add_argument("question")
    p.add_argument("--index", help="index name")
    p.add_argument("--k", type=int, help="evidence records")
    p.add_argument("--model", help="generator: local folder, GGUF file or Hugging Face id")
    p.add_argument("--max-new-tokens", type=int, dest="max_new_tokens")
    p.add_argument("--retriever", choices=["hybrid", "dense", "bm25"])
    p.add_argument("--json", action="store_true", help="print the answer object as JSON")
    _add_common_flags(p)

    p = sub.add_parser("check", help="check that cited abstracts support the claims citing them")
    p.add_argument("--claim", help="one claim")
    p.add_argument("--pmid", action="append", default=[], help="PMID cited by --claim (repeatable)")
    p.add_argument("--file", type=Path, help="text whose claims cite [PMID:n] or 'PMID n'")
    p.add_argument("--index", help="index name")
    p.add_argument("--json", action="store_true")
    _add_common_flags(p)

    p = sub.add_parser("case", help="analyse a de-identified patient case: problems, differential, evidence")
    p.add_argument("file", help="the case as a text file, or - to read standard input")
    p.add_argument("--index", help="index name")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the report as JSON (schema: CaseReport)")
    output.add_argument("--markdown", action="store_true", help="print the report as Markdown")
    _add_common_flags(p)

    from ui.cli.eval import add_parser
    from ui.cli.train import add_parser as add_train_parser

    add_parser(sub, _add_common_flags)
    add_train_parser(sub, _add_common_flags)
    return parser


def cmd_ingest(args: argparse.Namespace) -> int:
    """``pubmed-rag ingest``: build or update an index from files and/or a live PubMed query."""
    from ingest.build import FileSource, ingest
    from ingest.entrez import EntrezError, FetchResult, ingest_query

    settings = _settings(args, {"ingest.allow_partial": True if args.allow_partial else None,
                                "ingest.ray": args.ray})
    name = args.index or settings.paths.default_index
    if not args.files and not args.query:
        print("error: give input files and/or --query", file=sys.stderr)
        return 2
    progress = TqdmProgress()
    files = [FileSource(f) for f in args.files]

    def fetched(result: FetchResult) -> None:
        for problem in result.problems:
            print(f"warning: {problem}", file=sys.stderr)
        print(f"fetched {len(result.batches)} batches for {result.count} matching records "
              f"({result.requests} requests, {result.retries} retries)", file=sys.stderr)

    try:
        if args.query:
            _, summary = ingest_query(args.query, name, settings, args.mindate, args.maxdate, args.max_records,
                                      sources=files, progress=progress, on_fetched=fetched)
        else:
            summary = ingest(files, name, settings, progress=progress)
    except (EntrezError, IngestError, RuntimeError, ValueError) as exc:
        progress.close()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    progress.close()
    for problem in summary.problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(summary.line())
    return 0 if summary.added + summary.replaced + summary.deleted + summary.unchanged > 0 or not summary.problems else 1


def cmd_index(args: argparse.Namespace) -> int:
    from ingest.index import UnknownIndexError, index_info, list_indexes, verify_index

    settings = _settings(args)
    root = settings.paths.index_dir
    if args.action == "list":
        names = list_indexes(root)
        if not names:
            print(f"no indexes in {root}")
        for name in names:
            info = index_info(root, name)
            c = info["counts"]
            print(f"{name}\t{c['records']} records\t{c['chunks']} chunks\t{c['deleted']} deleted\t"
                  f"{info['embedding']['model']}\tupdated {info['updated']}")
        return 0
    if not args.name:
        print(f"error: 'index {args.action}' needs an index name", file=sys.stderr)
        return 2
    try:
        if args.action == "info":
            print(json.dumps(index_info(root, args.name), indent=2, ensure_ascii=False))
            return 0
        if args.action == "compact":
            from ingest.compact import compact

            print(compact(args.name, settings).line())
            return 0
        if args.action == "reshard":
            from ingest.reshard import reshard

            print(reshard(args.name, args.shards, settings).line())
            return 0
        report = verify_index(root, args.name)
    except (UnknownIndexError, IngestError, ValueError, RuntimeError) as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    print(json.dumps({"index": args.name, "ok": report.ok, "problems": report.problems, "checked": report.checked},
                     indent=2))
    return 0 if report.ok else 1


_MARK = {"supported": "✓", "weak": "~", "unsupported": "✗", "uncited": "?"}
_CHECK_MARK = {"supported": "✓", "contradicted": "✗", "not enough information": "~"}


def format_findings(findings: list[Any]) -> str:
    """The key findings, quoted, with their badges: printed as soon as they exist."""
    lines = ["Key findings"]
    for f in findings:
        lines.append(f"  [{f.number}] \"{f.text}\"")
        lines.append(f"      {finding_badges(f)}")
    return "\n".join(lines)


def format_bottom_line(answer: Any) -> str:
    """The checked bottom line (sentences with verdict markers) and what the checks dropped."""
    from rag.citations import strip_markers

    lines = ["Bottom line"]
    for s in answer.bottom_line:
        cites = "".join(f"[{c.number}{'*' if c.attributed else ''}]" for c in s.citations)
        notes = [f"support {c.support:.2f} {c.verdict}" for c in s.citations] or ["uncited"]
        notes += [f"suggest [{c.suggested}]" for c in s.citations if c.suggested]
        lines.append(f"  {_MARK[s.verdict]} {strip_markers(s.text)} {cites}  ({'; '.join(notes)})")
    if not answer.bottom_line:
        lines.append("  (no generated sentence passed the checks; the key findings are the answer)")
    if answer.dropped:
        lines.append(f"  ({len(answer.dropped)} generated sentence(s) dropped: "
                     + ", ".join(dict.fromkeys(d.reason for d in answer.dropped)) + "; see --json)")
    if any(c.attributed for s in answer.bottom_line for c in s.citations):
        lines.append("  * attached by pubmed-rag: the model did not cite this sentence itself.")
    if answer.removed_citations:
        lines.append(f"  (removed citations to evidence that does not exist: {answer.removed_citations})")
    return "\n".join(lines)


def format_answer(answer: Any, findings_shown: bool = False) -> str:
    """The key findings quoted (unless ``findings_shown``: already printed), the checked bottom line, then the
    references and timings."""
    lines = []
    if answer.redactions:
        lines.append("Redacted from the question before sending it to the external model: "
                     + ", ".join(f"{r.kind} {r.text!r}" for r in answer.redactions))
    if answer.abstained:
        lines.append(f"{answer.answer}  ({answer.abstain_reason})")
        lines.append("Closest evidence:" if answer.evidence else "")
    else:
        if answer.findings and not findings_shown:
            lines += [format_findings(answer.findings), ""]
        lines.append(format_bottom_line(answer))
        lines.append("")
        lines.append("References")
    for e in answer.evidence:
        flags = " RETRACTED" if e.retracted else (" (retraction notice)" if e.retraction_notice else "")
        lines.append(f"[{e.number}] PMID {e.pmid}{flags}: {e.display_title} {e.journal} {e.year or ''} "
                     f"[{e.grade_label}] {e.url}")
    t = answer.timings
    first = f"{t.first_token:.2f} s" if t.first_token is not None else "-"
    lines.append(f"retrieve {t.retrieve * 1000:.0f} ms, findings {t.findings * 1000:.0f} ms, first token {first}, "
                 f"total {t.total:.1f} s; model {answer.model}, index {answer.index} ({answer.retriever})")
    return "\n".join(lines)


def finding_badges(finding: Any) -> str:
    """'Randomized controlled trial · 2018 · n = 1,277 · conclusions' for a finding."""
    parts = [finding.design, str(finding.year) if finding.year else "",
             f"n = {finding.sample_size:,}" if finding.sample_size else "",
             finding.section.lower() if finding.section else ""]
    return " · ".join(p for p in parts if p)


def cmd_ask(args: argparse.Namespace) -> int:
    from ingest.index import UnknownIndexError
    from rag.generation import GeneratorError
    from rag.pipeline import Asker, QuestionError

    extra = {"generator.model": args.model, "generator.max_new_tokens": args.max_new_tokens,
             "retrieval.k": args.k, "retrieval.retriever": args.retriever}
    settings = _settings(args, extra)
    try:
        asker = Asker(settings, index=args.index)
        answer = None
        findings_shown = False
        for event in asker.stream(args.question, max_new_tokens=args.max_new_tokens):
            # Findings first: printed the moment they exist; the checked bottom line follows when generation ends.
            if event.kind == "findings" and event.data and not args.json:
                print(format_findings(event.data) + "\n", flush=True)
                findings_shown = True
            elif event.kind == "token" and not args.json and settings.answer.mode == "generated":
                print(event.data, end="", flush=True)
            elif event.kind == "answer":
                answer = event.data
    except (UnknownIndexError, QuestionError, GeneratorError, RuntimeError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1
    for warning in answer.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(answer.model_dump_json(indent=2))
    else:
        print(("\n\n" if settings.answer.mode == "generated" else "") + format_answer(answer, findings_shown))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """``pubmed-rag check``: a verdict (supported / contradicted / not enough information) per cited PMID."""
    from functools import partial

    from ingest.entrez import fetch_pmids
    from ingest.index import UnknownIndexError
    from rag.check import check_claims, open_checker, parse_claims

    settings = _settings(args)
    claims = parse_claims(args.file.read_text(encoding="utf-8")) if args.file else []
    if args.claim:
        if not args.pmid:
            print("error: --claim needs at least one --pmid", file=sys.stderr)
            return 2
        claims.append((args.claim, args.pmid))
    if not claims:
        print("error: no claim citing a PMID found; give --claim/--pmid or --file", file=sys.stderr)
        return 2
    try:
        index, scorer = open_checker(settings, args.index)
    except (UnknownIndexError, RuntimeError) as exc:  # RuntimeError: VerifierError names the cosine fallback
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    fetch = partial(fetch_pmids, settings=settings.ncbi) if settings.allow_network else None
    checks = check_claims(claims, index, scorer, fetch)
    for warning in scorer.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps([c.model_dump() for c in checks], indent=2, ensure_ascii=False))
        return 0
    for check in checks:
        print(f"Claim: {check.claim}")
        for r in check.results:
            if r.score is None:
                print(f"  PMID {r.pmid}: {r.verdict}" + ("" if settings.allow_network else
                                                         " (allow fetching with --allow_network true)"))
            else:
                where = "fetched from PubMed" if r.fetched else "indexed"
                print(f"  {_CHECK_MARK.get(r.verdict, '?')} PMID {r.pmid} ({where}): {r.verdict} "
                      f"(p={r.probability:.2f}; similarity {r.score:.2f})\n"
                      f"      why: {r.reason}\n      deciding sentence: {r.best_sentence}")
    return 0


def cmd_case(args: argparse.Namespace) -> int:
    """``pubmed-rag case``: the case report. The case is read into memory only; what is printed is built from the
    redacted text."""
    from ingest.index import UnknownIndexError
    from rag.case import CaseAnalyzer, CaseError
    from rag.case.report import to_markdown
    from rag.pipeline import Asker

    settings = _settings(args)
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read the case from {args.file}: {exc}", file=sys.stderr)
        return 1
    try:
        analyzer = CaseAnalyzer(Asker(settings, index=args.index))

        def progress(stage: str, fraction: float) -> None:
            if not args.json and not args.markdown:
                print(f"[{fraction:4.0%}] {stage} ...", file=sys.stderr, flush=True)

        report = analyzer.analyze(text, progress)
    except (UnknownIndexError, CaseError, RuntimeError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        print(to_markdown(report))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ui.cli.eval import cmd_eval as run

    return run(args, _settings(args))


def cmd_train(args: argparse.Namespace) -> int:
    """``pubmed-rag train <task>``: rebuild a shipped model (see ui/cli/train.py)."""
    from ui.cli.train import cmd_train as run

    return run(args, _settings(args))


COMMANDS = {"ingest": cmd_ingest, "index": cmd_index, "ask": cmd_ask, "check": cmd_check, "case": cmd_case,
            "eval": cmd_eval,
            "train": cmd_train}


def main(argv: list[str] | None = None) -> int:
    """Run one ``pubmed-rag`` command; returns the exit status."""
    from pydantic import ValidationError

    from pubmed_rag.logs import configure

    args = build_parser().parse_args(argv)
    configure(verbose=args.verbose)
    try:
        return COMMANDS[args.command](args)
    except ValidationError as exc:
        for err in exc.errors():
            print(f"error: setting {'.'.join(str(p) for p in err['loc'])}: {err['msg']}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
