"""Runs in SevenNet's environment: SevenNet-0's energy of each structure, straight from its ASE
calculator (the tests' independent check of the runner and of the ensemble's hulls).

    python sevennet_energies.py STRUCTURES.json ENERGIES.json
"""

import json
import sys
from pathlib import Path

from ase import Atoms
from sevenn.calculator import SevenNetCalculator

calculator = SevenNetCalculator("7net-0", device="cpu")
energies = []
for structure in json.loads(Path(sys.argv[1]).read_text()):
    atoms = Atoms(structure["numbers"], positions=structure["positions"], cell=structure["cell"], pbc=True)
    atoms.calc = calculator
    energies.append(float(atoms.get_potential_energy()))
Path(sys.argv[2]).write_text(json.dumps(energies))
