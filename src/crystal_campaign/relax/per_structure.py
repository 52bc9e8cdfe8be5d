"""The per-structure engine: one ASE FIRE relaxation after another with the potential's ASE calculator.

The reference the batched engines are measured against: ASE's own optimizer and Frechet cell
filter, one model call per structure per step.
"""

from __future__ import annotations

from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from crystal_campaign import io
from crystal_campaign.relax.base import (
    EngineRun,
    RelaxResult,
    explosion,
    finished,
    fire_optimizer,
)


def relax_with_ase(
    structure: Structure, calculator, fmax: float, max_steps: int, relax_cell: bool, max_volume_ratio: float
) -> RelaxResult:
    """FIRE (with a Frechet cell filter) until fmax or max_steps; stops a relaxation that explodes."""
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = calculator
    initial_volume = atoms.get_volume()
    optimizer = fire_optimizer(atoms, relax_cell)
    converged = False
    for converged in optimizer.irun(fmax=fmax, steps=max_steps):  # noqa: B007 - last value wanted
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        ratio = atoms.get_volume() / initial_volume
        failure = explosion(energy, forces, ratio, max_volume_ratio)
        if failure is not None:
            failure.n_steps = optimizer.nsteps
            return failure
    relaxed = AseAtomsAdaptor.get_structure(atoms)
    return finished(relaxed, energy, forces, optimizer.nsteps, converged, ratio)


def relax_one(structure: Structure, relax) -> RelaxResult:
    """Relax one structure with ``relax(structure)``; any error becomes a failed row."""
    try:
        return relax(structure)
    except Exception as error:  # a potential can fail in many ways; one structure never stops a batch
        return RelaxResult("failed", reason=f"relaxation error: {type(error).__name__}: {error}")


class PerStructureEngine:
    def relax(self, structures: list[Structure], run: EngineRun) -> list[RelaxResult]:
        settings = run.settings

        def relax(structure: Structure) -> RelaxResult:
            return relax_with_ase(
                structure,
                run.potentials.calculator,
                settings.fmax,
                settings.max_steps,
                settings.relax_cell,
                settings.max_volume_ratio,
            )

        progress = io.Progress("relaxed structures", len(structures))
        results = []
        for index, structure in enumerate(structures):
            results.append(relax_one(structure, relax))
            run.stats.model_calls += results[-1].n_steps + 1
            run.on_finished(index, results[-1])
            progress.advance()
        return results


ENGINE = PerStructureEngine()
