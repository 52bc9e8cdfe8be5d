"""Benchmark the relaxation engines side by side: same model, same structures, one fresh process each.

Run on demand, never part of the test suite (from the repository root)::

    PYTHONPATH=src:tests python benchmarks/bench_relax.py [--n 210] [--structures rock-salts|random]
        [--model-path FILE | --model NAME | --foundation-size] [--device auto] [--dtype float64]
        [--memory-budget-mb MB] [--fixed-steps N] [--engines per-structure batched-ase torch-sim]

The default input is N rattled and strained rock salts (NaCl, MgO, KCl) of 4 to 40 atoms, built
with a fixed seed; ``--structures random`` takes N random-search structures (Na-Cl, Mg-O, K-Cl,
4 to 12 atoms), far from equilibrium. Without a model option the model is the tests' tiny MACE
(trained once in ~40 s on CHGNet labels, cached under ``benchmarks/.cache/``). ``--foundation-size``
builds a MACE of MACE-MP-0 medium's architecture with random weights (cached there too): with
``--fixed-steps N`` (fmax 0, so every structure takes N steps) it times what a foundation model
costs per step. Every engine relaxes with FIRE + Frechet cell filter (fmax 0.05, at most 200 steps
unless ``--fixed-steps``), one torch thread.

Printed per engine: structures/s, wall time, the time inside the MACE network's forward pass (a
forward hook, synchronised on a GPU), the RMSD measurement's time, structure-steps (evaluations
of one structure), model calls, peak RSS and GPU memory, and the host time per structure-step
outside the model (wall minus RMSD minus time inside the network, per structure-step): the figure
that bounds GPU throughput; and, in brackets, outside the potential call as each engine makes it
(torch-sim's model and batched ASE's evaluator include building neighbour lists and graphs).
Then how far each engine's results are from the per-structure loop's (statuses, steps, |dE|,
share of structures that match with ltol 0.05, stol 0.05, angle_tol 1).
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
ENGINES = ("per-structure", "batched-ase", "torch-sim")


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


def random_search_structures(n: int, seed: int) -> list[Structure]:
    """N structures of the project's random-search backend (pyxtal), as a campaign samples them."""
    import tempfile

    from crystal_campaign import generators, io

    settings = {
        "backend": "random",
        "name": "bench",
        "batch_size": n,
        "chemical_systems": ["Na-Cl", "Mg-O", "K-Cl"],
        "min_atoms": 4,
        "max_atoms": 12,
        "charge_balanced": True,
        "max_attempts": 20,
        "volume_factor": 1.1,
    }
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "sample.jsonl.gz")
        generators.sample(settings, f"bench-{seed}", 0, path)
        return [r["structure"] for r in io.read_records(path) if r["structure"] is not None]


def input_structures(kind: str, n: int, seed: int) -> list[Structure]:
    return random_search_structures(n, seed) if kind == "random" else benchmark_structures(n, seed)


def tiny_model() -> Path:
    model = CACHE / "tiny_mace" / "tiny.model"
    if not model.exists():
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_mace import train_tiny_mace

        train_tiny_mace(model.parent)
    return model


def foundation_size_model() -> Path:
    """A MACE of MACE-MP-0 medium's architecture (128x0e + 128x1o, L = 3 features, correlation 3,
    2 interactions, 6 A cutoff, 89 elements) with random weights: a foundation model's cost per step."""
    model_file = CACHE / "foundation_size" / "mace_mp_medium_architecture.model"
    if model_file.exists():
        return model_file
    # e3nn loads its constants with torch.load; under torch >= 2.6 only so (as mace itself sets)
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    import torch
    from e3nn import o3
    from mace import modules

    torch.manual_seed(0)
    model = modules.ScaleShiftMACE(
        r_max=6.0,
        num_bessel=10,
        num_polynomial_cutoff=5,
        max_ell=3,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
        num_interactions=2,
        num_elements=89,
        hidden_irreps=o3.Irreps("128x0e + 128x1o"),
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.zeros(89),
        avg_num_neighbors=61.96,
        atomic_numbers=list(range(1, 90)),
        correlation=3,
        gate=torch.nn.functional.silu,
        radial_MLP=[64, 64, 64],
        atomic_inter_scale=1.0,
        atomic_inter_shift=0.0,
    )
    model_file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model, model_file)
    return model_file


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class ForwardTimer:
    """Time inside a torch module's forward calls (synchronised on a GPU, so the kernels count)."""

    def __init__(self, module, cuda: bool) -> None:
        import torch

        self.seconds = 0.0
        self.sync = torch.cuda.synchronize if cuda else (lambda: None)
        module.register_forward_pre_hook(self.before)
        module.register_forward_hook(self.after)

    def before(self, module, args) -> None:
        self.sync()
        self.started = time.perf_counter()

    def after(self, module, args, output) -> None:
        self.sync()
        self.seconds += time.perf_counter() - self.started


class CallTimer:
    """Time inside a method of a class, e.g. the potential's evaluation as an engine calls it."""

    def __init__(self, cuda: bool) -> None:
        import torch

        self.seconds = 0.0
        self.sync = torch.cuda.synchronize if cuda else (lambda: None)

    def wrap(self, owner: type, name: str) -> None:
        method = getattr(owner, name)

        def timed(*args, **kwargs):
            self.sync()
            started = time.perf_counter()
            result = method(*args, **kwargs)
            self.sync()
            self.seconds += time.perf_counter() - started
            return result

        setattr(owner, name, timed)


def run_engine(settings: dict, kind: str, n: int, seed: int) -> dict:
    """One engine in this (fresh) process: times, peak memory and the results."""
    import torch

    from crystal_campaign.relax import base, get_relaxer

    structures = input_structures(kind, n, seed)
    relaxer = get_relaxer(settings)
    cuda = relaxer.device.startswith("cuda")
    timer = ForwardTimer(relaxer.potential.model, cuda)
    # the potential as each engine calls it: torch-sim's model (neighbour lists inside), the
    # batch evaluator (graphs and neighbour lists inside), MACE's ASE calculator
    from torch_sim.models.mace import MaceModel

    potential_call = CallTimer(cuda)
    potential_call.wrap(MaceModel, "forward")
    potential_call.wrap(type(relaxer.potentials.batch), "evaluate")
    potential_call.wrap(type(relaxer.potentials.calculator), "calculate")
    rmsd_seconds = []
    fill = base.RmsdQueue.fill

    def timed_fill(queue, results):
        started = time.perf_counter()
        fill(queue, results)
        rmsd_seconds.append(time.perf_counter() - started)

    base.RmsdQueue.fill = timed_fill
    loaded_rss = peak_rss_mib()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start, start_cpu = time.perf_counter(), time.process_time()
    results = relaxer.relax(structures)
    wall = time.perf_counter() - start
    return {
        "wall": wall,
        "cpu": time.process_time() - start_cpu,
        "in_model": timer.seconds,
        "in_potential": potential_call.seconds,
        "rmsd": sum(rmsd_seconds),
        "rss_loaded": loaded_rss,
        "rss_peak": peak_rss_mib(),
        "gpu_peak": torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan"),
        "gpu_name": torch.cuda.get_device_name() if cuda else None,
        "statuses": [r.status for r in results],
        "steps": [r.n_steps for r in results],
        "energy_per_atom": [r.energy_per_atom for r in results],
        "structures": [r.structure.as_dict() if r.structure is not None else None for r in results],
        "model_calls": relaxer.last_stats.model_calls,
        "engine": relaxer.settings()["engine"],
        "device": relaxer.device,
        "checkpoint": relaxer.settings()["checkpoint"],
    }


def compare(loop: dict, run: dict) -> str:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher(ltol=0.05, stol=0.05, angle_tol=1)
    pairs = [
        (Structure.from_dict(a), Structure.from_dict(b))
        for a, b in zip(loop["structures"], run["structures"], strict=True)
        if a is not None and b is not None
    ]
    matching = np.mean([matcher.fit(a, b) for a, b in pairs]) if pairs else float("nan")
    gap = np.abs(np.subtract(loop["energy_per_atom"], run["energy_per_atom"]))
    steps = max(abs(a - b) for a, b in zip(loop["steps"], run["steps"], strict=True))
    return (
        f"same statuses {loop['statuses'] == run['statuses']}; |dE| max {np.nanmax(gap):.2e}, "
        f"median {np.nanmedian(gap):.2e}, 95th percentile {np.nanpercentile(gap, 95):.2e} eV/atom; "
        f"matching structures {matching:.1%}; max step difference {steps}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=210)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--structures", default="rock-salts", choices=["rock-salts", "random"])
    parser.add_argument("--model", help="a MACE foundation model name (from MACE's cache)")
    parser.add_argument("--model-path", help="a local MACE model file")
    parser.add_argument(
        "--foundation-size", action="store_true", help="MACE-MP-0 medium's architecture, random weights"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--memory-budget-mb", type=float, default=None, help="default: the relaxer's")
    parser.add_argument("--memory-per-atom-mb", type=float, default=2.0)
    parser.add_argument("--fixed-steps", type=int, help="fmax 0: every structure takes this many steps")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.foundation_size:
        model_path = str(foundation_size_model())
    else:
        model_path = args.model_path or (None if args.model else str(tiny_model()))
    settings = {
        "backend": "mace",
        "model": args.model,
        "model_path": model_path,
        "dtype": args.dtype,
        "device": args.device,
        "fmax": 0.0 if args.fixed_steps else 0.05,
        "max_steps": args.fixed_steps or 200,
        "memory_budget_mb": args.memory_budget_mb,
        "memory_per_atom_mb": args.memory_per_atom_mb,
        # random weights at a fixed step count: time every step, stop nothing for its volume
        "max_volume_ratio": 1000.0 if args.fixed_steps else 3.0,
    }
    sizes = [len(s) for s in input_structures(args.structures, args.n, args.seed)]
    print(
        f"{len(sizes)} {args.structures} structures, {min(sizes)}-{max(sizes)} atoms, "
        f"mean {np.mean(sizes):.1f}, seed {args.seed}"
    )
    runs = {}
    context = multiprocessing.get_context("spawn")
    for engine in args.engines:
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            runs[engine] = pool.submit(
                run_engine, {**settings, "engine": engine}, args.structures, args.n, args.seed
            ).result()
    first = next(iter(runs.values()))
    card = f" ({first['gpu_name']})" if first["gpu_name"] else ""
    print(f"model {first['checkpoint']} ({args.dtype}) on {first['device']}{card}, torch threads 1")
    print(
        f"{'':14}{'struct/s':>9}{'wall':>9}{'model':>9}{'RMSD':>8}{'host/str-step':>14}{'(potential)':>12}"
        f"{'str-steps':>10}{'calls':>7}{'RSS peak':>10}{'GPU peak':>10}{'vs loop':>9}{'converged':>10}"
    )
    host, outside_potential = {}, {}
    for engine, run in runs.items():
        structure_steps = sum(s + 1 for s in run["steps"])
        host[engine] = (run["wall"] - run["rmsd"] - run["in_model"]) / structure_steps
        outside_potential[engine] = (run["wall"] - run["rmsd"] - run["in_potential"]) / structure_steps
        versus = runs["per-structure"]["wall"] / run["wall"] if "per-structure" in runs else float("nan")
        print(
            f"{engine:14}{len(sizes) / run['wall']:>9.2f}{run['wall']:>8.1f}s{run['in_model']:>8.1f}s"
            f"{run['rmsd']:>7.1f}s{host[engine] * 1e6:>11.0f} us{outside_potential[engine] * 1e6:>9.0f} us"
            f"{structure_steps:>10}{run['model_calls']:>7}"
            f"{run['rss_peak']:>9.0f}M{run['gpu_peak']:>9.0f}M{versus:>8.2f}x"
            f"{run['statuses'].count('converged'):>10}"
        )
    if "batched-ase" in host:
        for engine in host:
            print(
                f"host time per structure-step, batched-ase / {engine}: outside the network "
                f"{host['batched-ase'] / host[engine]:.1f}x, outside the potential call "
                f"{outside_potential['batched-ase'] / outside_potential[engine]:.1f}x"
            )
    if "per-structure" in runs:
        for engine, run in runs.items():
            if engine != "per-structure":
                print(f"{engine} vs per-structure: {compare(runs['per-structure'], run)}")


if __name__ == "__main__":
    main()
