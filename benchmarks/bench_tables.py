"""The campaign-wide table jobs at 10^5 and 10^6 structures: time and peak memory.

Run on demand from the repository root::

    PYTHONPATH=src python benchmarks/bench_tables.py --rows 100000 1000000

Synthetic per-chunk inputs, seeded, with the columns and types the chunk jobs write: sample and
relax manifests (10 batches of 100 structures a chunk, two generators), the describe, validity,
novelty and stability tables of every chunk, and the dedup classes (a third of the structures in
classes of earlier ones). Half a percent of the structures are metastable S.U.N., all in every
100th batch, whose relaxed batch files are written (the candidates job reads the batches of its
candidates only). Each job then runs in a fresh process, as Snakemake runs it: metrics (the
per-structure table and summary), candidates (CIFs and index) and plots (figures and summary
page). Prints wall time, peak RSS and, against the smallest size, the time ratio (linear: the
ratio of the sizes).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from crystal_campaign import chunks, io
from crystal_campaign.schema import section_defaults

PER_BATCH = 100
PER_CHUNK = 10
FORMULAS = [
    (f"{a}{x}", f"{min(a, x)}-{max(a, x)}") for a in ("Na", "K", "Mg", "Ca", "Sr") for x in "FClBrIOS"
]
SPACE_GROUPS = [("Fm-3m", 225), ("Pm-3m", 221), ("F-43m", 216), ("P6_3mc", 186), ("P1", 1)]


def chunk_tables(rng: np.random.Generator, generator: str, first: int, n: int, candidates: bool) -> dict:
    """The describe, validity, novelty and stability tables of one chunk of ``n`` batches."""
    rows = n * PER_BATCH
    batch = np.repeat(np.arange(first, first + n), PER_BATCH)
    index = np.tile(np.arange(PER_BATCH), n)
    ids = [f"{generator}-b{b:04d}-{i:04d}" for b, i in zip(batch, index, strict=True)]
    formula = rng.integers(len(FORMULAS), size=rows)
    group = rng.integers(len(SPACE_GROUPS), size=rows)
    describe = pd.DataFrame(
        {
            "id": ids,
            "index": index,
            "generator": generator,
            "batch": batch,
            "reason": None,
            "source": None,
            "status": rng.choice(["converged", "unconverged"], size=rows, p=[0.9, 0.1]),
            "energy": rng.normal(-20, 5, rows),
            "energy_per_atom": rng.normal(-4, 1, rows),
            "n_steps": rng.integers(1, 200, rows),
            "converged": rng.random(rows) < 0.9,
            "max_force": rng.random(rows) * 0.2,
            "volume_ratio": rng.normal(1, 0.05, rows),
            "rmsd": rng.random(rows) * 0.3,
            "evaluated": True,
            "formula": [FORMULAS[f][0] for f in formula],
            "chemsys": [FORMULAS[f][1] for f in formula],
            "n_sites": rng.integers(2, 20, rows),
            "space_group": [SPACE_GROUPS[g][0] for g in group],
            "space_group_number": [SPACE_GROUPS[g][1] for g in group],
            "density": rng.normal(3, 0.5, rows),
        }
    )
    valid = rng.random(rows) < 0.9
    validity = pd.DataFrame(
        {"id": ids, "struct_valid": True, "comp_valid": valid, "valid": valid, "validity_reason": None}
    )
    novel = rng.random(rows) < 0.7
    novelty = pd.DataFrame(
        {
            "id": ids,
            "novel": novel,
            "reference_match": np.where(novel, None, "mp:mp-22862"),
            "snapshot_matches": [[] if n else ["embedded:0"] for n in novel],
            "novelty_unknown": False,
            "novelty_reason": None,
            "reference_covers_chemsys": True,
        }
    )
    e_hull = rng.exponential(0.4, rows)
    e_hull[~(candidates & (batch == first))] += 0.25  # above both thresholds: candidates in one batch only
    stability = pd.DataFrame(
        {
            "id": ids,
            "e_above_hull": e_hull,
            "e_above_hull_reason": None,
            "decomposition": [FORMULAS[f][0] + " (mp:mp-1) 1.000" for f in formula],
            "stable": e_hull <= 0.1,
            "metastable": e_hull <= 0.2,
            "hull_energy_per_atom": rng.normal(-4, 1, rows),
            "formation_energy_per_atom": rng.normal(-1, 0.5, rows),
        }
    )
    return {"descriptions": describe, "validity": validity, "novelty": novelty, "stability": stability}


def batch_records(table: pd.DataFrame) -> list[dict]:
    """Relaxed records of a batch, with a rock-salt structure each, for the candidates job."""
    from pymatgen.core import Lattice, Structure

    salt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])
    return [
        io.structure_record(row.id, int(row.index), salt, None, generator=row.generator, batch=int(row.batch))
        | {"status": "converged"}
        for row in table.itertuples()
    ]


# What each stage's table records (as the real jobs write it).
STAGE_SETTINGS = {
    "descriptions": {"symprec": 0.1},
    "validity": {"validity": section_defaults("validity")},
    "novelty": {
        "matcher": {"ltol": 0.2},
        "reference": {
            "sha256": "0" * 64,
            "n_structures": {"embedded": 11},
            "n_chemical_systems": 8,
            "mp": [],
        },
        "remote": [],
        "fit_calls": 0,
    },
    "stability": {
        "stability": section_defaults("stability"),
        "energy_basis": "mp",
        "energy_correction": "none",
    },
}


def write_inputs(folder: Path, n_rows: int, seed: int = 0) -> dict:
    """Every input of the metrics job for ``n_rows`` structures, as the workflow lays them out."""
    rng = np.random.default_rng(seed)
    generators = ["alpha", "beta"]
    n_batches = n_rows // PER_BATCH // len(generators)
    paths: dict[str, list[str]] = {
        k: [] for k in ("samples", "relaxed", "descriptions", "validity", "novelty", "stability")
    }
    dedup = []
    relax = {"backend": "chgnet", "model": "0.3.0", "max_steps": 200}
    for generator in generators:
        for chunk in chunks.split(range(n_batches), PER_CHUNK):
            batches = chunks.chunk_batches(chunk)
            candidates = batches[0] % 100 == 0
            tables = chunk_tables(rng, generator, batches[0], len(batches), candidates)
            for stage, table in tables.items():
                path = folder / stage / generator / f"{chunk}.parquet"
                io.write_table(path, table, STAGE_SETTINGS[stage])
                paths[stage].append(str(path))
            ids = tables["descriptions"]["id"].tolist()
            leaders = [
                ids[i] if rng.random() > 1 / 3 or i == 0 else ids[rng.integers(i)] for i in range(len(ids))
            ]
            dedup.append(pd.DataFrame({"id": ids, "class_generator": leaders, "class_all": leaders}))
            for stage in ("samples", "relaxed"):
                entries = []
                for b in batches:
                    path = chunks.batch_path(folder / stage / generator, b)
                    sidecar = {
                        "generator": generator,
                        "batch": b,
                        "seed": b,
                        "settings": {"name": generator, "backend": "random"},
                        "backend": "random",
                        "stats": {},
                        "sampler": None,
                        "failed": None,
                        "n_requested": PER_BATCH,
                        "wall_time_s": 1.0,
                        "relaxer": relax,
                    }
                    entries.append({"path": path, "sidecar": sidecar})
                    if stage == "relaxed" and candidates and b == batches[0]:
                        mine = tables["descriptions"][tables["descriptions"]["batch"] == b]
                        io.write_records(path, batch_records(mine))
                manifest = folder / stage / generator / "chunks" / f"{chunk}.json"
                io.write_json(manifest, {"generator": generator, "batches": entries})
                paths[stage].append(str(manifest))
    classes = pd.concat(dedup, ignore_index=True)
    classes["unique_generator"] = classes["id"] == classes["class_generator"]
    classes["unique_all"] = classes["id"] == classes["class_all"]
    classes["shared"] = False
    dedup_path = folder / "dedup" / "classes.parquet"
    io.write_table(dedup_path, classes, {"matcher": {"ltol": 0.2}, "fit_calls": 0, "shards": 4})
    reference_path = folder / "reference" / "descriptions.parquet"  # a reference of 1,000 structures
    io.write_table(
        reference_path, chunk_tables(rng, "reference", 0, 10, False)["descriptions"], {"symprec": 0.1}
    )
    return {**paths, "dedup": str(dedup_path), "reference_descriptions": str(reference_path)}


JOBS = {
    "metrics": """
from crystal_campaign import metrics
metrics.run_metrics_job(paths, outputs, {"symprec": 0.1}, ["alpha", "beta"])
""",
    "candidates": """
from crystal_campaign import candidates
candidates.write_candidates(outputs["structures"], paths["relaxed"], folder + "/candidates",
                            folder + "/candidates.html", "bench")
""",
    "plots": """
from crystal_campaign import plots
names = ["rates", "e_hull", "atoms_per_cell", "space_groups", "elements", "relaxation_steps"]
plot_outputs = {name: f"{folder}/plots/{name}.png" for name in names}
plot_outputs["summary"] = folder + "/plots/summary.html"
plots.run_plots_job(outputs["structures"], outputs["csv"], outputs["json"], plot_outputs,
                    {"dpi": 150, "max_categories": 20}, "bench")
""",
}
PRELUDE = """
import json, resource, sys, time
folder = sys.argv[1]
with open(folder + "/paths.json") as handle, open(folder + "/outputs.json") as other:
    paths, outputs = json.load(handle), json.load(other)
start = time.perf_counter()
"""
EPILOGUE = """
print(json.dumps({"wall": time.perf_counter() - start,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_job(name: str, paths: dict, folder: Path) -> dict:
    outputs = {
        key: str(folder / "metrics" / file)
        for key, file in (
            ("csv", "summary.csv"),
            ("markdown", "summary.md"),
            ("json", "summary.json"),
            ("structures", "structures.parquet"),
        )
    }
    (folder / "paths.json").write_text(json.dumps(paths))
    (folder / "outputs.json").write_text(json.dumps(outputs))
    command = [sys.executable, "-c", PRELUDE + JOBS[name] + EPILOGUE, str(folder)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    args = parser.parse_args()
    found: dict[tuple[str, int], dict] = {}
    print(f"{'rows':>9} {'job':>11} {'wall':>9} {'peak RSS':>9} {'time ratio':>11}")
    for n_rows in args.rows:
        with tempfile.TemporaryDirectory(prefix="tables-") as tmp:
            start = time.perf_counter()
            paths = write_inputs(Path(tmp), n_rows)
            print(f"{n_rows:>9} {'(inputs)':>11} {time.perf_counter() - start:>8.1f}s", flush=True)
            for name in JOBS:
                found[name, n_rows] = run_job(name, paths, Path(tmp))
                ratio = found[name, n_rows]["wall"] / found[name, args.rows[0]]["wall"]
                print(
                    f"{n_rows:>9} {name:>11} {found[name, n_rows]['wall']:>8.1f}s "
                    f"{found[name, n_rows]['rss_mb']:>8.0f}M {ratio:>10.2f}x",
                    flush=True,
                )
    print(f"(this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
