"""Generator backends: one contract for every backend, and the factory (including a user's own class)."""

from __future__ import annotations

import pytest

from pubmed_rag.settings import GeneratorSettings
from pubmed_rag.types import Finding
from rag.bottom_line import STOP, SYSTEM, build_prompt
from rag.generation import Generator, GeneratorError, load_generator
from rag.generation.openai import OpenAIGenerator
from rag.pipeline import Asker
from tests.chat_server import ChatServer
from tests.conftest import FLAGSHIP

EXACERBATIONS = ("Exacerbation rates with the two budesonide-containing regimens were similar and were lower than the "
                 "rate with terbutaline.")
FINDING = Finding(number=1, pmid="29768149", sentences=[EXACERBATIONS], relevance=0.6, score=0.8)
REPLY = "Exacerbation rates with both budesonide-containing regimens were lower than with terbutaline [1]."


class ScriptedBackend:
    """A user's own backend, loaded by dotted path: it answers with the faithful sentence."""

    def __init__(self, settings: GeneratorSettings) -> None:
        self.name = f"scripted:{settings.model}"

    def stream(self, system, user, max_new_tokens, stop=(), citations=()):
        yield from (word + " " for word in REPLY.split(" "))


@pytest.fixture(params=["local", "openai", "dotted"])
def backend(request, asker):
    if request.param == "local":
        yield asker.generator
    elif request.param == "openai":
        server = ChatServer(REPLY)
        yield OpenAIGenerator(GeneratorSettings(backend="openai", model="gpt-test", base_url=server.url, timeout=5,
                                                max_retries=0))
        assert server.received[0]["stop"] == list(STOP)
        server.close()
    else:
        yield load_generator(GeneratorSettings(backend="tests.rag.test_generation:ScriptedBackend"), asker.settings.paths.cache_dir)


def test_every_backend_streams_text_for_the_bottom_line_prompt(backend):
    assert isinstance(backend, Generator) and backend.name
    pieces = list(backend.stream(SYSTEM, build_prompt(FLAGSHIP, [FINDING]), 24, stop=STOP))
    assert pieces and all(isinstance(p, str) for p in pieces)
    assert "".join(pieces).strip()


def test_every_backend_answers_through_the_same_checks(backend, asker):
    answer = Asker(asker.settings, index="small", embedder=asker.embedder, generator=backend).ask(FLAGSHIP)
    assert not answer.abstained and answer.findings[0].pmid == "29768149"
    assert answer.model == backend.name
    for s in answer.bottom_line:  # whatever the backend wrote, only checked sentences are shown
        assert s.citations and all(c.verdict == "supported" for c in s.citations)
        assert {c.pmid for c in s.citations} <= {f.pmid for f in answer.findings}
    if backend.name != asker.generator.name:  # the scripted replies are faithful: they survive
        assert [strip(s.text) for s in answer.bottom_line] == [strip(REPLY)]


def strip(text: str) -> str:
    return " ".join(text.split())


def test_local_backend_respects_the_token_budget(asker):
    text = "".join(asker.generator.stream(SYSTEM, build_prompt(FLAGSHIP, [FINDING]), 8))
    assert 0 < len(asker.generator.tokenizer(text, add_special_tokens=False)["input_ids"]) <= 9


@pytest.mark.parametrize("path,message", [("nowhere.module:Thing", "cannot import 'Thing' from 'nowhere.module'"),
                                          ("pubmed_rag.settings:Settings", "has no stream\\(\\) method"),
                                          ("justaword", "use 'local', 'openai' or a dotted path")])
def test_bad_backend_paths_say_what_to_do(path, message, tmp_path):
    with pytest.raises(GeneratorError, match=message):
        load_generator(GeneratorSettings(backend=path), tmp_path)
