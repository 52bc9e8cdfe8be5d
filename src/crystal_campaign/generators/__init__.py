"""The generator registry: backend name -> the module whose ``BACKEND`` (a ``GeneratorBackend``) serves it.

Adding a backend: one module with a ``BACKEND``, one line here, its docs and its tests.
Modules are imported on demand, so a campaign loads only the backends it uses.
"""

from __future__ import annotations

import importlib

from crystal_campaign.generators.base import (
    BatchOutput,
    GeneratorBackend,
    GeneratorUnavailable,
    Sample,
    derive_seed,
    package_versions,
    structure_id,
)

BACKEND_MODULES = {
    "random": "crystal_campaign.generators.random_search",
    "import": "crystal_campaign.generators.importer",
    "chemeleon": "crystal_campaign.generators.chemeleon",
    "mattergen": "crystal_campaign.generators.mattergen",
}


def backend(name: str) -> GeneratorBackend:
    if name not in BACKEND_MODULES:
        raise ValueError(f"unknown generator backend {name!r}; allowed: {', '.join(BACKEND_MODULES)}")
    return importlib.import_module(BACKEND_MODULES[name]).BACKEND


def settings_schemas() -> dict[str, dict]:
    """Each backend's own settings schema (``GeneratorBackend.settings_schema``), by backend name."""
    return {name: backend(name).settings_schema for name in BACKEND_MODULES}


def config_problems(where: str, settings: dict) -> list[str]:
    return backend(settings["backend"]).config_problems(where, settings)


def prefetch(settings: dict) -> list[str]:
    """Download the generator's models into their cache (one line per item)."""
    return backend(settings["backend"]).prefetch(settings)


def target_systems(settings: dict) -> set[str]:
    return backend(settings["backend"]).target_systems(settings)


def n_batches(settings: dict) -> int:
    return backend(settings["backend"]).n_batches(settings)


def input_files(settings: dict, batch: int) -> list[str]:
    return backend(settings["backend"]).input_files(settings, batch)


def sample(settings: dict, campaign: str, batch: int, path: str) -> None:
    """Run one sampling job of the generator configured by ``settings`` into ``path``."""
    chosen = backend(settings["backend"])
    chosen.write_batch(settings, campaign, batch, path, package_versions(*chosen.versioned_packages))


__all__ = [
    "BACKEND_MODULES",
    "BatchOutput",
    "GeneratorBackend",
    "GeneratorUnavailable",
    "Sample",
    "backend",
    "config_problems",
    "derive_seed",
    "input_files",
    "n_batches",
    "package_versions",
    "prefetch",
    "sample",
    "settings_schemas",
    "structure_id",
    "target_systems",
]
