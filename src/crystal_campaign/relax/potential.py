"""A machine-learned potential's relaxer: its potential as every engine drives it, the engine the
settings pick, and what every result table records of both."""

from __future__ import annotations

from pathlib import Path

from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from crystal_campaign.io import file_sha256
from crystal_campaign.relax.base import (
    EngineRun,
    EngineSettings,
    EngineStats,
    Potentials,
    RelaxResult,
    RmsdQueue,
    single_point,
)
from crystal_campaign.relax.engines import engine, engine_name

# Structures per model call of single points: bounds one call's memory on a chunk of thousands.
SINGLE_POINT_BATCH = 32


class PotentialRelaxer:
    def __init__(
        self, settings: dict, device: str, model: str, checkpoint: Path, potentials: Potentials
    ) -> None:
        self._settings = settings
        self.device = device
        self.model = model
        self.checkpoint = checkpoint
        self.potentials = potentials
        self.engine = engine_name(settings["engine"], potentials, device)
        if self.engine == "torch-sim" and potentials.torch_sim_model is None:
            raise ValueError(
                f"relax.engine: torch-sim does not drive {settings['backend']}; "
                "allowed: auto, batched-ase, per-structure"
            )
        self.last_stats = EngineStats()

    @property
    def potential(self):
        """The batch evaluator (its ``model`` is the torch module every engine calls)."""
        return self.potentials.batch

    def rmsd_workers(self) -> int:
        """A GPU job's threads beyond the one driving the GPU measure RMSDs meanwhile."""
        return self._settings["threads"] - 1 if self.device.startswith("cuda") else 0

    def settings(self) -> dict:
        return {
            **self._settings,
            "engine": self.engine,
            "model": self.model,
            "device": self.device,
            "checkpoint": self.checkpoint.name,
            "checkpoint_sha256": file_sha256(self.checkpoint),
        }

    def relax(self, structures: list[Structure]) -> list[RelaxResult]:
        self.last_stats = EngineStats()
        rmsd = RmsdQueue(structures, self.rmsd_workers())
        settings = EngineSettings.from_relax_settings(self._settings, self.device)
        run = EngineRun(self.potentials, settings, self.last_stats, rmsd.submit)
        results = engine(self.engine).relax(structures, run)
        rmsd.fill(results)
        return results

    def single_points(self, structures: list[Structure]) -> list[RelaxResult]:
        """Batched model calls; a call that fails is retried structure by structure."""
        results = []
        for start in range(0, len(structures), SINGLE_POINT_BATCH):
            part = structures[start : start + SINGLE_POINT_BATCH]
            try:
                results += self._single_points(part)
            except Exception:  # one structure the model cannot take never loses its neighbours
                results += [self._one_single_point(structure) for structure in part]
        return results

    def _single_points(self, structures: list[Structure]) -> list[RelaxResult]:
        evaluated = self.potentials.batch.evaluate([AseAtomsAdaptor.get_atoms(s) for s in structures])
        return [
            single_point(s, energy, forces)
            for s, (energy, forces, _) in zip(structures, evaluated, strict=True)
        ]

    def _one_single_point(self, structure: Structure) -> RelaxResult:
        try:
            return self._single_points([structure])[0]
        except Exception as error:
            return RelaxResult("failed", reason=f"single point error: {type(error).__name__}: {error}")
