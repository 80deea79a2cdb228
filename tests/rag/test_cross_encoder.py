"""The compact form of the shipped models: the trained layers as int8 differences from the installed base weights."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import load_file

from rag.cross_encoder import TRAINED_FILE, base_weights_file, pack_trained, unpack_trained
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
