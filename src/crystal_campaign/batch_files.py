"""The batch contract: the record and sidecar shapes of every batch, with their one writer and reader.

A batch is ``{stem}.jsonl.gz`` (one record per requested structure, in batch order) plus a
``{stem}.json`` sidecar written last, so the sidecar's presence means the batch is whole. Every
file goes to a temporary name beside its final one and is renamed into place, so a killed job
never leaves a truncated file. The same records always give the same bytes (no name or time in
the gzip header).

Records (``Record``): ``id``, ``index``, ``generator``, ``batch``, ``structure``
(``pymatgen Structure.as_dict()``, so partial occupancies survive, or ``null``), ``reason``
(``null``, or why there is no usable structure) and ``source``. A backend may add extra keys
(``extras``, e.g. a CSP target formula); every later stage carries them along. A relaxed record
(``RelaxedRecord``) adds the relaxation's result fields.

Sidecars: ``SampleSidecar`` for ``samples/``, ``RelaxSidecar`` for ``relaxed/``; every key is
always present. ``failed`` names why a job that kept failing was recorded as failure rows.

Needs only the standard library: backends in their own environment (MatterGen's runner) import
this module by putting the package's ``src`` on ``sys.path``; ``crystal_campaign.io`` adds the
pymatgen reader for the main environment.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypedDict

from crystal_campaign import testhooks


class Record(TypedDict):
    """One requested structure of a sample batch (plus any extras its backend adds)."""

    id: str
    index: int
    generator: str
    batch: int
    structure: dict | None
    reason: str | None
    source: str | None


class RelaxedRecord(Record):
    """A record of a relaxed batch: the sample record's keys and extras, then the result."""

    status: str  # converged, unconverged, failed, skipped, not_relaxed, no_structure
    energy: float
    energy_per_atom: float
    n_steps: int
    converged: bool
    max_force: float
    volume_ratio: float
    rmsd: float


CORE_KEYS = frozenset(Record.__annotations__)
RESULT_KEYS = frozenset(RelaxedRecord.__annotations__) - CORE_KEYS


class Sampler(TypedDict):
    """A diffusion sampler's steps, and whether it is the model's published one."""

    steps: int
    corrector_steps: int
    overrides: list[str]
    published: bool
    label: str


class Counts(TypedDict):
    n_requested: int
    n_generated: int
    n_failed: int


class SampleSidecar(Counts):
    campaign: str
    generator: str
    backend: str
    batch: int
    seed: int
    settings: dict  # the generator's config section, defaults filled
    # Backend-specific facts; model fields, where a model is used: model, checkpoint, checkpoint_sha256.
    stats: dict
    conditioning: dict  # properties the model was conditioned on ({} when unconditioned)
    diffusion_guidance_factor: float | None
    sampler: Sampler | None  # None for generators without a diffusion sampler
    device: str | None
    failed: str | None
    wall_time_s: float
    versions: dict[str, str]
    inputs: dict[str, list[int]]  # files it was made from (imports): path -> [size, mtime ns]


class RelaxSidecar(TypedDict):
    generator: str
    batch: int
    settings: dict  # the relax section it was relaxed with (execution keys aside)
    inputs: dict[str, list[int]]  # the sample batch it relaxed: path -> [size, mtime ns]
    relaxer: dict  # the relaxer's settings: backend, model, device, checkpoint and its SHA-256
    n_structures: int
    status_counts: dict[str, int]
    failed: str | None
    wall_time_s: float


def structure_record(record_id: str, index: int, structure: Any, reason: str | None, **fields: Any) -> dict:
    """One record; ``structure`` is a pymatgen Structure or ``None``. Batch records pass
    ``generator``, ``batch``, ``source`` and any extras as ``fields`` (a reference snapshot's
    records, which belong to no batch, only ``source``)."""
    return {
        "id": record_id,
        "index": index,
        "structure": structure.as_dict() if structure is not None else None,
        "reason": reason,
        **fields,
    }


def extras(one: dict) -> dict:
    """The keys a backend added to a record, which every later stage carries along."""
    return {key: value for key, value in one.items() if key not in CORE_KEYS | RESULT_KEYS}


def sample_sidecar(
    records: list[dict],
    *,
    campaign: str,
    settings: dict,
    batch: int,
    seed: int,
    stats: dict,
    wall_time_s: float,
    versions: dict[str, str],
    conditioning: dict | None = None,
    diffusion_guidance_factor: float | None = None,
    sampler: Sampler | None = None,
    device: str | None = None,
    failed: str | None = None,
    inputs: dict[str, list[int]] | None = None,
) -> dict:
    """A sample batch's sidecar, its counts taken from ``records``."""
    return {
        "campaign": campaign,
        "generator": settings["name"],
        "backend": settings["backend"],
        "batch": batch,
        "seed": seed,
        "settings": settings,
        "stats": stats,
        "conditioning": conditioning or {},
        "diffusion_guidance_factor": diffusion_guidance_factor,
        "sampler": sampler,
        "device": device,
        "failed": failed,
        "wall_time_s": round(wall_time_s, 3),
        "versions": versions,
        "inputs": inputs or {},
        **counts(records),
    }


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        testhooks.reached(path)
        # mkstemp makes the file private (0600); results are shared with the group on clusters.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_records(path: str | Path, records: Iterable[dict]) -> None:
    with (
        atomic_path(path) as tmp,
        open(tmp, "wb") as file,
        gzip.GzipFile(filename="", mode="wb", fileobj=file, mtime=0) as raw,
        io.TextIOWrapper(raw) as handle,
    ):
        for one in records:
            handle.write(json.dumps(one, default=str) + "\n")


def read_record_dicts(path: str | Path) -> list[dict]:
    """Records of a batch file as written (``structure`` still a dict)."""
    with gzip.open(path, "rt") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar_path(batch_path: str | Path) -> Path:
    """``x/0003.jsonl.gz`` -> ``x/0003.json``."""
    path = Path(batch_path)
    return path.with_name(path.name.removesuffix(".jsonl.gz") + ".json")


def counts(records: list[dict]) -> Counts:
    n_generated = sum(one["structure"] is not None for one in records)
    return {"n_requested": len(records), "n_generated": n_generated, "n_failed": len(records) - n_generated}


def write_batch(path: str | Path, records: list[dict], sidecar: SampleSidecar | RelaxSidecar) -> None:
    """The one writer of a batch: its records, then its sidecar."""
    write_records(path, records)
    write_json(sidecar_path(path), sidecar)


def read_sidecar(batch_path: str | Path) -> dict:
    """The sidecar of a batch file (``SampleSidecar`` or ``RelaxSidecar``)."""
    return read_json(sidecar_path(batch_path))
