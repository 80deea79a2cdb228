"""First run of the app: build the bundled sample index in the background and show its progress meanwhile.

`make demo` starts the app at once; when the default index is the sample index and it has not been built yet,
the first screen shows the build's progress and the pages open when it is published. `make sample-index` builds
the same index from the command line.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from ingest.build import FileSource, IngestSummary, ingest
from ingest.index import IndexLayout
from ingest.sources import parse_file
from pubmed_rag.settings import Settings

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"
SAMPLE_INDEX = "sample"
FOLLOW_SECONDS = 3600.0  # how long one page view follows the build; a reload follows it again
_DATA_FILES = ("*.jsonl.gz", "*.xml", "*.xml.gz")


def sample_files() -> list[Path]:
    """The sample's data files in name order, as the Makefile's ``sample-index`` target lists them."""
    return sorted({p for pattern in _DATA_FILES for p in SAMPLE_DIR.glob(pattern)}, key=lambda p: p.name)


@dataclass
class Build:
    """One background ``ingest`` of files into an index, and how far it has got."""

    index: str
    files: list[Path]
    settings: Settings
    total: int = 0  # items in the files (records and deletions), counted before the build starts
    read: int = 0
    embedded: int = 0
    started: float = field(default_factory=time.monotonic)
    summary: IngestSummary | None = None
    error: str | None = None

    def start(self) -> Build:
        threading.Thread(target=self._run, name=f"build-{self.index}", daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            self.total = sum(1 for path in self.files for _ in parse_file(path))
            self.summary = ingest([FileSource(path) for path in self.files], self.index, self.settings,
                                  progress=self._progress)
        except Exception as exc:  # any failure is shown on the first screen, in place of the pages
            self.error = f"{type(exc).__name__}: {exc}"

    def _progress(self, stage: str, advance: int, total: int | None = None) -> None:
        if stage == "parse":
            self.read += advance
        elif stage == "embed":
            self.embedded += advance

    @property
    def done(self) -> bool:
        return self.summary is not None or self.error is not None

    def fraction(self) -> float:
        """Share of the records read; the last chunks are embedded after the last record is read."""
        return min(self.read / self.total, 1.0) if self.total else 0.0

    def status(self) -> str:
        elapsed = f"{time.monotonic() - self.started:.0f} s"
        if self.summary is not None:
            return f"Done: {self.summary.added} records, {self.summary.chunks_embedded} chunks, {elapsed}."
        if not self.total or not self.read:
            return f"Loading the embedding model ... ({elapsed})"
        if self.read < self.total:
            return f"{self.read} of {self.total} records read, {self.embedded} passages embedded ({elapsed})"
        return (f"All {self.total} records read, {self.embedded} passages embedded; embedding the last ones and "
                f"publishing the index ... ({elapsed})")


@st.cache_resource(show_spinner=False)
def _build(index_dir: str, index: str, files: tuple[str, ...], settings_json: str) -> Build:
    """One build per index folder and process, shared by every session."""
    return Build(index, [Path(f) for f in files], Settings.model_validate_json(settings_json)).start()


def sample_build(settings: Settings | None = None) -> Build | None:
    """The background build of the sample index, started on first use; None when there is nothing to build.

    Something to build means: the default index is the sample index, it has not been built, and the sample's
    data files are here. A finished build keeps being returned only if it failed (its error is shown).
    """
    s = settings or Settings.load()
    if s.paths.default_index != SAMPLE_INDEX or IndexLayout(s.paths.index_dir, SAMPLE_INDEX).exists():
        return None
    files = sample_files()
    if not files:
        return None
    return _build(str(s.paths.index_dir), SAMPLE_INDEX, tuple(str(f) for f in files), s.model_dump_json())


def building_page(build: Build) -> None:
    """The first screen while the sample index builds: what is happening and how far it is."""
    st.title("pubmed-rag")
    st.info(f"First run: building the sample index from the {len(build.files)} files in data/sample (real PubMed "
            "records on clinical topics). This takes a minute or two on a laptop CPU and happens once; the Ask, "
            "Library and Citations pages open when it is done.", icon=":material/hourglass_top:")
    st.caption("The same index builds from the command line with `make sample-index`.")
    _follow(build)


def _follow(build: Build) -> None:
    """Update the progress bar every second until the build ends, then open the pages or show the error.

    A sleeping loop, not a fragment with ``run_every``: every rerun ends in a full garbage collection
    (Streamlit's runner.postScriptGC), and one a second made the build three times slower (measured).
    """
    bar = st.progress(build.fraction(), text=build.status())
    deadline = time.monotonic() + FOLLOW_SECONDS
    while not build.done and time.monotonic() < deadline:
        time.sleep(1.0)
        bar.progress(build.fraction(), text=build.status())
    if build.error:
        st.error("The sample index could not be built:")
        st.code(build.error, language=None)  # shown as text: it may quote file contents
        st.button("Try again", on_click=_build.clear)
    elif build.done:
        st.rerun()  # the pages replace this screen
