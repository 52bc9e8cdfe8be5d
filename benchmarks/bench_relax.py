"""Benchmark batched relaxation against the per-structure ASE loop: same model, same structures.

Run on demand, never part of the test suite (from the repository root)::

    PYTHONPATH=src:tests python benchmarks/bench_relax.py [--n 210] [--model-path FILE | --model NAME]
        [--device auto] [--dtype float64] [--memory-budget-mb 4000] [--torch-sim]

The input is N rattled and strained rock salts (NaCl, MgO, KCl) of 4 to 40 atoms, built with a
fixed seed. Without ``--model``/``--model-path`` the model is the tests' tiny MACE (trained once
in ~40 s on CHGNet labels, cached under ``benchmarks/.cache/``), whose forces are real enough for
relaxations of tens of steps. Each mode runs in a fresh process (so each peak memory is its own),
with FIRE + Frechet cell filter, fmax 0.05, at most 200 steps. Prints structures/s, steps, peak
memory and the batched / per-structure ratio side by side, and how far the results differ.

``--torch-sim`` adds a third run: torch-sim-atomistic's batched FIRE + Frechet cell filter
(``pip install torch-sim-atomistic``; not a project dependency) on the same model object, device
and dtype, with its in-flight batcher under the same atom budget. It is the alternative the
project measured before choosing its own batcher (benchmarks/README.md). Its FIRE is its own
implementation and it checks convergence every 5 steps, so its step counts are not comparable and
are not printed; it reports converged structures and energies instead. Its timing includes the
RMSD to the input of every structure, as our relaxers' result rows do.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(__file__).resolve().parent / ".cache"
SALTS = (("Na", "Cl", 5.64), ("Mg", "O", 4.21), ("K", "Cl", 6.29))
# primitive rock salt has 2 atoms: these supercells give 4 to 40 atoms
SUPERCELLS = [
    (a, b, c) for a in range(1, 6) for b in range(1, 4) for c in range(1, 3) if 2 <= a * b * c <= 20
]


def benchmark_structures(n: int, seed: int) -> list[Structure]:
    rng = np.random.default_rng(seed)
    structures = []
    for _ in range(n):
        cation, anion, a = SALTS[rng.integers(len(SALTS))]
        primitive = Structure.from_spacegroup(
            "Fm-3m", Lattice.cubic(a * rng.uniform(0.95, 1.06)), [cation, anion], [[0, 0, 0], [0.5] * 3]
        ).get_primitive_structure()
        structure = primitive * SUPERCELLS[rng.integers(len(SUPERCELLS))]
        for index, shift in enumerate(rng.normal(0, 0.06, (len(structure), 3))):
            structure.translate_sites([index], shift, frac_coords=False)
        structures.append(structure)
    return structures


def tiny_model() -> Path:
    model = CACHE / "tiny_mace" / "tiny.model"
    if not model.exists():
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_mace import train_tiny_mace

        train_tiny_mace(model.parent)
    return model


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_mode(settings: dict, n: int, seed: int) -> dict:
    """One relaxation mode in this (fresh) process: wall time, peak memory and the results."""
    import torch

    from crystal_campaign.relax import get_relaxer

    structures = benchmark_structures(n, seed)
    relaxer = get_relaxer(settings)
    loaded_rss = peak_rss_mib()
    cuda = relaxer.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start, start_cpu = time.perf_counter(), time.process_time()
    results = relaxer.relax(structures)
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    return {
        "wall": wall,
        "cpu": time.process_time() - start_cpu,
        "rss_loaded": loaded_rss,
        "rss_peak": peak_rss_mib(),
        "gpu_peak": torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan"),
        "statuses": [r.status for r in results],
        "steps": [r.n_steps for r in results],
        "energy_per_atom": [r.energy_per_atom for r in results],
        "rmsd": [r.rmsd for r in results],
        "model_calls": relaxer.last_stats.model_calls,
        "device": relaxer.device,
        "checkpoint": relaxer.settings()["checkpoint"],
    }


def run_torch_sim(settings: dict, n: int, seed: int) -> dict:
    """torch-sim's batched FIRE on the model our MACE relaxer loads, in this (fresh) process."""
    import torch
    import torch_sim
    from torch_sim.models.mace import MaceModel

    from crystal_campaign.relax import get_relaxer, rmsd_angstrom

    structures = benchmark_structures(n, seed)
    relaxer = get_relaxer(settings)
    device = torch.device(relaxer.device)
    model = MaceModel(relaxer.potential.model, device=device, dtype=relaxer.potential.dtype)
    batcher = torch_sim.InFlightAutoBatcher(
        model,
        memory_scales_with="n_atoms",
        max_memory_scaler=settings["memory_budget_mb"] / settings["memory_per_atom_mb"],
    )
    converged = torch_sim.generate_force_convergence_fn(force_tol=settings["fmax"])
    loaded_rss = peak_rss_mib()
    cuda = relaxer.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start, start_cpu = time.perf_counter(), time.process_time()
    state = torch_sim.optimize(
        structures,
        model,
        optimizer=torch_sim.frechet_cell_fire,
        convergence_fn=converged,
        autobatcher=batcher,
        max_steps=settings["max_steps"],
    )
    # the same per-structure output work as our relaxers' result rows (RMSD to the input)
    rmsd = [rmsd_angstrom(a, b) for a, b in zip(structures, state.to_structures(), strict=True)]
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    final = model(state)
    state.forces, state.stress = final["forces"], final["stress"]
    done = converged(state).cpu().tolist()
    atoms_per_structure = torch.bincount(state.system_idx).cpu().numpy()
    return {
        "wall": wall,
        "cpu": cpu,
        "rss_loaded": loaded_rss,
        "rss_peak": peak_rss_mib(),
        "gpu_peak": torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan"),
        "statuses": ["converged" if ok else "unconverged" for ok in done],
        "steps": None,
        "energy_per_atom": (final["energy"].detach().cpu().numpy() / atoms_per_structure).tolist(),
        "rmsd": rmsd,
        "model_calls": None,
        "device": relaxer.device,
        "checkpoint": relaxer.settings()["checkpoint"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=210)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="a MACE foundation model name (from MACE's cache)")
    parser.add_argument("--model-path", help="a local MACE model file")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--memory-budget-mb", type=float, default=4000)
    parser.add_argument("--memory-per-atom-mb", type=float, default=2.0)
    parser.add_argument("--torch-sim", action="store_true", help="also run torch-sim's batched FIRE")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    model_path = args.model_path or (None if args.model else str(tiny_model()))
    settings = {
        "backend": "mace",
        "model": args.model,
        "model_path": model_path,
        "dtype": args.dtype,
        "device": args.device,
        "fmax": 0.05,
        "max_steps": 200,
        "memory_budget_mb": args.memory_budget_mb,
        "memory_per_atom_mb": args.memory_per_atom_mb,
    }
    sizes = [len(s) for s in benchmark_structures(args.n, args.seed)]
    print(
        f"{args.n} structures, {min(sizes)}-{max(sizes)} atoms, mean {np.mean(sizes):.1f}, seed {args.seed}"
    )
    modes = {
        "per-structure": (run_mode, {**settings, "batched": False}),
        "batched": (run_mode, {**settings, "batched": True}),
    }
    if args.torch_sim:
        modes["torch-sim"] = (run_torch_sim, settings)
    runs = {}
    context = multiprocessing.get_context("spawn")
    for mode, (run, mode_settings) in modes.items():
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            runs[mode] = pool.submit(run, mode_settings, args.n, args.seed).result()
    loop = runs["per-structure"]
    print(f"model {loop['checkpoint']} ({args.dtype}) on {loop['device']}, torch threads 1")
    print(
        f"{'':14}{'struct/s':>10}{'wall':>9}{'CPU':>9}{'steps':>8}{'calls':>8}"
        f"{'RSS peak':>10}{'GPU peak':>10}{'vs loop':>9}{'converged':>11}"
    )
    for mode, run in runs.items():
        steps = "-" if run["steps"] is None else sum(run["steps"])
        calls = run["model_calls"] or ("-" if run["steps"] is None else sum(s + 1 for s in run["steps"]))
        print(
            f"{mode:14}{args.n / run['wall']:>10.2f}{run['wall']:>8.1f}s{run['cpu']:>8.1f}s"
            f"{steps:>8}{calls:>8}{run['rss_peak']:>9.0f}M{run['gpu_peak']:>9.0f}M"
            f"{loop['wall'] / run['wall']:>8.2f}x{run['statuses'].count('converged'):>11}"
        )
    for mode, run in runs.items():
        if mode == "per-structure":
            continue
        same_status = loop["statuses"] == run["statuses"]
        energy_gap = np.abs(np.subtract(loop["energy_per_atom"], run["energy_per_atom"]))
        line = (
            f"{mode} vs per-structure: same statuses {same_status}; |dE| max {np.nanmax(energy_gap):.2e}, "
            f"median {np.nanmedian(energy_gap):.2e} eV/atom; mean RMSD to the input "
            f"{np.nanmean(run['rmsd']):.3f} vs {np.nanmean(loop['rmsd']):.3f} A"
        )
        if run["steps"] is not None:
            step_gap = max(abs(a - b) for a, b in zip(loop["steps"], run["steps"], strict=True))
            line += f"; max step difference {step_gap}"
        print(line)


if __name__ == "__main__":
    main()
