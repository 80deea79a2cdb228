"""Shared UI helpers: settings, cached resources, safe text rendering."""

from __future__ import annotations

import re
from urllib.parse import quote

import streamlit as st

from ingest.index import LoadedIndex, current_folder, list_indexes
from pubmed_rag.settings import Settings
from rag.case import CaseAnalyzer
from rag.check import open_checker
from rag.pipeline import Asker
from rag.verify import SupportScorer

DISCLAIMER = ("Evidence summaries for health professionals, drawn from indexed PubMed abstracts. "
              "Not medical advice; check the cited sources before acting on them.")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$&])")


def md_escape(text: str) -> str:
    """Escape text so Markdown shows it literally (no links, no formatting, no HTML)."""
    return _MD_SPECIAL.sub(r"\\\1", text or "")


def md_link(text: str, url: str) -> str:
    """A Markdown link whose text is shown literally and whose address cannot end the link early: characters that
    Markdown or a URL would read as syntax (``)``, spaces, ``<``) are percent-encoded."""
    return f"[{md_escape(text)}]({quote(url, safe=':/?=&#%~+,;@')})"


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def index_writes_allowed(cfg: Settings, address: str | None = None) -> bool:
    """Whether visitors may build or update indexes: ``app.index_writes``, where ``auto`` allows it only when the
    server is bound to loopback (``address``: Streamlit's ``server.address``; unset means every interface)."""
    if cfg.app.index_writes != "auto":
        return cfg.app.index_writes == "on"
    address = st.get_option("server.address") if address is None else address
    return (address or "") in LOOPBACK


def settings() -> Settings:
    return Settings.load()


def asker(index: str) -> Asker:
    """One ``Asker`` per served index version per process, shared by all sessions (models load once)."""
    s = settings()
    return _asker(index, str(current_folder(s.paths.index_dir, index)), s.model_dump_json())


# Loaded state per index version, shared by all sessions; at most app.cached_indexes versions of each kind are kept
# (least recently used dropped first), so updates and many indexes do not grow the process without bound.
CACHED = Settings.load().app.cached_indexes


@st.cache_resource(show_spinner="Loading index and models ...", max_entries=CACHED)
def _asker(index: str, folder: str, settings_json: str) -> Asker:
    return Asker(Settings.model_validate_json(settings_json), index=index)


def case_analyzer(index: str) -> CaseAnalyzer:
    """One ``CaseAnalyzer`` per served index version per process (its vocabulary and reader load once); it keeps
    nothing of the cases it reads."""
    s = settings()
    return _case_analyzer(index, str(current_folder(s.paths.index_dir, index)), s.model_dump_json())


@st.cache_resource(show_spinner="Loading the clinical vocabulary ...", max_entries=CACHED)
def _case_analyzer(index: str, folder: str, settings_json: str) -> CaseAnalyzer:
    analyzer = CaseAnalyzer(_asker(index, folder, settings_json))
    analyzer.reader.nlp  # noqa: B018 - build the matcher now, not during the first case
    return analyzer


def scorer(index: str) -> tuple[LoadedIndex, SupportScorer]:
    s = settings()
    return _scorer(index, str(current_folder(s.paths.index_dir, index)), s.model_dump_json())


@st.cache_resource(max_entries=CACHED)
def _scorer(index: str, folder: str, settings_json: str) -> tuple[LoadedIndex, SupportScorer]:
    return open_checker(Settings.model_validate_json(settings_json), index)


def index_picker(key: str) -> str | None:
    s = settings()
    names = list_indexes(s.paths.index_dir)
    if not names:
        st.warning(f"No index in {s.paths.index_dir}. Build one on the Library page (or run `make demo`).")
        return None
    default = names.index(s.paths.default_index) if s.paths.default_index in names else 0
    return st.selectbox("Index", names, index=default, key=key)
