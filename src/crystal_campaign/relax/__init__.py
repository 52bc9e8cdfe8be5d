"""Relaxers: one adapter per potential behind the ``Relaxer`` interface."""

from __future__ import annotations

from crystal_campaign.config import RELAX_EXECUTION_KEYS, section_defaults
from crystal_campaign.relax.base import (
    NoRelaxer,
    Relaxer,
    RelaxResult,
    configure_threads,
    relax_records,
    relax_with_ase,
    rmsd_angstrom,
    run_relax_job,
)


def job_settings(own_settings: dict, section: dict, threads: int) -> dict:
    """A relax job's settings: its params, the execution keys of its config section, its threads."""
    return {**own_settings, **{key: section[key] for key in RELAX_EXECUTION_KEYS}, "threads": threads}


def get_relaxer(settings: dict) -> Relaxer:
    """The configured relaxer; keys missing from ``settings`` take their config-schema defaults."""
    settings = {**section_defaults("relax"), **settings}
    configure_threads(settings["threads"])
    if settings["backend"] == "none":
        return NoRelaxer()
    if settings["backend"] == "mace":
        from crystal_campaign.relax.mace import MaceRelaxer

        return MaceRelaxer(settings)
    from crystal_campaign.relax.chgnet import ChgnetRelaxer

    return ChgnetRelaxer(settings)


def prefetch(settings: dict) -> list[str]:
    """Download the relaxer's model into its cache (MACE foundation models); CHGNet's ship in its wheel."""
    if settings.get("backend") != "mace":
        return []
    from crystal_campaign.relax import mace

    return mace.prefetch(settings)


__all__ = [
    "NoRelaxer",
    "RelaxResult",
    "Relaxer",
    "configure_threads",
    "get_relaxer",
    "job_settings",
    "prefetch",
    "relax_records",
    "relax_with_ase",
    "rmsd_angstrom",
    "run_relax_job",
]
