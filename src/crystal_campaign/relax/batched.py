"""The batched ASE engine: one model call per optimizer step for a whole sub-batch of structures.

Each structure keeps its own ASE FIRE optimizer (and Frechet cell filter), so a batched
relaxation takes exactly the steps the per-structure loop takes; only the potential is
evaluated for all still-running structures at once. Sub-batches are packed by atom count under
a memory budget; one that runs out of memory (or hits any other error) is split in two and
retried, down to single structures, which then become failed rows.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Protocol

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from crystal_campaign.io import Progress
from crystal_campaign.relax.base import (
    EngineRun,
    EngineSettings,
    EngineStats,
    RelaxResult,
    explosion,
    finished,
    fire_optimizer,
)

log = logging.getLogger(__name__)


class BatchPotential(Protocol):
    def evaluate(self, atoms: list[Atoms]) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """Energy (eV), forces (eV/A) and Voigt stress (eV/A^3) of every structure, in one model call."""


def pack_by_atom_count(sizes: list[int], max_atoms: int) -> list[list[int]]:
    """Indices grouped largest first into sub-batches of at most ``max_atoms`` atoms (a larger one alone)."""
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        if current and total + sizes[index] > max_atoms:
            groups.append(current)
            current, total = [], 0
        current.append(index)
        total += sizes[index]
    return [*groups, current] if current else groups


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.OutOfMemoryError | MemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    )


def release_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class _Relaxation:
    """One structure's relaxation state; its forces come from the batched model call."""

    def __init__(self, structure: Structure, relax_cell: bool) -> None:
        self.atoms = AseAtomsAdaptor.get_atoms(structure)
        self.initial_volume = self.atoms.get_volume()
        self.optimizer = fire_optimizer(self.atoms, relax_cell)

    def advance(
        self, energy: float, forces: np.ndarray, stress: np.ndarray, settings: EngineSettings
    ) -> RelaxResult | None:
        """Take the new forces; the result when the relaxation ends here, else step once and None."""
        self.atoms.calc = SinglePointCalculator(self.atoms, energy=energy, forces=forces, stress=stress)
        ratio = self.atoms.get_volume() / self.initial_volume
        failure = explosion(energy, forces, ratio, settings.max_volume_ratio)
        if failure is not None:
            failure.n_steps = self.optimizer.nsteps
            return failure
        self.optimizer.fmax = settings.fmax
        converged = self.optimizer.converged()
        if converged or self.optimizer.nsteps >= settings.max_steps:
            relaxed = AseAtomsAdaptor.get_structure(self.atoms)
            return finished(relaxed, energy, forces, self.optimizer.nsteps, converged, ratio)
        self.optimizer.step()
        self.optimizer.nsteps += 1
        return None


def _finite(evaluation: tuple[float, np.ndarray, np.ndarray]) -> bool:
    energy, forces, stress = evaluation
    return bool(np.isfinite(energy) and np.isfinite(forces).all() and np.isfinite(stress).all())


def evaluate_apart_from_non_finite(
    potential: BatchPotential, atoms: list[Atoms], stats: EngineStats
) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """One model call; if it gives non-finite values, halves are evaluated again, down to single structures.

    A structure whose energy is NaN (e.g. two atoms on one site) makes the back-propagated forces
    of its batch mates NaN too; re-evaluating without it keeps theirs exact.
    """
    evaluated = potential.evaluate(atoms)
    stats.model_calls += 1
    if len(atoms) == 1 or all(_finite(e) for e in evaluated):
        return evaluated
    half = len(atoms) // 2
    return evaluate_apart_from_non_finite(potential, atoms[:half], stats) + evaluate_apart_from_non_finite(
        potential, atoms[half:], stats
    )


def relax_sub_batch(
    structures: list[Structure],
    potential: BatchPotential,
    settings: EngineSettings,
    stats: EngineStats,
    progress: Progress,
) -> list[RelaxResult]:
    """Relax all structures together; finished ones leave the batch, the rest step on."""
    relaxations = [_Relaxation(structure, settings.relax_cell) for structure in structures]
    results: list[RelaxResult | None] = [None] * len(structures)
    active = list(range(len(structures)))
    step = 0
    while active:
        progress.tick(f"sub-batch of {len(structures)} at step {step}: {len(active)} still relaxing")
        evaluated = evaluate_apart_from_non_finite(potential, [relaxations[i].atoms for i in active], stats)
        still_running = []
        for index, (energy, forces, stress) in zip(active, evaluated, strict=True):
            results[index] = relaxations[index].advance(energy, forces, stress, settings)
            if results[index] is None:
                still_running.append(index)
        active = still_running
        step += 1
    return results


def relax_in_batches(
    structures: list[Structure],
    potential: BatchPotential,
    settings: EngineSettings,
    stats: EngineStats | None = None,
) -> list[RelaxResult]:
    """Relax every structure in memory-budgeted sub-batches; never raises for one bad structure."""
    stats = EngineStats() if stats is None else stats
    progress = Progress("relaxed structures", len(structures))
    results: list[RelaxResult | None] = [None] * len(structures)
    pending = deque(pack_by_atom_count([len(s) for s in structures], settings.max_batch_atoms))
    while pending:
        group = pending.popleft()
        try:
            relaxed = relax_sub_batch([structures[i] for i in group], potential, settings, stats, progress)
        except Exception as error:  # out of memory, or one structure the potential cannot handle
            release_memory()
            kind = "out of memory" if is_out_of_memory(error) else "relaxation error"
            if len(group) == 1:
                (index,) = group
                reason = f"{kind}: {type(error).__name__}: {error}"
                results[index] = RelaxResult("failed", reason=reason[:500])
                progress.advance()
                continue
            stats.splits += 1
            log.warning("sub-batch of %d structures: %s; splitting in two and retrying", len(group), kind)
            half = len(group) // 2
            pending.extendleft([group[half:], group[:half]])
            continue
        stats.sub_batches += 1
        for index, result in zip(group, relaxed, strict=True):
            results[index] = result
        progress.advance(len(group))
    log.info(
        "batched relaxation: %d sub-batches, %d splits, %d model calls",
        stats.sub_batches,
        stats.splits,
        stats.model_calls,
    )
    return results


class BatchedAseEngine:
    def relax(self, structures: list[Structure], run: EngineRun) -> list[RelaxResult]:
        results = relax_in_batches(structures, run.potentials.batch, run.settings, run.stats)
        for index, result in enumerate(results):
            run.on_finished(index, result)
        return results


ENGINE = BatchedAseEngine()
