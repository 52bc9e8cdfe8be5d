"""Runs in SevenNet's own environment (envs/build-sevennet-env.sh), which cannot share the main
one with mace-torch (e3nn pins): needs only ase, numpy and sevenn from there, never this package.

    python sevennet_runner.py SPEC.json RESULT.json

SPEC: ``model`` (a SevenNet name such as 7net-0, or a checkpoint file), ``device``, ``mode``
(relax or single_point), ``fmax``, ``max_steps``, ``relax_cell``, ``max_volume_ratio``,
``threads`` and ``structures`` (each ``numbers``, ``positions`` in Angstrom, ``cell``).
RESULT: the checkpoint loaded (name, sha256) and one row per structure: ``energy`` (eV),
``max_force``, final ``positions`` and ``cell``, ``n_steps``, ``converged``, ``volume_ratio``,
or ``error`` when that structure failed. Exit status 2 with one line on stderr when the model
cannot be loaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path


def load_calculator(spec: dict):
    """SevenNet's ASE calculator and the checkpoint file it loaded."""
    import torch
    from sevenn.calculator import SevenNetCalculator
    from sevenn.util import pretrained_name_to_path

    torch.set_num_threads(spec["threads"])
    model = spec["model"]
    checkpoint = Path(model) if Path(model).is_file() else Path(pretrained_name_to_path(model))
    device = spec["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return SevenNetCalculator(str(checkpoint), device=device), checkpoint


def largest_force(atoms) -> float:
    return float(max(math.sqrt(sum(c * c for c in force)) for force in atoms.get_forces()))


def evaluate(atoms, spec: dict) -> dict:
    """Single point, or FIRE (through a Frechet cell filter) until fmax or max_steps; a relaxation
    stops once energy or volume run away (the main side tells it failed from what it reports)."""
    initial_volume = atoms.get_volume()
    n_steps, converged = 0, False
    if spec["mode"] == "relax":
        from ase.filters import FrechetCellFilter
        from ase.optimize import FIRE

        optimizer = FIRE(FrechetCellFilter(atoms) if spec["relax_cell"] else atoms, logfile=None)
        bounds = (1 / spec["max_volume_ratio"], spec["max_volume_ratio"])
        for converged in optimizer.irun(fmax=spec["fmax"], steps=spec["max_steps"]):  # noqa: B007
            ratio = atoms.get_volume() / initial_volume
            if not (math.isfinite(atoms.get_potential_energy()) and bounds[0] <= ratio <= bounds[1]):
                break
        n_steps = optimizer.nsteps
    return {
        "energy": float(atoms.get_potential_energy()),
        "max_force": largest_force(atoms),
        "positions": atoms.get_positions().tolist(),
        "cell": atoms.cell.array.tolist(),
        "n_steps": int(n_steps),
        "converged": bool(converged),
        "volume_ratio": atoms.get_volume() / initial_volume,
    }


def main(spec_path: str, result_path: str) -> int:
    from ase import Atoms

    spec = json.loads(Path(spec_path).read_text())
    try:
        calculator, checkpoint = load_calculator(spec)
    except Exception as error:
        print(
            f"SevenNet model {spec['model']!r} could not be loaded: {type(error).__name__}: {error}",
            file=sys.stderr,
        )
        return 2
    rows = []
    for structure in spec["structures"]:
        atoms = Atoms(
            numbers=structure["numbers"], positions=structure["positions"], cell=structure["cell"], pbc=True
        )
        try:  # attaching checks the elements, so it belongs to this structure's try
            atoms.calc = calculator
            rows.append(evaluate(atoms, spec))
        except Exception as error:  # one structure never stops the others
            rows.append({"error": f"{type(error).__name__}: {error}"})
    described = {
        "checkpoint": checkpoint.name,
        "checkpoint_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
    }
    Path(result_path).write_text(json.dumps({**described, "results": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
