"""Generator backends: one module per backend, and a factory that also loads a user's own class by dotted path.

``generator.backend``: ``local`` (transformers on the CPU, the default), ``openai`` (any OpenAI-compatible Chat
Completions server), or ``package.module:Class`` / ``package.module.Class`` (a class taking ``GeneratorSettings``).
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from pathlib import Path

from pubmed_rag.settings import GeneratorSettings
from rag.generation.base import Chooser, Generator, GeneratorError

__all__ = ["Chooser", "Generator", "GeneratorError", "load_generator"]


@lru_cache(maxsize=2)
def _local(settings_json: str, cache_dir: str) -> Generator:
    from rag.generation.local import LocalGenerator

    return LocalGenerator(GeneratorSettings.model_validate_json(settings_json), Path(cache_dir))


def load_generator(settings: GeneratorSettings, cache_dir: Path) -> Generator:
    """The configured backend; the local model is loaded once per configuration per process."""
    if settings.backend == "local":
        relevant = settings.model_dump(include={"model", "adapter", "precision", "threads", "temperature",
                                                "repetition_penalty"})
        return _local(GeneratorSettings(**relevant).model_dump_json(), str(cache_dir))
    if settings.backend == "openai":
        from rag.generation.openai import OpenAIGenerator

        return OpenAIGenerator(settings)
    return _user_class(settings.backend)(settings)


def _user_class(path: str) -> type:
    module, _, name = path.partition(":") if ":" in path else path.rpartition(".")
    if not module or not name:
        raise GeneratorError(f"generator.backend {path!r}: use 'local', 'openai' or a dotted path to a class "
                             "('package.module:Class')")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise GeneratorError(f"generator.backend {path!r}: cannot import {name!r} from {module!r} ({exc})") from exc
    if not callable(getattr(cls, "stream", None)):
        raise GeneratorError(f"generator.backend {path!r}: {name} has no stream() method (see rag.generation.base)")
    return cls
