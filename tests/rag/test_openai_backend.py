"""The external Chat Completions backend against a real local server; PHI never reaches it."""

from __future__ import annotations

import pytest

from pubmed_rag.settings import GeneratorSettings
from rag.generation import GeneratorError
from rag.generation.openai import OpenAIGenerator
from rag.phi import redact
from rag.pipeline import Asker
from tests.chat_server import ChatServer
from tests.conftest import pubmedqa_questions

REPLY = ("Mitochondrial dynamics were delineated into four categories based on distribution, motility and "
         "membrane potential [1].")


@pytest.fixture
def server():
    s = ChatServer(REPLY)
    yield s
    s.close()


def gen_settings(server: ChatServer, **kw) -> GeneratorSettings:
    return GeneratorSettings(backend="openai", model="gpt-test", base_url=server.url, api_key="sk-test",
                             timeout=5, max_retries=1, **kw)


def test_answer_through_the_api_with_phi_redacted(asker, server):
    settings = asker.settings.model_copy(deep=True)
    settings.generator = gen_settings(server)
    q = pubmedqa_questions()[0]["question"]
    phi = "Patient Maria Lopez, 93-year-old, MRN 4417820, seen 03/14/2024, phone 555-123-4567, mlopez@example.org: "
    answer = Asker(settings, index="small", embedder=asker.embedder).ask(phi + q)
    sent = str(server.received[0])
    sent_question = server.received[0]["messages"][1]["content"].split("\nQuestion: ", 1)[1]
    for secret in ("Maria Lopez", "4417820", "03/14/2024", "555-123-4567", "mlopez@example.org"):
        assert secret not in sent
    assert "93" not in sent_question and sent_question.startswith("Patient [NAME], [AGE OVER 89]-year-old, [ID NUMBER]")
    assert q in sent and server.headers[0]["Authorization"] == "Bearer sk-test"
    assert server.received[0]["stream"] is True and server.received[0]["model"] == "gpt-test"
    assert {r.kind for r in answer.redactions} == {"name", "age over 89", "id number", "date", "phone/fax", "email"}
    assert not answer.abstained and answer.findings[0].pmid == "21645374"
    # The external model's reply went through the same checks: kept with its citation, or dropped with a reason.
    assert [c.pmid for s in answer.bottom_line for c in s.citations] in (["21645374"], [])
    assert len(answer.bottom_line) + len(answer.dropped) >= 1
    assert answer.evidence[0].pmid == "21645374"  # retrieval used the full question, locally


def test_non_streaming_and_errors(server):
    gen = OpenAIGenerator(gen_settings(server, stream=False))
    assert "".join(gen.stream("s", "u", 16)) == REPLY
    server.errors = [500]  # retried once, then answered
    assert "".join(OpenAIGenerator(gen_settings(server)).stream("s", "u", 16)).strip() == REPLY
    for code, message in [(401, "API key was rejected"), (404, "check generator.base_url"), (429, "rate limited")]:
        server.errors = [code, code]
        with pytest.raises(GeneratorError, match=message):
            list(OpenAIGenerator(gen_settings(server)).stream("s", "u", 16))
    server.errors = [503, 503]
    with pytest.raises(GeneratorError, match="server error \\(HTTP 503\\)"):
        list(OpenAIGenerator(gen_settings(server)).stream("s", "u", 16))


def test_redaction_rules():
    text, found = redact("Mr. John Smith, aged 95, of 221 Baker Street, SSN 123-45-6789, admitted March 3, 2021.")
    assert text == "Mr. [NAME], [AGE OVER 89], of [STREET ADDRESS], SSN [SSN], admitted [DATE]."
    untouched = "Does metformin reduce mortality in type 2 diabetes (2019 trials) for a 45-year-old?"
    assert redact(untouched) == (untouched, [])


def test_local_backend_sends_nothing(asker):
    assert asker.settings.generator.backend == "local"
    answer = asker.ask("Patient Maria Lopez: do mitochondria remodel lace plant leaves?", max_new_tokens=8)
    assert answer.redactions == []
