"""The generator interface: what one backend module provides, and the sampling job it runs through."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import time
from dataclasses import dataclass, field
from typing import ClassVar

from pymatgen.core import Structure

from crystal_campaign import batch_files, chunks, io
from crystal_campaign.screening import structure_junk_reason


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


class GeneratorBackend:
    """One generator backend (one module, registered in ``crystal_campaign.generators``).

    It owns its settings (``settings_schema``: its keys beside the common ``name``, ``backend``,
    ``batch_size`` and ``resources``, with their defaults), the checks the schema cannot express
    (``config_problems``), its downloads (``prefetch``), how many batches it has and which files
    each reads, and its entry point: ``write_batch`` writes one batch in the standard format.
    A backend that samples in this process implements ``sample_batch``; one that runs in its own
    environment overrides ``write_batch`` and writes the batch files from there.
    """

    settings_schema: ClassVar[dict] = {"required": ["n_batches", "batch_size"], "properties": {}}
    versioned_packages: tuple[str, ...] = ()
    conda_env = "campaign"  # envs/{conda_env}.yaml: where its jobs run under ``snakemake --sdm conda``

    def config_problems(self, where: str, settings: dict) -> list[str]:
        """One line per problem the schema cannot see (``where`` names the generator's config entry)."""
        return []

    def prefetch(self, settings: dict) -> list[str]:
        """Download the generator's models into their cache; one line per item."""
        return []

    def target_systems(self, settings: dict) -> set[str]:
        """Chemical systems its configured targets span (empty when unconditioned): the Materials
        Project data ``prefetch`` fetches ahead of novelty and stability."""
        return set()

    def conditioning_targets(self, settings: dict) -> dict:
        """The chemical system and space group it is conditioned on (None where not), for the
        adherence columns of the per-structure table."""
        return {"target_chemsys": None, "target_space_group": None}

    def n_batches(self, settings: dict) -> int:
        return settings["n_batches"]

    def input_files(self, settings: dict, batch: int) -> list[str]:
        """Files that batch ``batch`` reads (its job's inputs)."""
        return []

    def sample_batch(self, settings: dict, batch: int, seed: int) -> BatchOutput:
        """Produce batch ``batch`` of the generator configured by ``settings``, reproducibly from ``seed``."""
        raise NotImplementedError

    def write_batch(self, settings: dict, campaign: str, batch: int, path: str, versions: dict) -> None:
        """Sample batch ``batch`` in this process and write it to ``path``; ``versions``: of the
        packages it ran with (``package_versions``)."""
        start = time.perf_counter()
        inputs = chunks.file_marks(self.input_files(settings, batch))
        output = self.sample_batch(settings, batch, derive_seed(campaign, settings["name"], batch))
        elapsed = time.perf_counter() - start
        write_sample_batch(path, campaign, settings, batch, output, elapsed, versions, inputs=inputs)


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


def screened(sample: Sample) -> Sample:
    """The sample, or a failure row with the reason its structure is junk (``screening``)."""
    reason = None if sample.structure is None else structure_junk_reason(sample.structure)
    return sample if reason is None else Sample(None, reason, sample.source, sample.extras)


def write_sample_batch(
    path: str,
    campaign: str,
    settings: dict,
    batch: int,
    output: BatchOutput,
    wall_time_s: float,
    versions: dict[str, str],
    failed: str | None = None,
    inputs: dict[str, list[int]] | None = None,
) -> None:
    """Write the samples of one batch as batch files (``crystal_campaign.batch_files``); every
    structure passes the junk screen first (a junk one becomes a failure row with the reason).
    ``inputs``: the files it was made from, with their marks (``chunks.file_marks``)."""
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
        for index, sample in enumerate(map(screened, output.samples))
    ]
    sidecar = batch_files.sample_sidecar(
        records,
        campaign=campaign,
        settings=settings,
        batch=batch,
        seed=derive_seed(campaign, name, batch),
        stats=output.stats,
        wall_time_s=wall_time_s,
        versions=versions,
        failed=failed,
        inputs=inputs,
    )
    io.write_batch(path, records, sidecar)
