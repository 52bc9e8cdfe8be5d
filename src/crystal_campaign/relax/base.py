"""The relaxer interface, the per-structure ASE relaxation loop, and the relax job."""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from crystal_campaign import batch_files, chunks, io

# MatterGen's RMSD definition: a loose matcher so that relaxed and generated structures align,
# its normalised RMS distance converted to Angstrom; no alignment counts as MAX_RMSD.
MAX_RMSD = 0.5
# Memory one batched model call may use when relax.memory_budget_mb is null and nothing measures it.
DEFAULT_MEMORY_BUDGET_MB = 4000
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
    """Per-structure outcome; ``status`` is converged, unconverged, failed, skipped, not_relaxed or
    single_point (the energy of the structure as given)."""

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

    def single_points(self, structures: list[Structure]) -> list[RelaxResult]:
        """The energy of each ordered structure as given; never raises for one bad structure."""


class RelaxerBackend:
    """One potential (one module, registered in ``crystal_campaign.relax``): the checks of the
    ``relax`` section the schema cannot express, its model downloads, and its relaxer."""

    # The correction its energies need to sit on the MP2020 (GGA/GGA+U mixed) scale with
    # ``stability.energy_correction: auto``: potentials trained on raw MPtrj energies need MP2020.
    energy_correction = "mp2020"
    # whether torch-sim wraps the potential (its relaxer then offers the torch-sim engine)
    torch_sim = False

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
    relaxed: Structure, energy: float, forces: np.ndarray, n_steps: int, converged: bool, ratio: float
) -> RelaxResult:
    """The result row of a relaxation that ended normally (converged or out of steps); its RMSD to
    the input is measured afterwards (``RmsdQueue``)."""
    energy = float(energy)  # potentials return numpy float32, which JSON would store as a string
    return RelaxResult(
        "converged" if converged else "unconverged",
        structure=relaxed,
        energy=energy,
        energy_per_atom=energy / len(relaxed),
        n_steps=int(n_steps),
        converged=bool(converged),
        max_force=float(np.sqrt((forces**2).sum(axis=1)).max()),
        volume_ratio=float(ratio),
    )


def single_point(structure: Structure, energy: float, forces: np.ndarray) -> RelaxResult:
    """The result row of one energy and force evaluation of a structure as given."""
    failure = explosion(energy, forces, 1.0, math.inf)
    if failure is not None:
        return failure
    energy = float(energy)
    return RelaxResult(
        "single_point",
        structure=structure,
        energy=energy,
        energy_per_atom=energy / len(structure),
        max_force=float(np.sqrt((forces**2).sum(axis=1)).max()),
        volume_ratio=1.0,
        rmsd=0.0,
    )


def fire_optimizer(atoms, relax_cell: bool):
    """ASE FIRE on the atoms, through a Frechet cell filter when the cell relaxes too."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    return FIRE(FrechetCellFilter(atoms) if relax_cell else atoms, logfile=None)


@dataclass(frozen=True)
class EngineSettings:
    """What every engine reads: the optimizer's stop criteria and the memory one model call may use."""

    fmax: float
    max_steps: int
    relax_cell: bool
    max_volume_ratio: float
    max_batch_atoms: int
    # on a GPU with no configured budget, engines that can measure what fits do (torch-sim)
    measure_memory: bool = False

    @classmethod
    def from_relax_settings(cls, settings: dict, device: str) -> EngineSettings:
        """The memory budget becomes an atom budget through the configured per-atom estimate."""
        budget = settings["memory_budget_mb"]
        return cls(
            fmax=settings["fmax"],
            max_steps=settings["max_steps"],
            relax_cell=settings["relax_cell"],
            max_volume_ratio=settings["max_volume_ratio"],
            max_batch_atoms=max(
                1, int((budget or DEFAULT_MEMORY_BUDGET_MB) / settings["memory_per_atom_mb"])
            ),
            measure_memory=budget is None and device.startswith("cuda"),
        )


@dataclass
class EngineStats:
    """How a relaxation ran: model calls, sub-batches relaxed, batches shrunk after running out of
    memory, and (torch-sim) the engine step at which each structure entered and left the batch."""

    sub_batches: int = 0
    splits: int = 0
    model_calls: int = 0
    entered: dict[int, int] = field(default_factory=dict)
    left: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Potentials:
    """One machine-learned potential as each engine drives it: an ASE calculator (per-structure
    loop), a batch evaluator (batched ASE) and, where torch-sim wraps it, a torch-sim model."""

    calculator: object
    batch: object
    torch_sim_model: Callable[[], object] | None = None


@dataclass(frozen=True)
class EngineRun:
    """What an engine relaxes with: the potential, the settings, the statistics it keeps, and
    ``on_finished(index, result)`` to call as each structure ends (RMSDs are measured from there)."""

    potentials: Potentials
    settings: EngineSettings
    stats: EngineStats
    on_finished: Callable[[int, RelaxResult], None]


class RelaxEngine(Protocol):
    def relax(self, structures: list[Structure], run: EngineRun) -> list[RelaxResult]:
        """One result per structure, in order; never raises for one bad structure."""


def _rmsd_of_pair(pair: tuple[Structure, Structure]) -> float:
    return rmsd_angstrom(*pair)


class RmsdQueue:
    """The RMSD of every relaxed structure to its input. With workers (a GPU job's spare CPU
    threads), measured in worker processes while the relaxation goes on, off the GPU's critical
    path; without, measured at the end."""

    def __init__(self, initial: list[Structure], workers: int) -> None:
        self.initial = initial
        self.pending: dict[int, Future] = {}
        self.pool = None
        if workers > 0 and len(initial) > 1:
            # spawn: a forked child of a process that holds a CUDA context is unsafe
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, index: int, result: RelaxResult) -> None:
        if self.pool is not None and result.structure is not None:
            self.pending[index] = self.pool.submit(_rmsd_of_pair, (self.initial[index], result.structure))

    def fill(self, results: list[RelaxResult]) -> None:
        """Every relaxed result's ``rmsd``; failed results have none."""
        for index, result in enumerate(results):
            if result.structure is None or result.status == "failed":
                continue
            future = self.pending.get(index)
            result.rmsd = future.result() if future else rmsd_angstrom(self.initial[index], result.structure)
        if self.pool is not None:
            self.pool.shutdown()


def relax_records(relaxer: Relaxer, records: list[dict], mode: str = "relax") -> list[RelaxResult]:
    """Results for every record of a sample batch: failed samples pass through, disordered ones
    skip; ``mode``: relax, or single_point (energies of the structures as given)."""
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
    evaluate = relaxer.relax if mode == "relax" else relaxer.single_points
    relaxed = evaluate([records[p]["structure"] for p in to_relax])
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


def run_relax_job(
    relaxer: Relaxer, sample_path: str, output_path: str, settings: dict, failed: str | None = None
) -> None:
    """Relax one sample batch into a relaxed batch; ``settings``: the relax section it is relaxed
    with (recorded, so a chunk job can tell the batch is current); ``failed``: why the job is
    recorded as failed (``relaxer`` then stands in for the potential)."""
    start = time.perf_counter()
    inputs = chunks.file_marks([sample_path])
    records = io.read_records(sample_path)
    sample = io.read_sidecar(sample_path)
    results = relax_records(relaxer, records)
    sidecar: batch_files.RelaxSidecar = {
        "generator": sample["generator"],
        "batch": sample["batch"],
        "settings": settings,
        "inputs": inputs,
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
