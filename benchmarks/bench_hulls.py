"""Benchmark the hulls job (phase diagram per chemical system) against the number of systems shown.

Run on demand, never part of the test suite (from the repository root)::

    PYTHONPATH=src python benchmarks/bench_hulls.py --systems 10 100

Synthetic input, seeded: binary and ternary systems (alternating) over a pool of elements, each
with a self-consistent reference (end-members, two or three compounds, some of them above the
hull) and ``--per-system`` generated structures at compositions in the system, with formation
energies, E_hull and S.U.N. flags. The per-structure table holds every system (``--systems`` max)
and ``plots.hull_systems`` decides how many are drawn, so each run reads the same table. Each
count runs ``hulls.run_hulls_job`` (the job itself: reference hulls, figures at the default 150
dpi, table, page) in a fresh process; prints wall time, time per system, peak RSS and the growth
ratio against the smallest count (linear: the ratio of the counts).
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Composition

from crystal_campaign import hulls, io

ELEMENTS = [
    "Li",
    "Na",
    "K",
    "Mg",
    "Ca",
    "Sr",
    "Ti",
    "V",
    "Cr",
    "Mn",
    "Fe",
    "Co",
    "Ni",
    "Cu",
    "Zn",
    "Al",
    "Ga",
    "Si",
    "Ge",
    "Sn",
    "O",
    "S",
    "Se",
    "F",
    "Cl",
    "Br",
    "N",
    "P",
]
BINARY_COMPOUNDS = [(1, 1), (1, 2), (2, 1), (1, 3), (3, 2)]
TERNARY_COMPOUNDS = [(1, 1, 1), (2, 1, 1), (1, 2, 1), (1, 1, 2), (1, 1, 3), (2, 1, 4)]


def chemical_systems(n: int) -> list[tuple[str, ...]]:
    pairs = itertools.combinations(ELEMENTS, 2)
    triples = itertools.combinations(ELEMENTS, 3)
    chosen = []
    while len(chosen) < n:
        chosen.append(next(pairs) if len(chosen) % 2 == 0 else next(triples))
    return chosen


def formula(elements: tuple[str, ...], counts: tuple[int, ...]) -> str:
    return "".join(f"{el}{n}" for el, n in zip(elements, counts, strict=True))


def write_inputs(folder: Path, n_systems: int, per_system: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    references, rows = [], []
    elements_seen = set()
    for system in chemical_systems(n_systems):
        for element in set(system) - elements_seen:
            references.append(
                {"id": f"ref-{element}", "formula": element, "status": "converged", "energy": -3.0}
            )
            elements_seen.add(element)
        compounds = BINARY_COMPOUNDS if len(system) == 2 else TERNARY_COMPOUNDS
        for counts in compounds[:3]:
            name = formula(system, counts)
            energy = (-3.0 - rng.uniform(0.0, 1.5)) * Composition(name).num_atoms
            references.append({"id": f"ref-{name}", "formula": name, "status": "converged", "energy": energy})
        chemsys = "-".join(sorted(system))
        for i in range(per_system):
            name = formula(system, compounds[rng.integers(len(compounds))])
            e_hull = float(rng.exponential(0.15)) - 0.02
            rows.append(
                {
                    "id": f"{chemsys}-{i}",
                    "generator": ["rss", "mattergen"][i % 2],
                    "formula": Composition(name).reduced_formula,
                    "chemsys": chemsys,
                    "evaluated": True,
                    "e_above_hull": e_hull,
                    "formation_energy_per_atom": -rng.uniform(0.0, 1.5) + e_hull,
                    "sun": e_hull <= 0.1 and i % 3 == 0,
                    "msun": e_hull <= 0.2 and i % 3 == 0,
                    "target_chemsys": None,
                }
            )
    io.write_records(folder / "energies.jsonl.gz", [r | {"reason": None} for r in references])
    settings = {"stability": {"energy_basis": "self_consistent"}, "reference": {"sha256": "0" * 64}}
    io.write_table(folder / "structures.parquet", pd.DataFrame(rows), settings)


def run_one(folder: Path, n_shown: int) -> dict:
    """The job in this process (called in a fresh one per count)."""
    outputs = {
        "figures": str(folder / f"out-{n_shown}" / "hulls"),
        "table": str(folder / f"out-{n_shown}" / "systems.parquet"),
        "page": str(folder / f"out-{n_shown}" / "hulls.html"),
    }
    start = time.perf_counter()
    hulls.run_hulls_job(
        str(folder / "structures.parquet"),
        "unused",
        str(folder / "energies.jsonl.gz"),
        outputs,
        {"dpi": 150, "hull_systems": n_shown},
        "bench",
    )
    wall = time.perf_counter() - start
    figures = len(list(Path(outputs["figures"]).glob("*.png")))
    return {
        "wall": wall,
        "figures": figures,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--per-system", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # folder, count: the child process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(Path(args.one[0]), int(args.one[1]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_inputs(folder, max(args.systems), args.per_system, args.seed)
        results = {}
        for n in args.systems:
            child = [sys.executable, __file__, "--one", str(folder), str(n)]
            results[n] = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout)
    base = min(args.systems)
    header = ["systems", "figures", "wall", "per system", "RSS peak", "wall ratio", "count ratio"]
    print(" ".join(f"{h:>11}" for h in header))
    for n, r in results.items():
        print(
            f"{n:>11} {r['figures']:>11} {r['wall']:>10.2f}s {r['wall'] / n:>10.3f}s {r['rss_mb']:>10.0f}M "
            f"{r['wall'] / results[base]['wall']:>10.2f}x {n / base:>10.1f}x"
        )


if __name__ == "__main__":
    main()
