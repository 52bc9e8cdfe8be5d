"""CHGNet through ASE: the offline default relaxer (its weights ship inside the chgnet wheel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.stress import full_3x3_to_voigt_6_stress
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from crystal_campaign.io import file_sha256
from crystal_campaign.relax.base import RelaxResult, resolve_device
from crystal_campaign.relax.batched import BatchStats, relax_structures

DEFAULT_MODEL = "0.3.0"


def checkpoint_file(model: str) -> Path:
    """A local model file as given, else the file of a named CHGNet release inside the wheel."""
    if Path(model).is_file():
        return Path(model)
    import chgnet

    matches = sorted((Path(chgnet.__file__).parent / "pretrained" / model).glob("*.pth.tar"))
    if not matches:
        raise ValueError(
            f"relax.model: no CHGNet model {model!r}; allowed: 0.3.0, 0.2.0, r2scan or a model file"
        )
    return matches[0]


class ChgnetPotential:
    """Energies, forces and stresses of many structures from one batched CHGNet call."""

    def __init__(self, model) -> None:
        self.model = model

    def evaluate(self, atoms: list[Atoms]) -> list[tuple[float, np.ndarray, np.ndarray]]:
        graphs = [self.model.graph_converter(AseAtomsAdaptor.get_structure(a)) for a in atoms]
        predictions = self.model.predict_graph(graphs, task="efs", batch_size=len(graphs))
        if isinstance(predictions, dict):  # one graph in, one dict out
            predictions = [predictions]
        per_atom = len if self.model.is_intensive else lambda _: 1
        return [
            (
                float(p["e"]) * per_atom(a),
                np.asarray(p["f"], dtype=float),
                full_3x3_to_voigt_6_stress(np.asarray(p["s"], dtype=float) * units.GPa),
            )
            for a, p in zip(atoms, predictions, strict=True)
        ]


class ChgnetRelaxer:
    def __init__(self, settings: dict) -> None:
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator

        self._settings = settings
        self.device = resolve_device(settings["device"])
        self.model_name = settings.get("model_path") or settings.get("model") or DEFAULT_MODEL
        self.checkpoint = checkpoint_file(self.model_name)
        if Path(self.model_name).is_file():
            model = CHGNet.from_file(str(self.checkpoint))
        else:
            model = CHGNet.load(model_name=self.model_name, use_device=self.device, verbose=False)
        self.calculator = CHGNetCalculator(model=model, use_device=self.device)
        self.potential = ChgnetPotential(self.calculator.model)
        self.last_stats = BatchStats()

    def settings(self) -> dict:
        return {
            **self._settings,
            "model": self.model_name,
            "device": self.device,
            "checkpoint": self.checkpoint.name,
            "checkpoint_sha256": file_sha256(self.checkpoint),
        }

    def relax(self, structures: list[Structure]) -> list[RelaxResult]:
        results, self.last_stats = relax_structures(
            structures, self.calculator, self.potential, self._settings
        )
        return results
