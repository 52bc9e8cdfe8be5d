"""CHGNet's crystal features as structure embeddings (real weights from its wheel)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import alloy, rock_salt, rotated
from crystal_campaign import embeddings, io
from crystal_campaign.relax.chgnet import checkpoint_file

SETTINGS = {"model": "chgnet", "checkpoint": None, "device": "cpu"}


@pytest.fixture(scope="module")
def chgnet_embed():
    return embeddings.EMBEDDING_MODELS["chgnet"](SETTINGS)


def test_chgnet_embeddings_are_its_crystal_features(chgnet_embed):
    from chgnet.model import CHGNet

    described, embed = chgnet_embed
    assert described["checkpoint_sha256"] == io.file_sha256(checkpoint_file("0.3.0"))
    nacl, kbr = rock_salt(), rock_salt(6.6, ("K", "Br"))
    vectors = embed([nacl, rotated(nacl), kbr])
    assert vectors.shape == (3, 64)
    # invariant to a rotation of the cell; two compounds differ
    assert np.allclose(vectors[0], vectors[1], atol=1e-5)
    assert not np.allclose(vectors[0], vectors[2], atol=1e-3)
    direct = CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False).predict_structure(
        kbr, task="e", return_crystal_feas=True
    )
    assert np.allclose(vectors[2], direct["crystal_fea"], atol=1e-6)


def test_every_record_keeps_a_row_with_an_embedding_or_why_not(chgnet_embed):
    _, embed = chgnet_embed
    disordered = alloy(["Cu", "Cu", "Ni", "Ni"])
    disordered.replace_species({"Cu": {"Cu": 0.5, "Ni": 0.5}})
    beyond_the_model = rock_salt(5.0, ("Og", "Cl"))  # CHGNet knows elements up to Z = 94
    records = [
        {"id": "nacl", "structure": rock_salt()},
        {"id": "failed", "structure": None},
        {"id": "disordered", "structure": disordered},
        {"id": "oganesson", "structure": beyond_the_model},
        {"id": "kbr", "structure": rock_salt(6.6, ("K", "Br"))},
    ]
    table = embeddings.embedding_rows(records, embed).set_index("id")
    assert list(table.index) == ["nacl", "failed", "disordered", "oganesson", "kbr"]
    reasons = table["embedding_reason"]
    assert reasons["failed"] == "no structure" and reasons["disordered"] == "disordered"
    assert reasons["oganesson"].startswith("RuntimeError:") and table.loc["oganesson", "embedding"] is None
    assert reasons[["nacl", "kbr"]].isna().all()
    assert len(table.loc["kbr", "embedding"]) == 64


def test_embedding_tables_record_the_model(tmp_path, chgnet_embed):
    reference = tmp_path / "reference.jsonl.gz"
    io.write_records(reference, [io.structure_record("r0", 0, rock_salt(), None)])
    output = tmp_path / "embeddings.parquet"
    embeddings.run_embed_reference_job(str(reference), str(output), SETTINGS)
    table, recorded = io.read_table(output)
    assert recorded["embedding"]["model"] == "chgnet" and recorded["embedding"]["feature"] == "crystal_fea"
    assert len(table["embedding"][0]) == 64
