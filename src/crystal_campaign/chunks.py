"""Chunks: the consecutive batches of one generator that one job handles (``jobs.batches_per_job``).

Snakemake spends about a millisecond planning each job, so a campaign of 10^4 batches planned one
job per batch and stage took minutes; planned one job per chunk and stage it takes seconds.
Sampling and relaxation still write one file set per batch (the batch contract, ``batch_files``),
and their chunk jobs reuse every batch already made from the same settings and input files: a
resumed, grown or re-chunked campaign samples and relaxes only what is missing or stale. A sample
or relax chunk's Snakemake output is its manifest, naming the chunk's batches with their sidecars;
the checks (validity, reduction, novelty, stability, description) write one table per chunk.

A chunk is named by its first and last batch, ``0010-0019``; the last chunk of a generator may be
shorter. Growing that generator renames its last chunk (``0010-0014`` becomes ``0010-0019``):
its sample and relax jobs reuse the batches they have, its checks run again over the whole chunk.

Needs only the standard library (it is part of the batch contract, like ``batch_files``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from crystal_campaign.batch_files import read_json, sidecar_path, write_json


def chunk_name(first: int, last: int) -> str:
    return f"{first:04d}-{last:04d}"


def chunk_batches(name: str) -> list[int]:
    """The batches of chunk ``name`` (``0010-0019``: batches 10 to 19)."""
    first, last = (int(part) for part in name.split("-"))
    return list(range(first, last + 1))


def split(batches: Sequence[int], size: int) -> list[str]:
    """``batches`` (ascending) as chunks of at most ``size`` consecutive batches."""
    chunks: list[list[int]] = []
    for batch in batches:
        if chunks and batch == chunks[-1][-1] + 1 and len(chunks[-1]) < size:
            chunks[-1].append(batch)
        else:
            chunks.append([batch])
    return [chunk_name(run[0], run[-1]) for run in chunks]


def file_mark(path: str | Path) -> list[int]:
    """Size and modification time (ns) of a file: what a later job compares to see it unchanged."""
    status = os.stat(path)
    return [status.st_size, status.st_mtime_ns]


def file_marks(paths: Iterable[str | Path]) -> dict[str, list[int]]:
    return {str(path): file_mark(path) for path in paths}


def batch_path(folder: str | Path, batch: int) -> str:
    """A batch's records file in a stage folder (``results/c/samples/rss``, 3 -> ``.../0003.jsonl.gz``)."""
    return str(Path(folder) / f"{batch:04d}.jsonl.gz")


def batch_folder(manifest_path: str | Path) -> Path:
    """The stage folder of a chunk manifest (``samples/rss/chunks/0000-0009.json`` -> ``samples/rss``)."""
    return Path(manifest_path).parent.parent


def write_manifest(path: str | Path, generator: str, batch_paths: Sequence[str]) -> None:
    """A sample or relax chunk's manifest: its batches in order, each with its records file and
    sidecar (read here, once, so later jobs need not open every batch's sidecar)."""
    write_json(
        path,
        {
            "generator": generator,
            "batches": [{"path": p, "sidecar": read_json(sidecar_path(p))} for p in batch_paths],
        },
    )


def read_manifest(path: str | Path) -> list[dict]:
    """The batches of a manifest: ``path`` (records file) and ``sidecar``, in batch order."""
    return read_json(path)["batches"]


def manifest_paths(path: str | Path) -> list[str]:
    """The records files a manifest names, in batch order."""
    return [entry["path"] for entry in read_manifest(path)]


def current_sidecar(batch_path: str | Path, expected: dict) -> dict | None:
    """The batch's sidecar if the batch is whole (sidecar written last) and was made as ``expected``
    says (each key equal; ``inputs``: the same files, unchanged), else None."""
    sidecar = sidecar_path(batch_path)
    if not (sidecar.exists() and Path(batch_path).exists()):
        return None
    found = read_json(sidecar)
    return found if all(found.get(key) == value for key, value in expected.items()) else None
