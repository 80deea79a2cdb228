"""Library page (librarians): indexes and their manifests, verify, build/update from PubMed or files, charts."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import streamlit as st

from ingest.build import FileSource, IngestSummary, ingest
from ingest.entrez import EntrezError, FetchResult, ingest_query
from ingest.index import LoadedIndex, index_info, list_indexes, verify_index
from pubmed_rag.records import IngestError
from ui.common import index_writes_allowed, settings

st.title("Index library")
cfg = settings()
names = list_indexes(cfg.paths.index_dir)

if names:
    rows = []
    for name in names:
        info = index_info(cfg.paths.index_dir, name)
        c = info["counts"]
        rows.append({"index": name, "records": c["records"], "chunks": c["chunks"], "deleted": c["deleted"],
                     "title-only": c["title_only"], "retracted": c["retracted"],
                     "embedding model": info["embedding"]["model"], "sources": len(info["sources"]),
                     "updated": info["updated"]})
    st.dataframe(pd.DataFrame(rows), hide_index=True, use_container_width=True)
    chosen = st.selectbox("Index", names, key="lib_index")
    if st.button("Verify", key="verify"):
        report = verify_index(cfg.paths.index_dir, chosen)
        if report.ok:
            st.success(f"{chosen}: checksums and counts match the manifest ({report.checked}).")
        else:
            st.error(f"{chosen}: " + "; ".join(report.problems))
    with st.expander("Sources of this index"):
        st.dataframe(pd.DataFrame(index_info(cfg.paths.index_dir, chosen)["sources"]), hide_index=True)
    loaded = LoadedIndex(cfg.paths.index_dir, chosen)
    left, right = st.columns(2)
    with left:
        st.caption("Records per publication year")
        years = loaded.store.year_counts()
        if years:
            st.bar_chart(pd.DataFrame({"records": list(years.values())}, index=[str(y) for y in years]))
    with right:
        st.caption("Publication types")
        types = loaded.store.publication_type_counts()
        if types:
            st.bar_chart(pd.DataFrame({"records": list(types.values())[:12]}, index=list(types)[:12]),
                         horizontal=True)
    loaded.close()
else:
    st.info(f"No index yet in {cfg.paths.index_dir}.")

st.header("Build or update an index")
if not index_writes_allowed(cfg):
    st.info("Building and updating indexes is off on this server: the app is not bound to this machine's loopback "
            "address. The operator can allow it with app.index_writes = on (PUBMED_RAG_APP__INDEX_WRITES=on).")
    st.stop()
target = st.text_input("Index name", value=names[0] if names else "my-index", key="target")


class StreamlitProgress:
    """Progress sink drawing one ``st.progress`` bar per stage."""

    def __init__(self) -> None:
        self.bars: dict[str, tuple] = {}

    def __call__(self, stage: str, advance: int, total: int | None = None) -> None:
        bar, done, known, started = self.bars.get(stage, (None, 0, None, time.perf_counter()))
        if bar is None:
            bar = st.progress(0.0, text=stage)
        done += advance
        known = total or known
        fraction = min(1.0, done / known) if known else (done % 100) / 100
        rate = done / max(time.perf_counter() - started, 1e-3)
        unit = "chunks" if stage == "embed" else "records"
        bar.progress(fraction, text=f"{stage}: {done}" + (f" / {known}" if known else "") + f" ({rate:,.0f} {unit}/s)")
        self.bars[stage] = (bar, done, known, started)


def run_ingest(build: Callable[[StreamlitProgress], IngestSummary], name: str) -> None:
    """Run ``build`` with progress bars and show its outcome; a failed build leaves the served version as it was."""
    try:
        summary = build(StreamlitProgress())
    except EntrezError as exc:
        st.error(str(exc))
        return
    except (IngestError, RuntimeError, ValueError) as exc:
        st.error(f"Build failed; the previous version of {name!r} is still served. {exc}")
        return
    for problem in summary.problems:
        st.warning(problem)
    st.success(summary.line())


def show_fetch(result: FetchResult) -> None:
    """Report a finished fetch before the embedding step starts."""
    for problem in result.problems:
        st.warning(problem)
    st.caption(f"Fetched {len(result.batches)} batches for {result.count} matching records "
               f"({result.requests} requests, {result.retries} retries).")


st.caption(f"Builds run on the Ray cluster at {cfg.ingest.ray!r} (ingest.ray)." if cfg.ingest.ray else
           "Builds run in this process (set ingest.ray to build on a Ray cluster).")

query_tab, files_tab = st.tabs(["From a PubMed query", "From files"])
with query_tab, st.form("query_form"):
    query = st.text_input("PubMed query", placeholder="asthma[mh] AND randomized controlled trial[pt]", key="query")
    col1, col2 = st.columns(2)
    email = col1.text_input("Email (NCBI asks for one)", value=cfg.ncbi.email, key="ncbi_email")
    api_key = col2.text_input("NCBI API key (optional)", value=cfg.ncbi.api_key, type="password")
    mindate = col1.text_input("From date (YYYY or YYYY/MM/DD)")
    maxdate = col2.text_input("To date")
    max_records = st.number_input("Max records", min_value=1, max_value=100000, value=500)
    if st.form_submit_button("Fetch and index") and query:
        query_cfg = cfg.model_copy(update={"ncbi": cfg.ncbi.model_copy(update={"email": email, "api_key": api_key})})
        run_ingest(lambda progress: ingest_query(query, target, query_cfg, mindate or None, maxdate or None,
                                                 int(max_records), progress=progress, on_fetched=show_fetch)[1],
                   target)

with files_tab, st.form("files_form"):
    uploads = st.file_uploader("PubMed XML (.xml, .xml.gz), MEDLINE text or JSONL files", accept_multiple_files=True)
    if st.form_submit_button("Index files") and uploads:
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for upload in uploads:
                path = Path(tmp) / Path(upload.name).name
                path.write_bytes(upload.getvalue())
                paths.append(path)
            run_ingest(lambda progress: ingest([FileSource(p) for p in paths], target, cfg, progress=progress), target)
