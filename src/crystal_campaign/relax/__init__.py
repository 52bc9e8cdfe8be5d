"""The relaxer registry: backend name -> the module whose ``BACKEND`` (a ``RelaxerBackend``) serves it.

Every relaxer reads the same ``relax`` config section and writes the same per-structure results.
Adding a potential: one module with a ``BACKEND``, one line here, its docs and its tests.
Modules are imported on demand, so a campaign loads only the potential it uses.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from crystal_campaign.relax.base import (
    DEFAULT_MEMORY_BUDGET_MB,
    Relaxer,
    RelaxerBackend,
    RelaxResult,
    configure_threads,
    relax_records,
    rmsd_angstrom,
    run_relax_job,
)
from crystal_campaign.relax.engines import ENGINE_NAMES
from crystal_campaign.relax.none import NoRelaxer
from crystal_campaign.schema import section_defaults

BACKEND_MODULES = {
    "chgnet": "crystal_campaign.relax.chgnet",
    "mace": "crystal_campaign.relax.mace",
    "none": "crystal_campaign.relax.none",
    "sevennet": "crystal_campaign.relax.sevennet",
}
# How a relax job runs, never what it computes: the rules keep these out of params (so changing
# them reruns nothing) and hand them to the job as resources (``execution_resources``).
EXECUTION_KEYS = ("threads", "memory_budget_mb", "memory_per_atom_mb")


def backend(name: str) -> RelaxerBackend:
    if name not in BACKEND_MODULES:
        raise ValueError(f"unknown relax backend {name!r}; allowed: {', '.join(BACKEND_MODULES)}")
    return importlib.import_module(BACKEND_MODULES[name]).BACKEND


def config_problems(section: dict) -> list[str]:
    """A model file must exist and the engine drive the potential; the rest is the backend's to
    check (e.g. MACE's model names)."""
    if section["engine"] == "torch-sim" and not backend(section["backend"]).torch_sim:
        return [
            f"relax.engine: torch-sim does not drive the {section['backend']} potential; "
            "allowed: auto, batched-ase, per-structure"
        ]
    if section["model_path"] is not None:
        if not Path(section["model_path"]).is_file():
            return [
                f"relax.model_path: {section['model_path']!r} does not exist; allowed: an existing model file"
            ]
        return []
    return backend(section["backend"]).config_problems(section)


def prefetch(settings: dict) -> list[str]:
    """Download the relaxer's model into its cache; one line per item."""
    return backend(settings["backend"]).prefetch(settings)


def get_relaxer(settings: dict) -> Relaxer:
    """The configured relaxer; keys missing from ``settings`` take their config-schema defaults."""
    settings = {**section_defaults("relax"), **settings}
    settings["threads"] = settings["threads"] or 1  # a job gets its threads from Snakemake
    configure_threads(settings["threads"])
    return backend(settings["backend"]).relaxer(settings)


def execution_resources(section: dict) -> dict[str, str]:
    """The execution keys a relax job reads from its resources (JSON text: floats stay exact),
    ``threads`` aside, which Snakemake passes itself."""
    return {key: json.dumps(section[key]) for key in EXECUTION_KEYS if key != "threads"}


def job_settings(own_settings: dict, resources, threads: int) -> dict:
    """A relax job's settings: its params, the execution keys from its resources, its threads."""
    execution = {key: json.loads(getattr(resources, key)) for key in EXECUTION_KEYS if key != "threads"}
    return {**own_settings, **execution, "threads": threads}


__all__ = [
    "BACKEND_MODULES",
    "DEFAULT_MEMORY_BUDGET_MB",
    "ENGINE_NAMES",
    "EXECUTION_KEYS",
    "NoRelaxer",
    "RelaxResult",
    "Relaxer",
    "RelaxerBackend",
    "backend",
    "config_problems",
    "configure_threads",
    "execution_resources",
    "get_relaxer",
    "job_settings",
    "prefetch",
    "relax_records",
    "rmsd_angstrom",
    "run_relax_job",
]
