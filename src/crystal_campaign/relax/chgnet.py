"""CHGNet through ASE: the offline default relaxer (its weights ship inside the chgnet wheel)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from pymatgen.core import Structure

from crystal_campaign.io import file_sha256
from crystal_campaign.relax.base import RelaxResult, relax_one, relax_with_ase


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


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


class ChgnetRelaxer:
    def __init__(self, settings: dict) -> None:
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator

        self._settings = settings
        self.device = resolve_device(settings["device"])
        self.checkpoint = checkpoint_file(settings["model"])
        if Path(settings["model"]).is_file():
            model = CHGNet.from_file(str(self.checkpoint))
        else:
            model = CHGNet.load(model_name=settings["model"], use_device=self.device, verbose=False)
        self.calculator = CHGNetCalculator(model=model, use_device=self.device)

    def settings(self) -> dict:
        return {
            **self._settings,
            "device": self.device,
            "checkpoint": self.checkpoint.name,
            "checkpoint_sha256": file_sha256(self.checkpoint),
        }

    def relax(self, structures: list[Structure]) -> list[RelaxResult]:
        relax = partial(
            relax_with_ase,
            calculator=self.calculator,
            fmax=self._settings["fmax"],
            max_steps=self._settings["max_steps"],
            relax_cell=self._settings["relax_cell"],
            max_volume_ratio=self._settings["max_volume_ratio"],
        )
        return [relax_one(structure, relax) for structure in structures]
