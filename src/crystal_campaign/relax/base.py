"""The relaxer interface, the per-structure ASE relaxation loop, and the relax job."""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from crystal_campaign import batch_files, io

# MatterGen's RMSD definition: a loose matcher so that relaxed and generated structures align,
# its normalised RMS distance converted to Angstrom; no alignment counts as MAX_RMSD.
MAX_RMSD = 0.5
RMSD_MATCHER = StructureMatcher(
    ltol=0.5,
    stol=MAX_RMSD,
    angle_tol=10,
    primitive_cell=True,
    scale=False,
    attempt_supercell=True,
    allow_subset=False,
)


@dataclass
class RelaxResult:
    """Per-structure outcome; ``status`` is converged, unconverged, failed, skipped or not_relaxed."""

    status: str
    structure: Structure | None = None
    energy: float = math.nan
    energy_per_atom: float = math.nan
    n_steps: int = 0
    converged: bool = False
    max_force: float = math.nan
    volume_ratio: float = math.nan
    rmsd: float = math.nan
    reason: str | None = None

    @property
    def evaluated(self) -> bool:
        return self.structure is not None


class Relaxer(Protocol):
    def settings(self) -> dict:
        """What produced the results: backend, model name, checkpoint hash, optimizer settings."""

    def relax(self, structures: list[Structure]) -> list[RelaxResult]:
        """Relax ordered structures; never raises for one bad structure."""


class RelaxerBackend:
    """One potential (one module, registered in ``crystal_campaign.relax``): the checks of the
    ``relax`` section the schema cannot express, its model downloads, and its relaxer."""

    # The correction its energies need to sit on the MP2020 (GGA/GGA+U mixed) scale with
    # ``stability.energy_correction: auto``: potentials trained on raw MPtrj energies need MP2020.
    energy_correction = "mp2020"

    def config_problems(self, section: dict) -> list[str]:
        """One line per problem, for a section without ``model_path`` (the registry checks that)."""
        return []

    def prefetch(self, settings: dict) -> list[str]:
        """Download the model into its cache; one line per item (none when it ships with its package)."""
        return []

    def relaxer(self, settings: dict) -> Relaxer:
        raise NotImplementedError


def configure_threads(threads: int) -> None:
    """One OpenMP/torch thread per job unless configured: shared cores slow down badly otherwise."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def rmsd_angstrom(generated: Structure, relaxed: Structure) -> float:
    match = RMSD_MATCHER.get_rms_dist(generated, relaxed)
    mean_lattice = Lattice.from_parameters(
        *((np.array(generated.lattice.parameters) + np.array(relaxed.lattice.parameters)) / 2)
    )
    normalisation = (len(generated) / mean_lattice.volume) ** (1 / 3)
    return (MAX_RMSD if match is None else match[0]) / normalisation


def model_source(settings: dict, default: str) -> str:
    """The local model file when one is configured, else the model name (``default`` if none)."""
    return settings.get("model_path") or settings.get("model") or default


def resolve_device(device: str) -> str:
    """``auto`` is the first GPU when torch sees one, else the CPU; other values pass through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def explosion(
    energy: float, forces: np.ndarray, volume_ratio: float, max_volume_ratio: float
) -> RelaxResult | None:
    """A failed result when the relaxation has blown up (non-finite values or runaway volume), else None."""
    if not (math.isfinite(energy) and np.isfinite(forces).all()):
        return RelaxResult("failed", reason="non-finite energy or forces")
    if not 1 / max_volume_ratio <= volume_ratio <= max_volume_ratio:
        return RelaxResult(
            "failed",
            volume_ratio=volume_ratio,
            reason=f"exploded: volume changed by a factor {volume_ratio:.3g}",
        )
    return None


def finished(
    initial: Structure, atoms, energy: float, forces: np.ndarray, n_steps: int, converged: bool, ratio: float
) -> RelaxResult:
    """The result row of a relaxation that ended normally (converged or out of steps)."""
    relaxed = AseAtomsAdaptor.get_structure(atoms)
    energy = float(energy)  # potentials return numpy float32, which JSON would store as a string
    return RelaxResult(
        "converged" if converged else "unconverged",
        structure=relaxed,
        energy=energy,
        energy_per_atom=energy / len(atoms),
        n_steps=n_steps,
        converged=bool(converged),
        max_force=float(np.sqrt((forces**2).sum(axis=1)).max()),
        volume_ratio=ratio,
        rmsd=rmsd_angstrom(initial, relaxed),
    )


def fire_optimizer(atoms, relax_cell: bool):
    """ASE FIRE on the atoms, through a Frechet cell filter when the cell relaxes too."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    return FIRE(FrechetCellFilter(atoms) if relax_cell else atoms, logfile=None)


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
    return finished(structure, atoms, energy, forces, optimizer.nsteps, converged, ratio)


def relax_one(structure: Structure, relax) -> RelaxResult:
    """Relax one structure with ``relax(structure)``; any error becomes a failed row."""
    try:
        return relax(structure)
    except Exception as error:  # a potential can fail in many ways; one structure never stops a batch
        return RelaxResult("failed", reason=f"relaxation error: {type(error).__name__}: {error}")


def relax_each(structures: list[Structure], calculator, settings: dict) -> list[RelaxResult]:
    """The per-structure loop: one ASE relaxation after another with the same calculator."""

    def relax(structure: Structure) -> RelaxResult:
        return relax_with_ase(
            structure,
            calculator,
            settings["fmax"],
            settings["max_steps"],
            settings["relax_cell"],
            settings["max_volume_ratio"],
        )

    progress = io.Progress("relaxed structures", len(structures))
    results = []
    for structure in structures:
        results.append(relax_one(structure, relax))
        progress.advance()
    return results


def relax_records(relaxer: Relaxer, records: list[dict]) -> list[RelaxResult]:
    """Results for every record of a sample batch: failed samples pass through, disordered ones skip."""
    results: dict[int, RelaxResult] = {}
    to_relax = []
    for position, record in enumerate(records):
        structure = record["structure"]
        if structure is None:
            results[position] = RelaxResult("no_structure", reason=record["reason"])
        elif not structure.is_ordered:
            results[position] = RelaxResult("skipped", structure=structure, reason="disordered")
        else:
            to_relax.append(position)
    relaxed = relaxer.relax([records[p]["structure"] for p in to_relax])
    results.update(zip(to_relax, relaxed, strict=True))
    return [results[p] for p in range(len(records))]


def relaxed_record(record: dict, result: RelaxResult) -> dict:
    """A sample record's keys and extras, then the relaxation's result (``batch_files.RelaxedRecord``)."""
    return io.structure_record(
        record["id"],
        record["index"],
        result.structure,
        result.reason,
        generator=record["generator"],
        batch=record["batch"],
        source=record.get("source"),
        **batch_files.extras(record),
        **{k: v for k, v in asdict(result).items() if k not in ("structure", "reason")},
    )


def run_relax_job(relaxer: Relaxer, sample_path: str, output_path: str, failed: str | None = None) -> None:
    """Relax one sample batch into a relaxed batch; ``failed``: why the job is recorded as failed
    (``relaxer`` then stands in for the potential)."""
    start = time.perf_counter()
    records = io.read_records(sample_path)
    sample = io.read_sidecar(sample_path)
    results = relax_records(relaxer, records)
    sidecar: batch_files.RelaxSidecar = {
        "generator": sample["generator"],
        "batch": sample["batch"],
        "relaxer": relaxer.settings(),
        "n_structures": len(records),
        "status_counts": dict(sorted(Counter(result.status for result in results).items())),
        "failed": failed,
        "wall_time_s": round(time.perf_counter() - start, 3),
    }
    io.write_batch(
        output_path,
        [relaxed_record(record, result) for record, result in zip(records, results, strict=True)],
        sidecar,
    )
