from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pymatgen.core import Lattice, Structure
from pymatgen.core.operations import SymmOp

from crystal_campaign import chunks, io

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

os.environ.setdefault("OMP_NUM_THREADS", "1")


def rock_salt(a: float = 5.64, species: tuple[str, str] = ("Na", "Cl")) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), list(species), [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture
def nacl() -> Structure:
    return rock_salt()


def evaluated_as_unique_novel(table: pd.DataFrame) -> pd.DataFrame:
    """Described structures with the columns the summary reads after validity, novelty and dedup:
    each valid, novel, unique and not relaxed, as a summary test's plain starting point."""
    return table.assign(
        status="not_relaxed",
        rmsd=float("nan"),
        struct_valid=True,
        comp_valid=True,
        valid=True,
        unique_generator=True,
        unique_all=True,
        shared=False,
        novel=True,
        reference_match=None,
        snapshot_matches=None,
        reference_covers_chemsys=True,
        class_all=table["id"],
    )


def rotated(structure: Structure) -> Structure:
    """The same crystal with its lattice rotated in space (a duplicate any matcher must find)."""
    rotation = SymmOp.from_axis_angle_and_translation([1, 2, 3], 37.0).rotation_matrix
    return Structure(Lattice(structure.lattice.matrix @ rotation.T), structure.species, structure.frac_coords)


def alloy(species: list[str], a: float = 3.6) -> Structure:
    """An ordered arrangement on fcc: the conventional cubic cell (4 species) or two stacked (8)."""
    cell = Structure(Lattice.cubic(a), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    cell = cell * (1, 1, len(species) // 4)
    return Structure(cell.lattice, species, cell.frac_coords)


def strained_alloy_pair() -> tuple[Structure, Structure]:
    """Layered CuNi and a copy strained 25 % along a and scaled to 1.3 times the volume: under
    ``disordered``, the copy fits the original but the original does not fit the copy."""
    original = alloy(["Cu", "Cu", "Ni", "Ni"])
    copy = original.copy()
    copy.apply_strain([0.25, 0, 0])
    copy.scale_lattice(copy.volume * 1.3)
    return original, copy


def mattergen_python() -> str:
    """The MatterGen environment's interpreter (``make test-mattergen`` builds it)."""
    from crystal_campaign.generators import mattergen

    python = os.environ.get("MATTERGEN_PYTHON", str(mattergen.BUILT_ENV_PYTHON))
    if not Path(python).is_file():
        pytest.fail(f"no MatterGen environment at {python}: run `make test-mattergen` (it builds one)")
    return python


def sevennet_python() -> str:
    """The SevenNet environment's interpreter (``make test-sevennet`` builds it)."""
    from crystal_campaign.relax import sevennet

    python = sevennet.interpreter()
    if not python.is_file():
        pytest.fail(f"no SevenNet environment at {python}: run `make test-sevennet` (it builds one)")
    return str(python)


def write_chunk(
    folder: Path, generator: str, batches: dict[int, list[dict]], relaxer: dict | None = None
) -> str:
    """A relaxed chunk as the workflow writes one: each batch's records and sidecar under
    ``folder``, then the manifest; its path."""
    paths = []
    for batch, records in batches.items():
        path = chunks.batch_path(folder, batch)
        sidecar = {
            "generator": generator,
            "batch": batch,
            "failed": None,
            "relaxer": relaxer or {"backend": "none"},
        }
        io.write_batch(path, records, sidecar)
        paths.append(path)
    manifest = folder / "chunks" / f"{chunks.split(list(batches), len(batches))[0]}.json"
    chunks.write_manifest(manifest, generator, paths)
    return str(manifest)


# What one new or changed chunk plans: its per-chunk jobs, then the campaign's aggregation.
PER_CHUNK_RULES = ("sample", "relax", "validity", "describe", "reduce", "novelty", "stability")
# The metrics job and everything that reads its tables.
FROM_METRICS = {"metrics": 1, "candidates": 1, "dft_inputs": 1, "plots": 1, "hulls": 1, "all": 1}
AGGREGATION_JOBS = {"dedup_shard": 4, "dedup": 1, **FROM_METRICS}


def chunk_jobs(n_chunks: int) -> dict[str, int]:
    """Jobs planned for ``n_chunks`` new or changed chunks (default 4 dedup shards)."""
    return {**dict.fromkeys(PER_CHUNK_RULES, n_chunks), **AGGREGATION_JOBS}


class Campaign:
    """A tiny campaign in its own directory, run with the real Snakemake command line."""

    def __init__(self, root: Path, config: dict) -> None:
        self.root = root
        self.config = config
        for name in ("workflow", "rules", "scripts", "envs"):
            shutil.copytree(REPO / name, root / name)
        self.write()

    @classmethod
    def copy_of(cls, other: Campaign, root: Path) -> Campaign:
        """The same campaign, results and Snakemake state included (mtimes kept), in ``root``."""
        shutil.copytree(other.root, root, symlinks=True)
        campaign = cls.__new__(cls)
        campaign.root, campaign.config = root, other.config
        return campaign

    @property
    def results(self) -> Path:
        return self.root / "results" / self.config["campaign"]

    def write(self) -> None:
        (self.root / "campaign.yaml").write_text(yaml.safe_dump(self.config, sort_keys=False))

    def snakemake(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [
            str(SNAKEMAKE),
            "--configfile",
            "campaign.yaml",
            "-s",
            "workflow/Snakefile",
            "--cores",
            "2",
            *args,
        ]
        result = subprocess.run(command, cwd=self.root, capture_output=True, text=True, timeout=900)
        if check and result.returncode != 0:
            raise AssertionError(f"snakemake failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        return result

    def planned_jobs(self) -> dict[str, int]:
        """Jobs a run would execute now, per rule, from Snakemake's own dry-run job table."""
        lines = self.snakemake("--dry-run", "--quiet", "rules").stdout.splitlines()
        header = next((i for i, line in enumerate(lines) if line.split()[:2] == ["job", "count"]), None)
        jobs: dict[str, int] = {}
        for line in [] if header is None else lines[header + 2 :]:
            parts = line.split()
            if len(parts) != 2 or parts[0] == "total":
                break
            jobs[parts[0]] = int(parts[1])
        return jobs

    def planned_jobs_for(self, config: dict) -> dict[str, int]:
        """Jobs a run with ``config`` would execute; the campaign's own config is put back afterwards."""
        original = self.config
        self.config = config
        self.write()
        try:
            return self.planned_jobs()
        finally:
            self.config = original
            self.write()


def run_with_imported_examples(root: Path, config: dict) -> Campaign:
    """``config`` run to the end in ``root``, with ``config/examples/imported`` under
    ``root/imported`` plus one unreadable CIF."""
    shutil.copytree(REPO / "config" / "examples" / "imported", root / "imported")
    (root / "imported" / "broken.cif").write_text("data_broken\n_cell_length_a x\n")
    campaign = Campaign(root, config)
    campaign.snakemake()
    return campaign
