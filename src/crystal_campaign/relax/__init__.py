"""Relaxers: one adapter per potential behind the ``Relaxer`` interface."""

from __future__ import annotations

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


def get_relaxer(settings: dict) -> Relaxer:
    configure_threads(settings["threads"])
    if settings["backend"] == "none":
        return NoRelaxer()
    from crystal_campaign.relax.chgnet import ChgnetRelaxer

    return ChgnetRelaxer(settings)


def prefetch(settings: dict) -> list[str]:
    """Download the relaxer's model into its cache; CHGNet's weights ship in its wheel."""
    return []


__all__ = [
    "NoRelaxer",
    "RelaxResult",
    "Relaxer",
    "configure_threads",
    "get_relaxer",
    "prefetch",
    "relax_records",
    "relax_with_ase",
    "rmsd_angstrom",
    "run_relax_job",
]
