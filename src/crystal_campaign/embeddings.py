"""Structure embeddings from a potential, for the Frechet distance between the evaluated
structures and the reference snapshot (``distributions.frechet_distance``; LeMat-GenBench's
distribution metric on a potential's learned representation).

Embedding models come from ``EMBEDDING_MODELS`` (``metrics.embedding``); ``chgnet`` is CHGNet's
crystal feature (``predict_structure(..., return_crystal_feas=True)``: the mean of the atom
features after its last interaction block, 64 numbers), from the real weights inside its wheel.
One table per relaxed chunk and one for the reference, each recording the model and checkpoint.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crystal_campaign import io

# Structures per model call: bounds the memory of one call on a chunk of thousands.
BATCH_SIZE = 64


def chgnet_embedder(settings: dict):
    """(model description, function: structures -> one row per structure) of CHGNet's crystal features."""
    from chgnet.model import CHGNet

    from crystal_campaign.relax.base import resolve_device
    from crystal_campaign.relax.chgnet import DEFAULT_MODEL, checkpoint_file

    name = settings.get("checkpoint") or DEFAULT_MODEL
    checkpoint = checkpoint_file(name)
    model = (
        CHGNet.from_file(str(checkpoint))
        if name == str(checkpoint)
        else CHGNet.load(model_name=name, use_device=resolve_device(settings["device"]), verbose=False)
    )

    def embed(structures: list) -> np.ndarray:
        predictions = model.predict_structure(
            structures, task="e", return_crystal_feas=True, batch_size=BATCH_SIZE
        )
        if isinstance(predictions, dict):  # one structure in, one dict out
            predictions = [predictions]
        return np.array([p["crystal_fea"] for p in predictions], dtype=float)

    described = {
        "model": "chgnet",
        "checkpoint": checkpoint.name,
        "checkpoint_sha256": io.file_sha256(checkpoint),
        "feature": "crystal_fea",
    }
    return described, embed


EMBEDDING_MODELS = {"chgnet": chgnet_embedder}


def embedding_rows(records: list[dict], embed) -> pd.DataFrame:
    """``id``, ``embedding`` (a list of floats) and ``embedding_reason`` (why there is none: no
    structure, a disordered one, or the model's error on it) of every record."""
    rows = []
    for start in range(0, len(records), BATCH_SIZE):
        part = records[start : start + BATCH_SIZE]
        ordered = [r for r in part if r["structure"] is not None and r["structure"].is_ordered]
        try:
            vectors = list(embed([r["structure"] for r in ordered])) if ordered else []
            found = {r["id"]: _row(r, v.tolist(), None) for r, v in zip(ordered, vectors, strict=True)}
        except Exception:  # one structure the model cannot take never loses its neighbours
            found = {r["id"]: _one_embedding(r, embed) for r in ordered}
        rows += [found.get(r["id"]) or _row(r, None, _missing(r)) for r in part]
    return pd.DataFrame(rows, columns=["id", "embedding", "embedding_reason"])


def _row(record: dict, embedding: list[float] | None, reason: str | None) -> dict:
    return {"id": record["id"], "embedding": embedding, "embedding_reason": reason}


def _missing(record: dict) -> str:
    return "no structure" if record["structure"] is None else "disordered"


def _one_embedding(record: dict, embed) -> dict:
    try:
        return _row(record, embed([record["structure"]])[0].tolist(), None)
    except Exception as error:
        return _row(record, None, f"{type(error).__name__}: {error}")


def write_embeddings(records: list[dict], output_path: str, settings: dict) -> None:
    described, embed = EMBEDDING_MODELS[settings["model"]](settings)
    io.write_table(output_path, embedding_rows(records, embed), {"embedding": described})


def run_embed_job(relaxed_manifest: str, output_path: str, settings: dict) -> None:
    write_embeddings(io.read_chunk_records(relaxed_manifest), output_path, settings)


def run_embed_reference_job(reference_path: str, output_path: str, settings: dict) -> None:
    write_embeddings(io.read_records(reference_path), output_path, settings)
