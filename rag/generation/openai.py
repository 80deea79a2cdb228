"""An OpenAI-compatible Chat Completions backend (the ChatGPT API, vLLM, Ollama, llama.cpp server).

Only used when the user configures ``generator.backend = "openai"``; the pipeline redacts protected health
information from the question before anything is sent.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from urllib.error import HTTPError, URLError

from pubmed_rag.retry import with_retries
from pubmed_rag.settings import GeneratorSettings
from rag.generation.base import GeneratorError

_MESSAGES = {
    401: "the API key was rejected (HTTP 401); set generator.api_key or OPENAI_API_KEY",
    403: "access denied (HTTP 403); check the API key's permissions",
    404: "not found (HTTP 404); check generator.base_url and generator.model",
    429: "rate limited (HTTP 429) after retries; wait and try again",
}


class OpenAIGenerator:
    """Streams Chat Completions over HTTP with timeouts and retries."""

    def __init__(self, settings: GeneratorSettings, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.sleep = sleep
        self.name = settings.model
        self.url = settings.base_url.rstrip("/") + "/chat/completions"

    def _request(self, body: dict):
        headers = {"Content-Type": "application/json"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        data = json.dumps(body).encode()

        def post():
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            return urllib.request.urlopen(request, timeout=self.settings.timeout)

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, HTTPError):
                return exc.code == 429 or exc.code >= 500
            return isinstance(exc, URLError | TimeoutError)

        try:
            return with_retries(post, retries=self.settings.max_retries, backoff=1.0, retryable=retryable,
                                sleep=self.sleep)
        except HTTPError as exc:
            detail = _MESSAGES.get(exc.code, f"server error (HTTP {exc.code})")
            raise GeneratorError(f"{self.url}: {detail}") from exc
        except (URLError, TimeoutError) as exc:
            raise GeneratorError(f"{self.url}: no answer ({exc}); check generator.base_url") from exc

    def stream(self, system: str, user: str, max_new_tokens: int, stop: Sequence[str] = (),
               citations: Sequence[int] = ()) -> Iterator[str]:
        """Chat Completions cannot constrain markers: ``citations`` is left to the bottom-line checks."""
        body = {"model": self.settings.model, "max_tokens": max_new_tokens, "temperature": self.settings.temperature,
                "stream": self.settings.stream,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}
        if stop:
            body["stop"] = list(stop)[:4]  # the Chat Completions API takes at most 4
        with self._request(body) as response:
            if not self.settings.stream:
                reply = json.loads(response.read())
                yield reply["choices"][0]["message"].get("content") or ""
                return
            for raw in response:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    return
                delta = json.loads(payload)["choices"][0].get("delta", {})
                if delta.get("content"):
                    yield delta["content"]
