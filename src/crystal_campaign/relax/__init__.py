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


__all__ = [
    "NoRelaxer",
    "RelaxResult",
    "Relaxer",
    "configure_threads",
    "get_relaxer",
    "relax_records",
    "relax_with_ase",
    "rmsd_angstrom",
    "run_relax_job",
]
