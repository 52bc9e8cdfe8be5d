"""SevenNet (SevenNet-0's real weights ship in its wheel) through ``sevennet_runner.py``, run in
SevenNet's own environment: its e3nn pin cannot share the main one with mace-torch.

Which interpreter runs the runner: ``$SEVENNET_PYTHON``, else ``.venv-sevennet/bin/python``
built by ``envs/build-sevennet-env.sh``. A relaxer of the campaign (``relax.backend: sevennet``)
or a member of the stability ensemble.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure

from crystal_campaign.relax.base import (
    RelaxerBackend,
    RelaxResult,
    RmsdQueue,
    explosion,
    finished,
    model_source,
    single_point,
)

DEFAULT_MODEL = "7net-0"
RUNNER = Path(__file__).with_name("sevennet_runner.py")
BUILT_ENV_PYTHON = Path(__file__).resolve().parents[3] / ".venv-sevennet" / "bin" / "python"


def interpreter() -> Path:
    return Path(os.environ.get("SEVENNET_PYTHON") or BUILT_ENV_PYTHON)


def structure_of(row: dict, numbers: list[int]) -> Structure:
    return Structure(Lattice(row["cell"]), numbers, row["positions"], coords_are_cartesian=True)


class SevennetRelaxer:
    def __init__(self, settings: dict) -> None:
        self._settings = settings
        self.model = model_source(settings, DEFAULT_MODEL)
        self.checkpoint: dict = {}

    def settings(self) -> dict:
        return {**self._settings, "model": self.model, "python": str(interpreter()), **self.checkpoint}

    def run(self, structures: list[Structure], mode: str) -> list[dict]:
        """The runner's rows for ``structures`` (one subprocess for all: the model loads once)."""
        if not structures:
            return []
        keys = ("device", "fmax", "max_steps", "relax_cell", "max_volume_ratio", "threads")
        spec = {
            **{key: self._settings[key] for key in keys},
            "model": self.model,
            "mode": mode,
            "structures": [
                {
                    "numbers": list(s.atomic_numbers),
                    "positions": s.cart_coords.tolist(),
                    "cell": s.lattice.matrix.tolist(),
                }
                for s in structures
            ],
        }
        with tempfile.TemporaryDirectory(prefix="sevennet-") as folder:
            spec_path, result_path = Path(folder, "spec.json"), Path(folder, "result.json")
            spec_path.write_text(json.dumps(spec))
            completed = subprocess.run(
                [str(interpreter()), str(RUNNER), str(spec_path), str(result_path)],
                capture_output=True,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": str(self._settings["threads"])},
            )
            if completed.returncode != 0:
                lines = (completed.stderr.strip() or "no output").splitlines()
                raise RuntimeError(f"SevenNet runner ({interpreter()}) failed: {lines[-1]}")
            result = json.loads(result_path.read_text())
        self.checkpoint = {
            "checkpoint": result["checkpoint"],
            "checkpoint_sha256": result["checkpoint_sha256"],
        }
        return result["results"]

    def relax(self, structures: list[Structure]) -> list[RelaxResult]:
        results = [
            self._relaxed(s, row) for s, row in zip(structures, self.run(structures, "relax"), strict=True)
        ]
        RmsdQueue(structures, 0).fill(results)
        return results

    def _relaxed(self, structure: Structure, row: dict) -> RelaxResult:
        if "error" in row:
            return RelaxResult("failed", reason=f"relaxation error: {row['error']}")
        forces = np.array([row["max_force"]])
        failure = explosion(row["energy"], forces, row["volume_ratio"], self._settings["max_volume_ratio"])
        if failure is not None:
            failure.n_steps = row["n_steps"]
            return failure
        relaxed = structure_of(row, structure.atomic_numbers)
        return finished(
            relaxed, row["energy"], forces[:, None], row["n_steps"], row["converged"], row["volume_ratio"]
        )

    def single_points(self, structures: list[Structure]) -> list[RelaxResult]:
        return [
            RelaxResult("failed", reason=f"single point error: {row['error']}")
            if "error" in row
            else single_point(structure, row["energy"], np.array([[row["max_force"]]]))
            for structure, row in zip(structures, self.run(structures, "single_point"), strict=True)
        ]


class SevennetBackend(RelaxerBackend):
    # SevenNet-0 was trained on MPtrj's raw (uncorrected) energies, as MACE-MP
    energy_correction = "mp2020"

    def config_problems(self, section: dict) -> list[str]:
        python = interpreter()
        if python.is_file() and os.access(python, os.X_OK):
            return []
        return [
            f"relax.backend: sevennet needs its own environment, none at {python}; "
            "allowed: build it (bash envs/build-sevennet-env.sh) or set SEVENNET_PYTHON"
        ]

    def relaxer(self, settings: dict) -> SevennetRelaxer:
        return SevennetRelaxer(settings)


BACKEND = SevennetBackend()
