"""MACE through ``mace_mp``: foundation models by name (downloaded into MACE's cache) or a local file.

The relaxer for real campaigns. The per-structure engine uses MACE's ASE calculator, batched ASE
feeds many structures' graphs to the same model in one call, and torch-sim wraps the same model.
"""

from __future__ import annotations

import contextlib
import io as text_io
import os
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress

from crystal_campaign.relax.base import Potentials, RelaxerBackend, model_source, resolve_device
from crystal_campaign.relax.potential import PotentialRelaxer

DEFAULT_MODEL = "medium-mpa-0"
# With e3nn 0.4.4 under torch >= 2.6, models load only without weights-only unpickling (mace sets
# this itself on import; set it before anything imports e3nn first).
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


def foundation_model_names() -> list[str]:
    from mace.calculators.foundations_models import mace_mp_names

    return [name for name in mace_mp_names if name is not None]


def cache_dir() -> Path:
    from mace.tools.utils import get_cache_dir

    return Path(get_cache_dir())


def checkpoint_path(settings: dict) -> Path:
    """The model file: the local one, or the named model's file in MACE's cache (downloaded if missing)."""
    from mace.calculators.foundations_models import download_mace_mp_checkpoint

    source = model_source(settings, DEFAULT_MODEL)
    if settings.get("model_path"):
        return Path(source)
    with contextlib.redirect_stdout(text_io.StringIO()):
        try:
            return Path(download_mace_mp_checkpoint(source))
        except Exception as error:
            raise RuntimeError(
                f"relax.model: MACE model {source!r} is not in the cache {cache_dir()} and could not be "
                f"downloaded ({type(error).__name__}); run `crystal-campaign prefetch` where the internet "
                "is reachable, or set relax.model_path to a local model file"
            ) from error


class MacePotential:
    """Energies, forces and stresses of many structures from one call of a MACE model."""

    def __init__(self, calculator) -> None:
        from mace.data import KeySpecification

        self.calculator = calculator
        self.model = calculator.models[0]
        self.dtype = next(self.model.parameters()).dtype
        self.keys = KeySpecification(
            info_keys=calculator.info_keys,
            arrays_keys={**calculator.arrays_keys, calculator.charges_key: "charges"},
        )

    def _graph(self, atoms: Atoms):
        from mace import data

        calculator = self.calculator
        config = data.config_from_atoms(atoms, key_specification=self.keys, head_name=calculator.head)
        return data.AtomicData.from_config(
            config, z_table=calculator.z_table, cutoff=calculator.r_max, heads=calculator.available_heads
        )

    def evaluate(self, atoms: list[Atoms]) -> list[tuple[float, np.ndarray, np.ndarray]]:
        from mace.tools import torch_geometric, torch_tools

        calculator = self.calculator
        with torch_tools.default_dtype(calculator.default_dtype):
            batch = torch_geometric.Batch.from_data_list([self._graph(a) for a in atoms])
        batch = batch.to(calculator.device)
        inputs = {
            key: value.to(self.dtype) if value.is_floating_point() else value
            for key, value in batch.to_dict().items()
            if hasattr(value, "is_floating_point")
        }
        output = self.model(inputs, compute_stress=True, training=False)
        energy_unit = calculator.energy_units_to_eV
        length_unit = calculator.length_units_to_A
        energies = output["energy"].detach().cpu().numpy() * energy_unit
        forces = output["forces"].detach().cpu().numpy() * energy_unit / length_unit
        stresses = output["stress"].detach().cpu().numpy() * energy_unit / length_unit**3
        bounds = batch["ptr"].cpu().numpy()
        return [
            (float(energies[i]), forces[bounds[i] : bounds[i + 1]], full_3x3_to_voigt_6_stress(stresses[i]))
            for i in range(len(atoms))
        ]


class MaceRelaxer(PotentialRelaxer):
    def __init__(self, settings: dict) -> None:
        from mace.calculators import mace_mp

        device = resolve_device(settings["device"])
        checkpoint = checkpoint_path(settings)
        source = model_source(settings, DEFAULT_MODEL)
        with contextlib.redirect_stdout(text_io.StringIO()):  # mace_mp prints model and dtype banners
            calculator = mace_mp(model=source, device=device, default_dtype=settings["dtype"])
        potential = MacePotential(calculator)

        def torch_sim_model():
            import torch
            from torch_sim.models.mace import MaceModel

            return MaceModel(potential.model, device=torch.device(device), dtype=potential.dtype)

        potentials = Potentials(calculator, potential, torch_sim_model)
        super().__init__(settings, device, source, checkpoint, potentials)


class MaceBackend(RelaxerBackend):
    torch_sim = True

    def config_problems(self, section: dict) -> list[str]:
        """A model name must be one ``mace_mp`` knows (needs mace-torch)."""
        if section["model"] is None:
            return []
        try:
            names = foundation_model_names()
        except ImportError:
            return [
                "relax.backend: 'mace' needs mace-torch; allowed: install it (pip install -e '.[mace]') "
                "or chgnet"
            ]
        if section["model"] not in names:
            allowed = ", ".join(names)
            return [f"relax.model: {section['model']!r} is not a MACE foundation model; allowed: {allowed}"]
        return []

    def prefetch(self, settings: dict) -> list[str]:
        """Download a named foundation model into MACE's cache (what ``mace_mp`` does on first use)."""
        if settings.get("model_path"):
            return []
        return [str(checkpoint_path(settings))]

    def relaxer(self, settings: dict) -> MaceRelaxer:
        return MaceRelaxer(settings)


BACKEND = MaceBackend()
