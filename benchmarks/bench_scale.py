"""Campaign scale through the real workflow: planning, per-stage wall time and memory, growth.

Run on demand from the repository root (a baseline is another checkout, e.g. a git worktree of the
previous main, run with the same interpreter and its own ``src`` first on ``PYTHONPATH``)::

    git worktree add /tmp/baseline <commit>
    PYTHONPATH=src python benchmarks/bench_scale.py --baseline /tmp/baseline

Two parts, each checkout in a fresh folder, side by side:

1. Planning (``snakemake -n``) of a random-search generator, 100 structures a batch, at
   ``--plan-batches`` batches (default 1,000 and 10,000: 10^5 and 10^6 structures): fresh, and
   finished with nothing to do. "Finished" is made by creating every output the dry run lists
   (empty, in plan order) and recording them with ``snakemake --touch``, so Snakemake finds what a
   finished campaign has: the files, their order in time and their metadata (params included).
2. Campaigns at ``--structures`` (default 10^4 and 10^5): the import backend fed by synthetic
   structures (prototypes with substituted elements, strained and rattled; a third of them
   near-copies of earlier ones, so dedup has classes to find), ``relax: none``, 100 structures a
   batch, one extxyz file a batch. Per size: planning, the run (``--cores 2``), planning again
   once finished, and growth by 10 % more batches. Per stage: job time summed over its jobs and
   the largest job's peak RSS, from Snakemake's own benchmark files. Growth exponents:
   log10(t(10^5) / t(10^4)). The baseline runs the smallest size only by default
   (``--baseline-structures``): one job per batch and stage takes hours at 10^5 on 2 cores.

Prints wall times, peak RSS (``wait4``'s, of the snakemake process and what it waited for) and
ratios baseline / this checkout.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
CACHE = REPO / "benchmarks" / ".cache" / "scale"
PER_BATCH = 100

# Prototypes: (spacegroup, lattice maker, species slots, fractional sites), and the elements each
# slot may take. Substitutions give many formulas and chemical systems, as a real campaign has.
CATIONS = ["Li", "Na", "K", "Rb", "Mg", "Ca", "Sr", "Ba", "Zn", "Cd"]
ANIONS = ["F", "Cl", "Br", "I", "O", "S", "Se"]
B_SITES = ["Ti", "Zr", "Hf", "Nb", "Ta", "Sn", "Ge"]


def prototypes():
    from pymatgen.core import Lattice

    return [
        ("Fm-3m", lambda a: Lattice.cubic(a), ["A", "X"], [[0, 0, 0], [0.5, 0.5, 0.5]], 5.4),
        ("Pm-3m", lambda a: Lattice.cubic(a), ["A", "X"], [[0, 0, 0], [0.5, 0.5, 0.5]], 3.9),
        ("F-43m", lambda a: Lattice.cubic(a), ["A", "X"], [[0, 0, 0], [0.25, 0.25, 0.25]], 5.9),
        ("Fm-3m", lambda a: Lattice.cubic(a), ["A", "X"], [[0, 0, 0], [0.25, 0.25, 0.25]], 5.5),  # fluorite
        (
            "Pm-3m",
            lambda a: Lattice.cubic(a),
            ["A", "B", "O"],
            [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]],
            4.0,
        ),  # perovskite
        (
            "P4_2/mnm",
            lambda a: Lattice.tetragonal(a, 0.64 * a),
            ["B", "O"],
            [[0, 0, 0], [0.3048, 0.3048, 0]],
            4.6,
        ),  # rutile
        (
            "P6_3mc",
            lambda a: Lattice.hexagonal(a, 1.63 * a),
            ["A", "X"],
            [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.375]],
            3.8,
        ),  # wurtzite
    ]


@functools.cache
def expanded_sites(spacegroup: str, lattice, sites: tuple) -> tuple[list[int], list]:
    """For each site of a prototype's symmetry-expanded cell, its slot and fractional coordinates
    (building the space group dominates a structure's making, so each prototype is expanded once)."""
    from pymatgen.core import Element, Structure

    markers = [Element.from_Z(z + 1) for z in range(len(sites))]
    cell = Structure.from_spacegroup(spacegroup, lattice(1.0), markers, [list(s) for s in sites])
    return [markers.index(site.specie) for site in cell], cell.frac_coords.tolist()


def synthetic_structure(rng: np.random.Generator, kinds):
    from pymatgen.core import Structure

    spacegroup, lattice, slots, sites, a = kinds[rng.integers(len(kinds))]
    pick = {"A": CATIONS, "X": ANIONS, "B": B_SITES, "O": ["O", "S", "F"]}
    species = [pick[slot][rng.integers(len(pick[slot]))] for slot in slots]
    if len(set(species)) < len(species):
        species[-1] = "O" if species[-1] != "O" else "S"
    site_slots, coords = expanded_sites(spacegroup, lattice, tuple(map(tuple, sites)))
    structure = Structure(lattice(a * rng.uniform(0.9, 1.15)), [species[i] for i in site_slots], coords)
    if rng.random() < 0.3:
        structure.make_supercell([1, 1, 2])
    strain = rng.uniform(-0.03, 0.03, 3)
    structure.apply_strain(strain)
    structure.perturb(0.05, seed=int(rng.integers(2**31)))
    return structure


def near_copy(rng: np.random.Generator, structure):
    copy = structure.copy()
    copy.perturb(0.01, seed=int(rng.integers(2**31)))
    copy.apply_strain(rng.uniform(-0.005, 0.005, 3))
    return copy


def synthetic_files(folder: Path, n_structures: int, seed: int = 0) -> list[Path]:
    """``n_structures`` structures in extxyz files of ``PER_BATCH`` each (cached; the first files of
    a larger set are those of a smaller one with the same seed)."""
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    folder.mkdir(parents=True, exist_ok=True)
    n_files = n_structures // PER_BATCH
    files = [folder / f"{index:06d}.extxyz" for index in range(n_files)]
    missing = [f for f in files if not f.exists()]
    if not missing:
        return files
    kinds = prototypes()
    rng = np.random.default_rng(seed)
    made = []
    for index, path in enumerate(files):
        batch = []
        for _ in range(PER_BATCH):
            if made and rng.random() < 1 / 3:
                batch.append(near_copy(rng, made[rng.integers(len(made))]))
            else:
                batch.append(synthetic_structure(rng, kinds))
                made.append(batch[-1])
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            write(tmp, [AseAtomsAdaptor.get_atoms(s) for s in batch], format="extxyz")
            tmp.rename(path)
        if index % 100 == 99:
            print(f"  synthetic structures: {(index + 1) * PER_BATCH}/{n_structures}", flush=True)
    return files


def checkout_env(checkout: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(checkout / "src"), "OMP_NUM_THREADS": "1"}


def make_root(checkout: Path, config: dict) -> Path:
    root = Path(tempfile.mkdtemp(prefix="scale-", dir=os.environ.get("SCALE_TMP")))
    for name in ("workflow", "rules", "scripts", "envs"):
        shutil.copytree(checkout / name, root / name)
    (root / "campaign.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def snakemake(root: Path, checkout: Path, *args: str) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB, of snakemake and the children it waited for) and stdout."""
    command = [str(SNAKEMAKE), "--configfile", "campaign.yaml", "-s", "workflow/Snakefile", *args]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, cwd=root, env=checkout_env(checkout), stdout=out, stderr=out)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed in {root}:\n{text[-3000:]}")
    return wall, usage.ru_maxrss / 1024, text


def plan(root: Path, checkout: Path) -> tuple[float, float, int]:
    """Dry run: wall, peak RSS and the number of jobs it would run."""
    wall, rss, text = snakemake(root, checkout, "-n", "--quiet", "rules", "--cores", "2")
    total = next((int(line.split()[1]) for line in text.splitlines() if line.startswith("total")), 0)
    return wall, rss, total


def finish_by_touching(root: Path, checkout: Path) -> None:
    """Make the campaign look finished: every planned output created (empty) in plan order, then
    recorded with ``snakemake --touch`` (outputs touched in order, metadata written)."""
    _, _, text = snakemake(root, checkout, "-n", "--cores", "2")
    outputs = []
    for line in text.splitlines():
        if line.startswith("    output: "):
            outputs += line.removeprefix("    output: ").split(", ")
    for path in outputs:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
    snakemake(root, checkout, "--touch", "--cores", "2", "--quiet", "all")


def random_config(n_batches: int) -> dict:
    generator = {
        "name": "rss",
        "backend": "random",
        "n_batches": n_batches,
        "batch_size": PER_BATCH,
        "chemical_systems": ["Na-Cl", "Mg-O"],
        "min_atoms": 2,
        "max_atoms": 8,
    }
    return {"campaign": "plan", "generators": [generator], "relax": {"backend": "none"}}


def planning_part(checkouts: dict[str, Path], sizes: list[int]) -> None:
    print("\n## Planning (snakemake -n), random search, 100 structures a batch")
    print(f"{'checkout':>10} {'batches':>8} {'jobs':>7} {'fresh':>8} {'RSS':>7} {'finished':>9} {'RSS':>7}")
    found = {}
    for n_batches in sizes:
        for name, checkout in checkouts.items():
            root = make_root(checkout, random_config(n_batches))
            fresh, fresh_rss, jobs = plan(root, checkout)
            finish_by_touching(root, checkout)
            done, done_rss, left = plan(root, checkout)
            assert left == 0, f"{name}: the touched campaign still plans {left} jobs"
            found[name, n_batches] = (fresh, done)
            print(
                f"{name:>10} {n_batches:>8} {jobs:>7} {fresh:>7.1f}s {fresh_rss:>6.0f}M "
                f"{done:>8.1f}s {done_rss:>6.0f}M",
                flush=True,
            )
            shutil.rmtree(root)
        if len(checkouts) == 2 and all((name, n_batches) in found for name in checkouts):
            (base, new) = (found[name, n_batches] for name in checkouts)
            ratios = f"fresh {base[0] / new[0]:.1f}x, finished {base[1] / new[1]:.1f}x"
            print(f"{'':>10} {n_batches:>8} baseline / this: {ratios}")


def import_config(files_dir: Path) -> dict:
    generator = {"name": "synthetic", "backend": "import", "paths": [str(files_dir)], "batch_size": 1}
    return {"campaign": "scale", "generators": [generator], "relax": {"backend": "none"}}


def stage_times(results: Path, since: float) -> dict[str, tuple[float, float, int]]:
    """Per rule: job seconds summed, the largest job's peak RSS (MB) and jobs, of the benchmark
    files written after ``since``."""
    found: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for path in (results / "benchmarks").rglob("*.tsv"):
        if path.stat().st_mtime < since:
            continue
        rule = path.relative_to(results / "benchmarks").parts[0].removesuffix(".tsv")
        row = pd.read_csv(path, sep="\t").iloc[-1]
        rss = float(row["max_rss"]) if row["max_rss"] != "-" else math.nan
        found[rule].append((float(row["s"]), rss))
    return {rule: (sum(s for s, _ in v), max(r for _, r in v), len(v)) for rule, v in found.items()}


def campaign_part(checkouts: dict[str, Path], sizes: list[int], baseline_sizes: list[int]) -> None:
    print("\n## Campaigns: import of synthetic structures, relax none, 100 a batch")
    runs: dict[tuple[str, int], dict] = {}
    for n_structures in sizes:
        grown_structures = n_structures + n_structures // 10
        files = synthetic_files(CACHE / "structures", grown_structures)
        for name, checkout in checkouts.items():
            if name == "baseline" and n_structures not in baseline_sizes:
                continue
            folder = Path(tempfile.mkdtemp(prefix="files-", dir=os.environ.get("SCALE_TMP")))
            for path in files[: n_structures // PER_BATCH]:
                os.symlink(path, folder / path.name)
            root = make_root(checkout, import_config(folder))
            fresh, fresh_rss, jobs = plan(root, checkout)
            start = time.time()
            run_wall, _run_rss, _ = snakemake(root, checkout, "--cores", "2", "--quiet", "all")
            stages = stage_times(root / "results" / "scale", start)
            finished, finished_rss, left = plan(root, checkout)
            for path in files[n_structures // PER_BATCH :]:
                os.symlink(path, folder / path.name)
            grow_plan, _, grow_jobs = plan(root, checkout)
            start = time.time()
            grow_wall, _, _ = snakemake(root, checkout, "--cores", "2", "--quiet", "all")
            grow_stages = stage_times(root / "results" / "scale", start)
            runs[name, n_structures] = {
                "plan": fresh,
                "plan_rss": fresh_rss,
                "jobs": jobs,
                "run": run_wall,
                "stages": stages,
                "finished_plan": finished,
                "finished_rss": finished_rss,
                "left": left,
                "grow_plan": grow_plan,
                "grow_jobs": grow_jobs,
                "grow": grow_wall,
                "grow_stages": grow_stages,
            }
            report_run(name, n_structures, runs[name, n_structures])
            shutil.rmtree(root)
            shutil.rmtree(folder)
    compare(runs, sizes)


def report_run(name: str, n_structures: int, run: dict) -> None:
    print(f"\n### {name}, {n_structures} structures ({n_structures // PER_BATCH} batches)")
    print(
        f"planning: {run['plan']:.1f} s, {run['plan_rss']:.0f} MB, {run['jobs']} jobs; "
        f"run {run['run']:.1f} s; "
        f"planning when finished {run['finished_plan']:.1f} s ({run['left']} jobs left); "
        f"growth +10 %: planning {run['grow_plan']:.1f} s ({run['grow_jobs']} jobs), run {run['grow']:.1f} s"
    )
    print(f"{'stage':>20} {'jobs':>6} {'job s':>9} {'peak RSS':>9} | {'growth jobs':>11} {'job s':>9}")
    for rule in sorted(run["stages"], key=lambda r: -run["stages"][r][0]):
        seconds, rss, n = run["stages"][rule]
        grown = run["grow_stages"].get(rule, (0.0, math.nan, 0))
        print(f"{rule:>20} {n:>6} {seconds:>8.1f}s {rss:>8.0f}M | {grown[2]:>11} {grown[0]:>8.1f}s")


def compare(runs: dict[tuple[str, int], dict], sizes: list[int]) -> None:
    if len(sizes) >= 2 and ("this", sizes[0]) in runs and ("this", sizes[-1]) in runs:
        small, large = runs["this", sizes[0]], runs["this", sizes[-1]]
        decades = math.log10(sizes[-1] / sizes[0])
        print(f"\n### growth exponents (this checkout), {sizes[0]} -> {sizes[-1]} structures")
        for key in ("plan", "run", "finished_plan", "grow"):
            print(f"{key:>14}: {math.log10(large[key] / small[key]) / decades:.2f}")
        for rule in sorted(set(small["stages"]) & set(large["stages"])):
            ratio = large["stages"][rule][0] / max(small["stages"][rule][0], 1e-9)
            print(f"{rule:>14}: {math.log10(ratio) / decades:.2f}")
    for n_structures in sizes:
        if ("baseline", n_structures) in runs and ("this", n_structures) in runs:
            base, new = runs["baseline", n_structures], runs["this", n_structures]
            print(f"\n### baseline / this at {n_structures} structures")
            for key in ("plan", "run", "finished_plan", "grow_plan", "grow"):
                print(f"{key:>14}: {base[key]:8.1f} s / {new[key]:8.1f} s = {base[key] / new[key]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, help="another checkout to run side by side")
    parser.add_argument("--plan-batches", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--structures", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--baseline-structures", type=int, nargs="*", default=[10_000])
    args = parser.parse_args()
    checkouts = {"this": REPO}
    if args.baseline:
        checkouts = {"baseline": args.baseline.resolve(), "this": REPO}
    if args.plan_batches:
        planning_part(checkouts, args.plan_batches)
    if args.structures:
        campaign_part(checkouts, args.structures, args.baseline_structures)


if __name__ == "__main__":
    main()
