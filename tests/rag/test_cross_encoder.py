"""The compact form of the shipped models (the trained layers as int8 differences from the installed base weights)
and their rebuilt copy in the cache."""

from __future__ import annotations

import json
import logging

import numpy as np
from safetensors.numpy import load_file

from pubmed_rag.checksums import sha256_file
from rag.cross_encoder import REBUILT_RECORD, TRAINED_FILE, base_weights_file, pack_trained, rebuilt_model, unpack_trained
from rag.verify import SHIPPED


def test_shipped_verifier_is_the_base_plus_its_trained_layers(tmp_path):
    state = unpack_trained(SHIPPED / TRAINED_FILE)
    base = load_file(str(base_weights_file()))
    # Frozen while training (embeddings, layers 0-1): exactly the base weights; trained (layers 2-5): changed.
    assert np.array_equal(state["bert.embeddings.word_embeddings.weight"], base["embeddings.word_embeddings.weight"])
    assert np.array_equal(state["bert.encoder.layer.1.output.dense.weight"], base["encoder.layer.1.output.dense.weight"])
    assert not np.array_equal(state["bert.encoder.layer.2.output.dense.weight"],
                              base["encoder.layer.2.output.dense.weight"])
    changed = state["bert.encoder.layer.5.output.dense.weight"] - base["encoder.layer.5.output.dense.weight"]
    assert np.linalg.norm(changed) > 1e-2 * np.linalg.norm(base["encoder.layer.5.output.dense.weight"])
    assert state["classifier.weight"].shape == (3, 384)
    # Packing the rebuilt weights again gives the same 68 tensors: 4 layers x 16, the pooler's 2, the head's 2.
    assert pack_trained(state, tmp_path / TRAINED_FILE) == 68
    again, shipped = load_file(str(tmp_path / TRAINED_FILE)), load_file(str(SHIPPED / TRAINED_FILE))
    assert again.keys() == shipped.keys()
    assert all(np.abs(again[k].astype(np.float32) - shipped[k].astype(np.float32)).max() <= 1 for k in again
               if again[k].dtype == np.int8)


def test_rebuilt_weights_are_written_once_per_checksum_and_checked_at_each_load(tmp_path, caplog):
    first = rebuilt_model(SHIPPED, tmp_path)
    model_file = first / "model.safetensors"
    record = json.loads((first / REBUILT_RECORD).read_text())
    assert first.parent == tmp_path / "models" and first.name == f"verifier-{record['trained_sha256'][:16]}"
    assert record["trained_sha256"] == json.loads((SHIPPED / "training.json").read_text())["sha256"]
    assert set(record["files"]) == {"model.safetensors", "config.json", "config_sentence_transformers.json",
                                    "modules.json", "sentence_bert_config.json", "tokenizer.json",
                                    "tokenizer_config.json"}
    assert model_file.stat().st_size > 80e6  # the full float32 model
    written = model_file.stat().st_mtime_ns
    assert rebuilt_model(SHIPPED, tmp_path) == first and model_file.stat().st_mtime_ns == written  # reused as is
    with open(model_file, "r+b") as handle:  # damaged: one byte of the weights flipped
        handle.seek(model_file.stat().st_size - 100)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with caplog.at_level(logging.WARNING, logger="rag.cross_encoder"):
        assert rebuilt_model(SHIPPED, tmp_path) == first
    assert "rebuilding the cached model" in caplog.text and "differs from its recorded checksum" in caplog.text
    assert sha256_file(model_file) == record["files"]["model.safetensors"]
    assert [p.name for p in (tmp_path / "models").iterdir()] == [first.name]  # no temporary folder left
