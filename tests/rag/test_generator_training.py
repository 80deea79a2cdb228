"""``pubmed-rag train generator``: examples built as the pipeline builds prompts, a seeded tiny LoRA run, checkpoints,
the shipped adapter's checksums, offline loading and the fallback to the base model."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest

from pubmed_rag.settings import GeneratorSettings
from pubmed_rag.types import Finding
from rag.bottom_line import SYSTEM, build_prompt
from rag.generation.adapter import ADAPTER_FILE, SHIPPED, AdapterError, read_adapter
from rag.generation.local import LocalGenerator, default_gguf
from rag.training.generator import (
    GeneratorTrainConfig,
    base_model_files,
    lora_layers,
    ship_adapter,
    train_generator_model,
)
from rag.training.generator_data import ExampleBuilder, GenExample, cite_reference, read_examples, write_examples
from tests.conftest import FIXTURES

# PMID 29768149 (NEJM 2018), two sentences of its abstract, and one of PMID 9428298 (albuterol in the ICU).
TRIAL = ("Budesonide-formoterol was superior to terbutaline with respect to electronically recorded weeks with "
         "well-controlled asthma (34.4% vs. 31.1% of weeks; odds ratio, 1.14; 95% confidence interval [CI], 1.00 to "
         "1.30).")
EXACERBATIONS = ("The annual rate of severe exacerbations was 0.20 with terbutaline, 0.07 with budesonide-formoterol, "
                 "and 0.09 with budesonide maintenance therapy.")
ALBUTEROL = ("A retrospective, case-controlled analysis comparing patients admitted to a medical intensive care unit "
             "with severe exacerbations of asthma who received continuously nebulized albuterol (CNA) versus "
             "intermittent albuterol (INA) treatments is reported.")
FINDINGS = [Finding(number=2, pmid="29768149", sentences=[TRIAL, EXACERBATIONS], relevance=0.6, score=0.9,
                    design="Randomized controlled trial", year=2018, sample_size=3849),
            Finding(number=4, pmid="9428298", sentences=[ALBUTEROL], relevance=0.5, score=0.7)]


def test_reference_sentences_cite_the_finding_they_overlap_and_unrelated_ones_are_dropped():
    reference = ("Yes. As-needed budesonide-formoterol lowered the annual rate of severe exacerbations compared with "
                 "terbutaline. Continuously nebulized albuterol was compared with intermittent albuterol in the "
                 "intensive care unit. Zebrafish fins regenerate.")
    cited, dropped = cite_reference(reference, FINDINGS)
    assert cited == ["As-needed budesonide-formoterol lowered the annual rate of severe exacerbations compared with "
                     "terbutaline [2].",
                     "Continuously nebulized albuterol was compared with intermittent albuterol in the intensive care "
                     "unit [4]."]
    assert dropped == {"too short after yes/no": 1, "overlaps no finding": 1}


def test_the_prompt_gives_design_year_and_size_and_no_unclassified_badge():
    prompt = build_prompt("Does budesonide-formoterol reduce exacerbations?", FINDINGS)
    assert f"[2] {TRIAL} {EXACERBATIONS} (Randomized controlled trial, 2018, n = 3,849)" in prompt
    assert f"[4] {ALBUTEROL}\n" in prompt and "unclassified" not in prompt


@pytest.fixture(scope="module")
def tiny_examples(asker, tmp_path_factory) -> list[GenExample]:
    """Examples built over the small index from real PubMedQA-L items (tests/fixtures), as training builds them."""
    builder = ExampleBuilder(asker)
    examples = builder.pubmedqa(FIXTURES / "pubmedqa_pqal_30.json", held_out=set(), seed=3, limit=12)
    assert len(examples) >= 4, builder.skipped
    return examples


def test_examples_are_the_pipelines_prompts_with_checked_cited_targets(tiny_examples, asker, tmp_path):
    for e in tiny_examples:
        assert e.system == SYSTEM and e.source == "pubmedqa" and e.user.startswith("Findings:\n[")
        assert e.user.endswith(f"\n\nQuestion: {e.question}\nWhat the studies found:")
        numbers = {int(n) for n in re.findall(r"^\[(\d+)\]", e.user, flags=re.M)}
        cited = {int(n) for n in re.findall(r"\[(\d+)\]", e.target)}
        assert cited and cited <= numbers  # every target sentence cites a finding the prompt shows
    path = tmp_path / "examples.jsonl"
    write_examples(tiny_examples, path)
    assert read_examples(path) == tiny_examples
    path.write_text('{"qid": 1}\n')
    with pytest.raises(ValueError, match=r"examples.jsonl, line 1: not a generator training example"):
        read_examples(path)


TINY = GeneratorTrainConfig(seed=7, batch_size=2, rank=2, alpha=4, max_length=640, threads=2, checkpoint_every=1)


def _train(examples, config, generator_cache, checkpoint=None, progress=None):
    _, folder = base_model_files(generator_cache)
    return train_generator_model(examples[:4], config, folder, checkpoint, progress)


def test_tiny_seeded_run_is_deterministic_and_resumes_from_its_checkpoint(tiny_examples, generator_cache, tmp_path):
    model, _, first = _train(tiny_examples, TINY, generator_cache)
    again = _train(tiny_examples, TINY, generator_cache)[2]
    assert first.steps == 2 and first.examples == 4 and len(first.losses) == 2
    assert first.losses == pytest.approx(again.losses, abs=1e-4)
    other = _train(tiny_examples, replace(TINY, seed=8), generator_cache)[2]
    assert other.losses != pytest.approx(first.losses, abs=1e-4)

    class Killed(Exception):
        pass

    calls = []

    def kill_at_second_step(n, loss):  # a run killed during its second step, after the first checkpoint
        calls.append(loss)
        if len(calls) == 2:
            raise Killed

    checkpoint = tmp_path / "checkpoint"
    with pytest.raises(Killed):
        _train(tiny_examples, TINY, generator_cache, checkpoint, kill_at_second_step)
    assert json.loads((checkpoint / "progress.json").read_text())["step"] == 1
    resumed_model, _, resumed = _train(tiny_examples, TINY, generator_cache, checkpoint)
    assert resumed.resumed_from == 1 and resumed.losses == pytest.approx(first.losses, abs=1e-4)
    a, b = lora_layers(model), lora_layers(resumed_model)
    assert a.keys() == b.keys() and len(a) == 30 * 7
    for name in a:
        assert np.allclose(a[name][1].detach().numpy(), b[name][1].detach().numpy(), atol=1e-5)


def test_train_command_shows_progress_and_ships_a_model_card(tiny_examples, generator_cache, tmp_path, capsys):
    from pubmed_rag.checksums import sha256_file
    from ui.cli import main

    examples = tmp_path / "examples.jsonl"
    write_examples(tiny_examples[:4], examples)
    out = tmp_path / "run"
    code = main(["train", "generator", "--examples", str(examples), "--out", str(out), "--limit", "4", "--rank", "2",
                 "--batch-size", "2", "--seed", "3", "--paths.cache_dir", str(generator_cache)])
    assert code == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["task"] == "generator" and summary["examples"] == 4 and summary["steps"] == 2
    assert "train generator: 100%" in captured.err and "ex/s" in captured.err and "loss=" in captured.err
    record = json.loads((out / "training.json").read_text())
    assert record["config"]["rank"] == 2 and record["config"]["seed"] == 3 and record["by_source"] == {"pubmedqa": 4}
    assert record["files"] == {ADAPTER_FILE: sha256_file(out / ADAPTER_FILE)} and not (out / "checkpoint").exists()
    card = (out / "README.md").read_text()
    assert card.startswith("# pubmed-rag generator") and "BioASQ 9B3-9B5" in card and "seed 3, 2 steps" in card
    # What ships is never trained over.
    assert main(["train", "generator", "--examples", str(examples), "--out", str(SHIPPED)]) == 2
    assert "holds the shipped generator; train into a new folder" in capsys.readouterr().err


@pytest.fixture(scope="module")
def shipped_tiny(tiny_examples, generator_cache, tmp_path_factory):
    model, _, result = _train(tiny_examples, replace(TINY, learning_rate=0.05), generator_cache)
    out = tmp_path_factory.mktemp("generator")
    files = ship_adapter(model, TINY, out, default_gguf())
    (out / "training.json").write_text(json.dumps({"files": files}))
    return out


def test_shipped_adapter_is_checked_and_loads_offline(shipped_tiny, generator_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    layers, scale, record = read_adapter(shipped_tiny, default_gguf())
    assert len(layers) == 30 * 7 and scale == 2.0 and set(record["files"]) == {ADAPTER_FILE}
    settings = GeneratorSettings(adapter=str(shipped_tiny), precision="float32")
    trained = LocalGenerator(settings, generator_cache)
    base = LocalGenerator(settings.model_copy(update={"adapter": ""}), generator_cache)
    assert not trained.warning and trained.name == f"smollm2-135m-instruct+{shipped_tiny.name}"
    name = "model.layers.0.self_attn.q_proj"
    a, b = layers[name]
    merged = dict(trained.model.named_modules())[name].weight.detach().numpy()
    original = dict(base.model.named_modules())[name].weight.detach().numpy()
    assert np.allclose(merged - original, scale * b.astype(np.float32) @ a.astype(np.float32), atol=1e-5)


def test_damaged_or_missing_weights_fall_back_to_the_base_model_with_a_warning(shipped_tiny, generator_cache,
                                                                              tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for item in shipped_tiny.iterdir():
        (damaged / item.name).write_bytes(item.read_bytes())
    data = bytearray((damaged / ADAPTER_FILE).read_bytes())
    data[-100] ^= 0xFF
    (damaged / ADAPTER_FILE).write_bytes(bytes(data))
    with pytest.raises(AdapterError, match="corrupted \\(checksum differs from training.json\\)"):
        read_adapter(damaged, default_gguf())
    for folder, message in ((damaged, "corrupted"), (tmp_path / "missing", "not found")):
        generator = LocalGenerator(GeneratorSettings(adapter=str(folder)), generator_cache)
        assert message in generator.warning and "the base model writes the bottom line" in generator.warning
        assert generator.name == "smollm2-135m-instruct"


def test_decoding_cannot_cite_a_finding_that_was_not_given(asker):
    generator = asker.generator
    bans = {generator.tokenizer.decode(ids) for ids in generator.citation_bans([2, 4])}
    assert {"[1", " [3", "[5", "[0", "[24", " [41"} <= bans and not {"[2", " [4", "[4"} & bans
    prompt = "Findings:\n[7] Aspirin lowered the risk of stroke.\n\nQuestion: Does aspirin prevent stroke?\n" \
             "What the studies found:"
    text = "".join(generator.stream(SYSTEM, prompt, 40, citations=[2]))
    assert "[7]" not in text


def test_the_shipped_generator_writes_a_bottom_line_that_cites_and_passes_every_check(asker):
    from rag.pipeline import Asker

    record = json.loads((SHIPPED / "training.json").read_text())
    assert record["examples"] > 500 and record["split"]["report"].startswith("BioASQ 9B3-9B5")
    settings = asker.settings.model_copy(deep=True)
    settings.verify.scorer = "verifier"  # every check as shipped, the trained verifier's included
    trained = Asker(settings, index="small", embedder=asker.embedder)
    assert trained.generator.name == "smollm2-135m-instruct+trained" and not trained.generator.warning
    # PubMedQA-L's first test item (never trained on); its abstract, conclusion included, is in the small index.
    answer = trained.ask("Do mitochondria play a role in remodelling lace plant leaves during programmed cell death?")
    assert answer.bottom_line, answer.dropped
    for sentence in answer.bottom_line:  # only sentences that passed every check are here
        assert re.search(r"\[\d\]\.$", sentence.text) and "mitochondria" in sentence.text.lower()
        assert [c.pmid for c in sentence.citations] == ["21645374"]
        assert all(c.verdict == "supported" for c in sentence.citations)
    assert not answer.warnings


def test_training_without_the_evaluation_index_says_how_to_build_it(generator_cache, tmp_path, capsys):
    from ui.cli import main

    code = main(["train", "generator", "--data", str(FIXTURES), "--index", "no-such-index", "--out",
                 str(tmp_path / "run"), "--paths.index_dir", str(tmp_path), "--paths.cache_dir", str(generator_cache)])
    assert code == 1
    err = capsys.readouterr().err
    assert "no-such-index" in err and "build it with `pubmed-rag eval answers --dataset bioasq --index no-such-index`" in err
