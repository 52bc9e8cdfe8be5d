"""A tiny MACE model trained in ~20 s on CHGNet-labelled rattled rock salts, for tests.

Real forces and a real energy minimum (unlike a random-init model, whose forces are ~0), so that
relaxations take tens of steps. Built with MACE's own training command line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from ase.io import write
from pymatgen.io.ase import AseAtomsAdaptor

from conftest import rock_salt

SALTS = (("Na", "Cl", 5.64), ("Mg", "O", 4.21), ("K", "Cl", 6.29))


def labelled_cells(n_cells: int = 45, seed: int = 0) -> list:
    """Rattled, strained rock-salt cells labelled with CHGNet energies, forces and stresses."""
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    calculator = CHGNetCalculator(model=CHGNet.load(model_name="0.3.0", verbose=False), use_device="cpu")
    rng = np.random.default_rng(seed)
    cells = []
    for index in range(n_cells):
        cation, anion, a = SALTS[index % len(SALTS)]
        structure = rock_salt(a * rng.uniform(0.94, 1.08), (cation, anion)).get_primitive_structure()
        if index % 2:
            structure = structure * (2, 1, 1)
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.rattle(0.12, seed=int(rng.integers(1 << 30)))
        atoms.calc = calculator
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.arrays["REF_forces"] = atoms.get_forces()
        atoms.info["REF_stress"] = atoms.get_stress()
        atoms.calc = None
        cells.append(atoms)
    return cells


def train_tiny_mace(work_dir: Path) -> Path:
    """Train with ``mace_run_train`` on CPU in float64; returns the ``.model`` file."""
    work_dir.mkdir(parents=True, exist_ok=True)
    train_file = work_dir / "train.xyz"
    write(train_file, labelled_cells(), format="extxyz")
    command = [
        sys.executable,
        "-m",
        "mace.cli.run_train",
        "--name=tiny",
        f"--work_dir={work_dir}",
        f"--train_file={train_file}",
        "--valid_fraction=0.1",
        "--energy_key=REF_energy",
        "--forces_key=REF_forces",
        "--stress_key=REF_stress",
        "--loss=stress",
        "--E0s=average",
        "--model=MACE",
        "--num_channels=8",
        "--max_L=1",
        "--r_max=4.5",
        "--num_interactions=2",
        "--correlation=2",
        "--batch_size=5",
        "--max_num_epochs=10",
        "--device=cpu",
        "--default_dtype=float64",
        "--seed=1",
    ]
    subprocess.run(command, check=True, capture_output=True, text=True, cwd=work_dir, timeout=600)
    return work_dir / "tiny.model"
