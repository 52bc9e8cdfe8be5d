"""Generator backends: each is one adapter module exposing ``BACKEND`` and ``VERSIONED_PACKAGES``."""

from __future__ import annotations

import importlib

from crystal_campaign.generators.base import (
    BatchOutput,
    GeneratorBackend,
    GeneratorUnavailable,
    Sample,
    derive_seed,
    package_versions,
    run_sample_job,
    structure_id,
)

# Imported on demand so that a campaign loads only the backends it uses.
BACKEND_MODULES = {
    "random": "crystal_campaign.generators.random_search",
    "import": "crystal_campaign.generators.importer",
    "chemeleon": "crystal_campaign.generators.chemeleon",
    "mattergen": "crystal_campaign.generators.mattergen",
}


def backend_module(settings: dict):
    return importlib.import_module(BACKEND_MODULES[settings["backend"]])


def prefetch(settings: dict) -> list[str]:
    """Download the generator's model into its cache (backends without a model have no ``prefetch``)."""
    module = backend_module(settings)
    return module.prefetch(settings) if hasattr(module, "prefetch") else []


def sample(settings: dict, campaign: str, batch: int, path: str) -> None:
    """Run one sampling job of the generator configured by ``settings`` into ``path``."""
    module = backend_module(settings)
    versions = package_versions(*module.VERSIONED_PACKAGES)
    if hasattr(module.BACKEND, "write_batch"):  # runs in its own environment and writes the files itself
        module.BACKEND.write_batch(settings, campaign, batch, path, versions)
    else:
        run_sample_job(module.BACKEND, settings, campaign, batch, path, versions)


__all__ = [
    "BACKEND_MODULES",
    "BatchOutput",
    "GeneratorBackend",
    "GeneratorUnavailable",
    "Sample",
    "derive_seed",
    "package_versions",
    "prefetch",
    "run_sample_job",
    "sample",
    "structure_id",
]
