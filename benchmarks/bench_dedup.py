"""Benchmark ``group_indices`` against pymatgen's ``group_structures`` on a realistic dedup input.

Run on demand, never part of the test suite (from the repository root)::

    PYTHONPATH=src python benchmarks/bench_dedup.py [--sizes 1000 5000] [--seed 0]

For each size N the input holds a few hundred distinct random crystals ("parents", from the
project's pyxtal random-search backend) in several reduced-formula buckets, one of them holding
hundreds of same-formula polymorphs with varying Z, and N minus that many duplicates of parents
(rotated, 2x supercells, permuted sites, strained <= 2 %, rattled 0.01-0.03 A), all shuffled.
The input is cached under ``benchmarks/.cache/`` keyed by N and seed. Each method then runs in a
fresh process on the same input, so its peak RSS is its own; the classes must be identical
(exit status 1 otherwise).
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import resource
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from crystal_campaign.dedup import group_indices
from crystal_campaign.generators.random_search import BACKEND
from crystal_campaign.matching import build_matcher

CACHE = Path(__file__).resolve().parent / ".cache"
INPUT_VERSION = 2  # bump when the input recipe changes, so stale caches are not reused
POLYMORPH_FORMULA = "TiO2"  # the bucket of hundreds of distinct polymorphs (Z = 1..4)
OTHER_FORMULAS = ("NaCl", "MgO", "ZnS", "GaN", "CaF2", "LiCoO2", "SrTiO3", "Al2O3", "KBr", "Li2O")
SUPERCELLS = ((1, 1, 2), (2, 1, 1), (1, 2, 1))
OPERATIONS = ("supercell", "strain", "rattle", "permute", "rotate")  # applied in this order


def parent_counts(n: int) -> dict[str, int]:
    """Distinct parents per formula: 8 % of N polymorphs, 3 % of N spread geometrically over the rest."""
    shares = 0.7 ** np.arange(len(OTHER_FORMULAS))
    others = np.maximum(2, np.round(0.03 * n * shares / shares.sum())).astype(int)
    return {POLYMORPH_FORMULA: round(0.08 * n), **dict(zip(OTHER_FORMULAS, others.tolist(), strict=True))}


def generate_parents(formula: str, count: int, seed: int) -> list[Structure]:
    settings = dict(
        name="bench",
        backend="random",
        batch_size=count + count // 5 + 5,
        chemical_systems=[],
        compositions=[formula],
        min_atoms=2,
        max_atoms=12,
        charge_balanced=True,
        max_attempts=20,
        volume_factor=1.1,
    )
    samples = BACKEND.sample_batch(settings, 0, seed).samples
    structures = [s.structure for s in samples if s.structure is not None][:count]
    if len(structures) < count:
        raise RuntimeError(f"only {len(structures)} of {count} {formula} parents generated")
    return structures


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def duplicate(parent: Structure, rng: np.random.Generator) -> tuple[Structure, str]:
    """A copy of ``parent`` under a random non-empty subset of ``OPERATIONS``; the subset's label."""
    ops = [op for op in OPERATIONS if rng.random() < 0.5] or ["rotate"]
    s = parent.copy()
    if "supercell" in ops:
        s.make_supercell(SUPERCELLS[rng.integers(len(SUPERCELLS))])
    if "strain" in ops:
        strain = rng.uniform(-0.02, 0.02, size=(3, 3))
        deformation = np.eye(3) + (strain + strain.T) / 2
        s = Structure(Lattice(s.lattice.matrix @ deformation), s.species, s.frac_coords)
    if "rattle" in ops:
        steps = rng.normal(size=(len(s), 3))
        steps *= (rng.uniform(0.01, 0.03, size=len(s)) / np.linalg.norm(steps, axis=1))[:, None]
        s = Structure(s.lattice, s.species, s.cart_coords + steps, coords_are_cartesian=True)
    if "permute" in ops:
        s = Structure.from_sites([s[i] for i in rng.permutation(len(s))])
    if "rotate" in ops:
        rotation = random_rotation(rng)
        s = Structure(Lattice(s.lattice.matrix @ rotation.T), s.species, s.frac_coords)
    return s, "+".join(ops)


def build_input(n: int, seed: int) -> tuple[dict, list[Structure]]:
    """N structures: distinct parents plus shuffled duplicates; bucket label and origin per structure."""
    rng = np.random.default_rng(seed)
    counts = parent_counts(n)
    parents: list[tuple[str, Structure]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k, (formula, count) in enumerate(counts.items()):
            parents += [(formula, s) for s in generate_parents(formula, count, seed * 1000 + k)]
    # duplicates: bucket weights vary (polymorphs 20 %), and within a bucket a few parents dominate (Zipf)
    formulas = list(counts)
    shares = 0.75 ** np.arange(len(OTHER_FORMULAS))
    weights = np.concatenate([[0.2], 0.8 * shares / shares.sum()])
    by_formula = {f: [i for i, (g, _) in enumerate(parents) if g == f] for f in formulas}
    entries = [(f, s, "parent") for f, s in parents]
    for _ in range(n - len(parents)):
        members = by_formula[formulas[rng.choice(len(formulas), p=weights)]]
        zipf = 1.0 / np.arange(1, len(members) + 1)
        formula, parent = parents[members[rng.choice(len(members), p=zipf / zipf.sum())]]
        entries.append((formula, *duplicate(parent, rng)))
    order = rng.permutation(len(entries))
    header = {
        "n": n,
        "seed": seed,
        "version": INPUT_VERSION,
        "bucket": [entries[i][0] for i in order],
        "origin": [entries[i][2] for i in order],
    }
    return header, [entries[i][1] for i in order]


def cache_path(n: int, seed: int) -> Path:
    return CACHE / f"dedup_v{INPUT_VERSION}_n{n}_seed{seed}.jsonl.gz"


def load_header(n: int, seed: int) -> dict:
    """The input's labels; generates and caches the input if needed (header, then a structure a line)."""
    path = cache_path(n, seed)
    if not path.exists():
        start = time.perf_counter()
        header, structures = build_input(n, seed)
        CACHE.mkdir(exist_ok=True)
        with gzip.open(path.with_suffix(".tmp"), "wt") as handle:
            handle.writelines(
                json.dumps(record) + "\n" for record in [header] + [s.as_dict() for s in structures]
            )
        path.with_suffix(".tmp").rename(path)
        print(f"generated N={n} seed={seed} in {time.perf_counter() - start:.1f} s -> {path}", flush=True)
    with gzip.open(path, "rt") as handle:
        return json.loads(handle.readline())


def load_structures(n: int, seed: int) -> list[Structure]:
    """The cached input, one structure at a time, so the peak RSS is not that of a parsed whole file."""
    with gzip.open(cache_path(n, seed), "rt") as handle:
        handle.readline()
        return [Structure.from_dict(json.loads(line)) for line in handle]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class CountedFits:
    """Counts ``fit`` calls on one matcher instance (``group_structures`` calls ``self.fit``)."""

    def __init__(self, matcher: StructureMatcher) -> None:
        self.calls = 0
        fit = matcher.fit

        def counted_fit(*args: object, **kwargs: object) -> bool:
            self.calls += 1
            return fit(*args, **kwargs)

        matcher.fit = counted_fit


def run_method(method: str, n: int, seed: int) -> dict:
    """In a fresh process: load the input, then time one method; leaders per structure and fit calls."""
    structures = load_structures(n, seed)
    input_rss = peak_rss_mib()
    matcher = build_matcher(None)
    start = time.perf_counter()
    if method == "ours":
        leaders, calls = group_indices(structures, matcher)
    else:
        counted = CountedFits(matcher)
        groups = matcher.group_structures(structures)
        calls = counted.calls
        position = {id(s): i for i, s in enumerate(structures)}
        leaders = [-1] * len(structures)
        for group in groups:
            for member in group:
                leaders[position[id(member)]] = position[id(group[0])]
    wall = time.perf_counter() - start
    return {"leaders": leaders, "calls": calls, "wall": wall, "input_rss": input_rss, "rss": peak_rss_mib()}


def in_fresh_process(function: Callable[..., dict], *args: object) -> dict:
    """Run in a new interpreter. Its ru_maxrss starts at this process's RSS (fork before exec), so
    this process stays small: it only ever holds labels and leader lists."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def describe(data: dict, leaders: list[int]) -> None:
    """Bucket sizes of the input, with the classes (of ``group_indices``) found in each."""
    labelled = list(zip(data["bucket"], data["origin"], strict=True))
    classes = Counter(data["bucket"][leader] for leader in set(leaders))
    sizes = Counter(data["bucket"])
    parents = Counter(b for b, o in labelled if o == "parent")
    supercells = Counter(b for b, o in labelled if "supercell" in o)
    print(
        f"input N={data['n']} seed={data['seed']}: {sum(parents.values())} distinct parents, "
        f"{len(data['bucket']) - sum(parents.values())} duplicates"
    )
    print(f"  {'bucket':<8} {'size':>5} {'parents':>7} {'supercells':>10} {'classes':>7}")
    for bucket, size in sizes.most_common():
        print(f"  {bucket:<8} {size:>5} {parents[bucket]:>7} {supercells[bucket]:>10} {classes[bucket]:>7}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows, failed = [], False
    for n in args.sizes:
        data = in_fresh_process(load_header, n, args.seed)
        ours = in_fresh_process(run_method, "ours", n, args.seed)
        theirs = in_fresh_process(run_method, "group_structures", n, args.seed)
        describe(data, ours["leaders"])
        diff = [i for i, (a, b) in enumerate(zip(ours["leaders"], theirs["leaders"], strict=True)) if a != b]
        if diff:
            failed = True
            print(
                f"MISMATCH at N={n}: {len(diff)} structures differ, first: "
                + ", ".join(
                    f"#{i} ({data['bucket'][i]}, {data['origin'][i]}): ours leader "
                    f"{ours['leaders'][i]}, group_structures {theirs['leaders'][i]}"
                    for i in diff[:5]
                )
            )
        rows.append((n, len(set(ours["leaders"])), len(set(theirs["leaders"])), ours, theirs, not diff))
        print(f"N={n}: ours {ours['wall']:.1f} s, group_structures {theirs['wall']:.1f} s", flush=True)
    print(
        f"\n{'N':>6} {'classes':>7} {'fits ours':>9} {'fits gs':>9} {'wall ours':>9} {'wall gs':>9} "
        f"{'speed-up':>8} {'RSS in':>7} {'RSS ours':>8} {'RSS gs':>7} {'same':>5}"
    )
    for n, classes, classes_gs, ours, theirs, same in rows:
        label = str(classes) if classes == classes_gs else f"{classes}/{classes_gs}"
        print(
            f"{n:>6} {label:>7} {ours['calls']:>9} {theirs['calls']:>9} {ours['wall']:>8.1f}s "
            f"{theirs['wall']:>8.1f}s {theirs['wall'] / ours['wall']:>7.2f}x {ours['input_rss']:>6.0f}M "
            f"{ours['rss']:>7.0f}M {theirs['rss']:>6.0f}M {'yes' if same else 'NO':>5}"
        )
    print("RSS: peak resident MiB of the process after loading the input (in) and after each method.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
