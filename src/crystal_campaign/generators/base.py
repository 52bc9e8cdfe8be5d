"""The generator interface and the sampling job every backend runs through."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import time
from dataclasses import dataclass, field
from typing import Protocol

from pymatgen.core import Structure

from crystal_campaign import io


@dataclass
class Sample:
    """One requested structure: a structure, or ``None`` with the reason it failed."""

    structure: Structure | None
    reason: str | None = None
    source: str | None = None
    extras: dict = field(default_factory=dict)  # more record fields, e.g. a CSP target formula


@dataclass
class BatchOutput:
    samples: list[Sample]
    stats: dict = field(default_factory=dict)


class GeneratorUnavailable(io.JobError):
    """The generator cannot run here (no checkpoint, unusable model, no device); the message, one
    line, names the generator and what to do."""


class GeneratorBackend(Protocol):
    def sample_batch(self, settings: dict, batch: int, seed: int) -> BatchOutput:
        """Produce batch ``batch`` of the generator configured by ``settings``, reproducibly from ``seed``."""


def derive_seed(campaign: str, generator: str, batch: int) -> int:
    """Seed fixed by (campaign, generator, batch): reruns and added batches reproduce exactly."""
    digest = hashlib.sha256(f"{campaign}\0{generator}\0{batch}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def structure_id(generator: str, batch: int, index: int) -> str:
    return f"{generator}-b{batch:04d}-{index:04d}"


def package_versions(*names: str) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("crystal-campaign", "pymatgen", *names):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_batch(
    path: str,
    campaign: str,
    settings: dict,
    batch: int,
    seed: int,
    output: BatchOutput,
    wall_time_s: float,
    versions: dict[str, str],
) -> None:
    """Write a batch file and its sidecar; the sidecar last, so its presence means the batch is whole."""
    name = settings["name"]
    records = [
        io.structure_record(
            structure_id(name, batch, index),
            index,
            sample.structure,
            sample.reason,
            generator=name,
            batch=batch,
            source=sample.source,
            **sample.extras,
        )
        for index, sample in enumerate(output.samples)
    ]
    io.write_batch_files(
        path,
        records,
        {
            "campaign": campaign,
            "generator": name,
            "backend": settings["backend"],
            "batch": batch,
            "seed": seed,
            "settings": settings,
            "stats": output.stats,
            "wall_time_s": round(wall_time_s, 3),
            "versions": versions,
        },
    )


def run_sample_job(
    backend: GeneratorBackend, settings: dict, campaign: str, batch: int, path: str, versions: dict[str, str]
) -> None:
    seed = derive_seed(campaign, settings["name"], batch)
    start = time.perf_counter()
    output = backend.sample_batch(settings, batch, seed)
    write_batch(path, campaign, settings, batch, seed, output, time.perf_counter() - start, versions)
