"""CHGNet through ASE: the offline default relaxer (its weights ship inside the chgnet wheel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.stress import full_3x3_to_voigt_6_stress
from pymatgen.io.ase import AseAtomsAdaptor

from crystal_campaign.relax.base import Potentials, RelaxerBackend, model_source, resolve_device
from crystal_campaign.relax.potential import PotentialRelaxer

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


class ChgnetRelaxer(PotentialRelaxer):
    def __init__(self, settings: dict) -> None:
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator

        device = resolve_device(settings["device"])
        model_name = model_source(settings, DEFAULT_MODEL)
        checkpoint = checkpoint_file(model_name)
        if Path(model_name).is_file():
            model = CHGNet.from_file(str(checkpoint))
        else:
            model = CHGNet.load(model_name=model_name, use_device=device, verbose=False)
        calculator = CHGNetCalculator(model=model, use_device=device)
        # torch-sim 0.3.0 wraps no CHGNet: batched ASE is its fastest engine
        potentials = Potentials(calculator, ChgnetPotential(calculator.model))
        super().__init__(settings, device, model_name, checkpoint, potentials)


class ChgnetBackend(RelaxerBackend):
    """Nothing to download: CHGNet's released weights ship inside its wheel."""

    energy_correction = "none"  # trained on MP2020-corrected MPtrj energies

    def relaxer(self, settings: dict) -> ChgnetRelaxer:
        return ChgnetRelaxer(settings)


BACKEND = ChgnetBackend()
