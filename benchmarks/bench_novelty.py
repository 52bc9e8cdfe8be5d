"""Benchmark exact dedup + novelty at scale against pymatgen ``group_structures`` + pairwise novelty.

Run on demand, never part of the test suite (from the repository root)::

    PYTHONPATH=src python benchmarks/bench_novelty.py --generated 10000 --reference 150000 --processes 2

Input (cached under ``benchmarks/.cache/``, keyed by sizes and seed):

- templates: the CIFs of ``../shared/data/generated-cifs`` (MatterGen data release) with at most
  ``--max-template-sites`` sites, plus textbook prototypes (rock salt, CsCl, zinc blende, rutile,
  perovskite, fluorite);
- reference (``--reference``): templates with element substitutions within chemical families,
  scaled 0.9-1.1 and strained / rattled a little, which gives MP-like formula buckets (most of
  one to a few structures, some of tens), plus ``--polymorph-formulas`` formulas holding hundreds
  of distinct random P1 polymorphs each (as SiO2 or TiO2 do in MP);
- generated (``--generated``): 30 % near copies of reference structures (strain <= 1 %, rattle
  <= 0.02 A, rotation, sometimes a supercell: known), 30 % new substitutions, 25 % new random
  polymorphs of the polymorph formulas, 15 % near copies of other generated structures.

Ours: the reference is reduced once (``cached_reduced_reference``, on disk, keyed by snapshot
SHA-256 and matcher settings; timed separately, with ``--processes``), then dedup
(``group_indices``) and novelty (``ReferenceIndex.matches_reduced``, as the novelty job: every
snapshot match, for recall; the first match alone timed too) of every generated structure,
single process. Baseline: ``group_structures`` and, per generated structure, ``fit`` against
every reference structure of the same reduced formula until one matches (mattergen), on a
stratified sample of formula buckets (``--sample-per-stratum`` buckets per size stratum, at most
``--max-sample`` generated structures of each); ours runs on the same sample side by side, and
classes and matches must be identical (exit status 1 otherwise). Each timed part runs in a fresh
process, so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
import warnings
from collections import Counter, defaultdict
from itertools import islice
from pathlib import Path

import numpy as np
from bench_dedup import CountedFits, in_fresh_process, peak_rss_mib, random_rotation
from pymatgen.core import Lattice, Structure

from crystal_campaign import io
from crystal_campaign.dedup import group_reduced
from crystal_campaign.matching import MatchCounter, build_matcher, reduce_structure
from crystal_campaign.novelty import ReferenceIndex, cached_reduced_reference, load_reduced

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".cache"
SHARED_CIFS = ROOT.parent.parent / "shared" / "data" / "generated-cifs"  # ../shared beside the repository
INPUT_VERSION = 1
FAMILIES = [
    ["Li", "Na", "K", "Rb", "Cs"],
    ["Be", "Mg", "Ca", "Sr", "Ba"],
    ["Sc", "Y", "La"],
    ["Ti", "Zr", "Hf", "Sn", "Ge"],
    ["V", "Nb", "Ta"],
    ["Cr", "Mo", "W"],
    ["Mn", "Fe", "Co", "Ni", "Cu", "Zn"],
    ["Ru", "Rh", "Pd", "Ag", "Cd", "Au", "Pt"],
    ["B", "Al", "Ga", "In", "Tl"],
    ["Si", "Pb"],
    ["N", "P", "As", "Sb", "Bi"],
    ["O", "S", "Se", "Te"],
    ["F", "Cl", "Br", "I"],
]
FAMILY_OF = {element: family for family in FAMILIES for element in family}
POLYMORPH_FORMULAS = [
    ["Ti", "O", "O"],
    ["Si", "O", "O"],
    ["Zn", "S"],
    ["Al", "Al", "O", "O", "O"],
    ["Li", "Co", "O", "O"],
]


def prototypes() -> list[Structure]:
    cubic = Lattice.cubic
    return [
        Structure.from_spacegroup("Fm-3m", cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure(cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure.from_spacegroup("F-43m", cubic(5.4), ["Zn", "S"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
        Structure.from_spacegroup(
            "P4_2/mnm", Lattice.tetragonal(4.59, 2.96), ["Ti", "O"], [[0, 0, 0], [0.305, 0.305, 0]]
        ),
        Structure(
            cubic(3.9),
            ["Sr", "Ti", "O", "O", "O"],
            [[0, 0, 0], [0.5] * 3, [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]],
        ),
        Structure.from_spacegroup("Fm-3m", cubic(5.46), ["Ca", "F"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    ]


def templates(cifs: Path, max_sites: int) -> list[Structure]:
    paths = sorted(cifs.glob("*/*.cif"))
    if not paths:
        raise SystemExit(f"no CIFs under {cifs}: pass --cifs (the shared generated-cifs folder)")
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            if path.stem.endswith("_symmetrized"):
                continue
            structure = Structure.from_file(path)
            if len(structure) <= max_sites and all(el.symbol in FAMILY_OF for el in structure.composition):
                found.append(structure)
    return found + prototypes()


def substitute(template: Structure, rng: np.random.Generator) -> Structure:
    """Each element replaced by a random member of its family (distinct elements stay distinct)."""
    mapping: dict[str, str] = {}
    for element in sorted(el.symbol for el in template.composition):
        options = [e for e in FAMILY_OF[element] if e not in mapping.values()]
        mapping[element] = options[rng.integers(len(options))]
    return Structure(template.lattice, [mapping[s.specie.symbol] for s in template], template.frac_coords)


def perturb(structure: Structure, rng: np.random.Generator, strain: float, rattle: float) -> Structure:
    deformation = np.eye(3) + rng.uniform(-strain, strain, (3, 3))
    lattice = Lattice(structure.lattice.matrix @ ((deformation + deformation.T) / 2))
    steps = rng.normal(size=(len(structure), 3))
    steps *= (rng.uniform(0, rattle, len(structure)) / np.linalg.norm(steps, axis=1))[:, None]
    moved = Structure(lattice, structure.species, structure.frac_coords)
    return Structure(lattice, structure.species, moved.cart_coords + steps, coords_are_cartesian=True)


def near_copy(structure: Structure, rng: np.random.Generator) -> Structure:
    copy = perturb(structure, rng, 0.01, 0.02)
    if rng.random() < 0.2:
        copy.make_supercell([(1, 1, 2), (2, 1, 1), (1, 2, 1)][rng.integers(3)])
    rotation = random_rotation(rng)
    return Structure(Lattice(copy.lattice.matrix @ rotation.T), copy.species, copy.frac_coords)


def random_polymorph(rng: np.random.Generator, species: list[str]) -> Structure:
    """A P1 crystal with Z = 1..4 formula units, about 12 A^3 per atom, atoms >= 1.5 A apart
    (random sequential addition; a new cell when an atom finds no place)."""
    species = species * int(rng.integers(1, 5))
    while True:
        lattice = Lattice.from_parameters(*rng.uniform(0.7, 1.4, 3), *rng.uniform(65, 115, 3))
        lattice = lattice.scale(12.0 * len(species))
        coords = [rng.random(3)]
        for _ in species[1:]:
            trials = rng.random((50, 3))
            nearest = lattice.get_all_distances(trials, np.array(coords)).min(axis=1)
            if nearest.max() <= 1.5:
                break
            coords.append(trials[np.argmax(nearest > 1.5)])
        if len(coords) == len(species):
            return Structure(lattice, species, coords)


def reference_structures(n: int, polymorphs: int, rng: np.random.Generator, bases: list[Structure]):
    """Yield ``n`` reference structures: ``polymorphs`` random ones per polymorph formula, the rest
    substitutions of templates (each scaled, strained and rattled)."""
    for species in POLYMORPH_FORMULAS:
        for _ in range(polymorphs):
            yield random_polymorph(rng, species)
    for _ in range(n - polymorphs * len(POLYMORPH_FORMULAS)):
        base = substitute(bases[rng.integers(len(bases))], rng)
        base.scale_lattice(base.volume * rng.uniform(0.9, 1.1) ** 3)
        yield perturb(base, rng, 0.02, 0.03)


def cache_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    stem = f"novelty_v{INPUT_VERSION}_r{args.reference}_p{args.polymorphs}_s{args.seed}"
    return CACHE / f"{stem}_reference.jsonl.gz", CACHE / f"{stem}_g{args.generated}.jsonl.gz"


def build_inputs(args: argparse.Namespace) -> None:
    """Write the reference snapshot (batch format) and the generated structures, if not cached."""
    reference_path, generated_path = cache_paths(args)
    if generated_path.exists():
        return
    rng = np.random.default_rng(args.seed)
    bases = templates(Path(args.cifs), args.max_template_sites)
    CACHE.mkdir(exist_ok=True)
    if not reference_path.exists():
        records = (
            io.structure_record(f"ref-{i}", i, s, None, formula=s.composition.reduced_formula)
            for i, s in enumerate(reference_structures(args.reference, args.polymorphs, rng, bases))
        )
        io.write_records(reference_path, records)
        io.write_json(io.sidecar_path(reference_path), {"sha256": io.file_sha256(reference_path)})
    known_sample = sample_reference(reference_path, 0.3 * args.generated / args.reference, rng)
    generated: list[Structure] = []
    for _ in range(args.generated):
        roll = rng.random()
        if roll < 0.3 and known_sample:
            generated.append(near_copy(known_sample[rng.integers(len(known_sample))], rng))
        elif roll < 0.6:
            generated.append(perturb(substitute(bases[rng.integers(len(bases))], rng), rng, 0.03, 0.05))
        elif roll < 0.85 or not generated:
            generated.append(random_polymorph(rng, POLYMORPH_FORMULAS[rng.integers(len(POLYMORPH_FORMULAS))]))
        else:
            generated.append(near_copy(generated[rng.integers(len(generated))], rng))
    io.write_records(
        generated_path, (io.structure_record(f"gen-{i}", i, s, None) for i, s in enumerate(generated))
    )


def sample_reference(path: Path, fraction: float, rng: np.random.Generator) -> list[Structure]:
    with gzip.open(path, "rt") as handle:
        return [
            Structure.from_dict(json.loads(line)["structure"]) for line in handle if rng.random() < fraction
        ]


def reference_by_formula(path: Path, formulas: set[str]) -> dict[str, list[tuple[str, Structure]]]:
    """Reference structures of the given reduced formulas, in snapshot order."""
    found: dict[str, list[tuple[str, Structure]]] = defaultdict(list)
    with gzip.open(path, "rt") as handle:
        for line in handle:
            record = json.loads(line)
            if record["formula"] in formulas:
                found[record["formula"]].append((record["id"], Structure.from_dict(record["structure"])))
    return found


def run_reference_preprocessing(args: argparse.Namespace) -> dict:
    """Reduce the reference once (if not cached), then time reading all of it and reading only the
    buckets one workflow novelty job needs (its batch: the first ``--batch-size`` generated)."""
    reference_path, generated_path = cache_paths(args)
    start = time.perf_counter()
    path = cached_reduced_reference(str(reference_path), {}, str(CACHE), args.processes)
    built = time.perf_counter() - start
    start = time.perf_counter()
    load_reduced(path)
    load = time.perf_counter() - start
    matcher = build_matcher()
    batch = [r["structure"] for r in islice(io.read_records(generated_path), args.batch_size)]
    keys = {reduce_structure(matcher, s).key for s in batch}
    start = time.perf_counter()
    subset = load_reduced(path, keys)
    return {
        "wall": built,
        "load": load,
        "batch_load": time.perf_counter() - start,
        "batch_buckets": len(keys),
        "batch_references": len(subset["labels"]),
        "rss": peak_rss_mib(),
        "path": str(path),
    }


def run_ours(args: argparse.Namespace, positions: list[int] | None) -> dict:
    """Dedup and novelty of the generated structures (all, or those at ``positions``)."""
    reference_path, generated_path = cache_paths(args)
    structures = [r["structure"] for r in io.read_records(generated_path)]
    if positions is not None:
        structures = [structures[p] for p in positions]
    matcher = build_matcher()
    reduced = load_reduced(cached_reduced_reference(str(reference_path), {}, str(CACHE)))
    input_rss = peak_rss_mib()
    start = time.perf_counter()
    prepared = [reduce_structure(matcher, s) for s in structures]  # once, as the workflow's reduce jobs
    reduce_wall = time.perf_counter() - start
    start = time.perf_counter()
    leaders, dedup_calls = group_reduced(prepared, matcher)
    dedup_wall = time.perf_counter() - start
    # the first match alone (novelty), then every snapshot match as the novelty job finds them (recall)
    start = time.perf_counter()
    first_only = ReferenceIndex(str(reference_path), MatchCounter(matcher), reduced)
    first_matches = [first_only.first_match_reduced(r) for r in prepared]
    first_wall = time.perf_counter() - start
    start = time.perf_counter()
    counter = MatchCounter(matcher)
    index = ReferenceIndex(str(reference_path), counter, reduced)
    found = [index.matches_reduced(r) for r in prepared]
    matches = [first for first, _ in found]
    assert matches == first_matches
    return {
        "leaders": leaders,
        "matches": matches,
        "reduce_wall": reduce_wall,
        "dedup_wall": dedup_wall,
        "novelty_wall": time.perf_counter() - start,
        "first_match_wall": first_wall,
        "first_match_calls": first_only.counter.calls,
        "dedup_calls": dedup_calls,
        "novelty_calls": counter.calls,
        "screened": counter.screened,
        "input_rss": input_rss,
        "rss": peak_rss_mib(),
    }


def run_baseline(args: argparse.Namespace, positions: list[int]) -> dict:
    """``group_structures`` and pairwise same-formula novelty on the structures at ``positions``."""
    reference_path, generated_path = cache_paths(args)
    all_structures = [r["structure"] for r in io.read_records(generated_path)]
    structures = [all_structures[p] for p in positions]
    del all_structures
    formulas = [s.composition.reduced_formula for s in structures]
    references = reference_by_formula(reference_path, set(formulas))
    input_rss = peak_rss_mib()
    matcher = build_matcher()
    counted = CountedFits(matcher)
    # group_structures pre-groups by formula anyway: one call per bucket gives the same groups and
    # a time per bucket, for the extrapolation to unsampled buckets
    seconds: dict[str, float] = defaultdict(float)
    dedup_seconds: dict[str, float] = {}
    position = {id(s): i for i, s in enumerate(structures)}
    leaders = [-1] * len(structures)
    for formula in dict.fromkeys(formulas):
        start = time.perf_counter()
        groups = matcher.group_structures(
            [s for s, f in zip(structures, formulas, strict=True) if f == formula]
        )
        seconds[formula] += time.perf_counter() - start
        dedup_seconds[formula] = seconds[formula]
        for group in groups:
            for member in group:
                leaders[position[id(member)]] = position[id(group[0])]
    dedup_wall = sum(seconds.values())
    dedup_calls = counted.calls
    matches = []
    for s, formula in zip(structures, formulas, strict=True):
        start = time.perf_counter()
        matches.append(
            next((label for label, ref in references.get(formula, []) if matcher.fit(s, ref)), None)
        )
        seconds[formula] += time.perf_counter() - start
    return {
        "leaders": leaders,
        "matches": matches,
        "seconds": dict(seconds),
        "dedup_seconds": dedup_seconds,
        "reduce_wall": 0.0,  # inside group_structures and fit
        "dedup_wall": dedup_wall,
        "novelty_wall": sum(seconds.values()) - dedup_wall,
        "dedup_calls": dedup_calls,
        "novelty_calls": counted.calls - dedup_calls,
        "input_rss": input_rss,
        "rss": peak_rss_mib(),
    }


def stratified_sample(formulas: list[str], per_stratum: int, cap: int, seed: int) -> tuple[list[int], dict]:
    """Positions of a sample of formula buckets, ``per_stratum`` from each size stratum (the first
    ``cap`` structures of each bucket), and per stratum: structures in it, and in its sample."""
    rng = np.random.default_rng(seed)
    members: dict[str, list[int]] = defaultdict(list)
    for position, formula in enumerate(formulas):
        members[formula].append(position)
    strata = {"1-2": (1, 2), "3-20": (3, 20), "21-100": (21, 100), ">100": (101, 10**9)}
    positions: list[int] = []
    weights = {}
    for name, (low, high) in strata.items():
        buckets = sorted(f for f, m in members.items() if low <= len(m) <= high)
        chosen = [buckets[i] for i in rng.choice(len(buckets), min(per_stratum, len(buckets)), replace=False)]
        sample = sorted(p for f in chosen for p in members[f][:cap])
        positions += sample
        weights[name] = (sum(len(members[f]) for f in buckets), len(sample), len(buckets), chosen)
    return sorted(positions), weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generated", type=int, default=10000)
    parser.add_argument("--reference", type=int, default=150000)
    parser.add_argument(
        "--polymorphs", type=int, default=300, help="reference polymorphs per polymorph formula"
    )
    parser.add_argument("--processes", type=int, default=2, help="for the one-off reference reduction")
    parser.add_argument("--sample-per-stratum", type=int, default=3)
    parser.add_argument("--max-sample", type=int, default=60, help="generated structures per sampled bucket")
    parser.add_argument("--max-template-sites", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=256, help="structures per workflow novelty job")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cifs", default=str(SHARED_CIFS), help="real generated CIFs used as templates")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    in_fresh_process(build_inputs, args)
    print(f"inputs ready in {time.perf_counter() - start:.0f} s: {cache_paths(args)}", flush=True)
    reference = in_fresh_process(run_reference_preprocessing, args)
    print(
        f"reference reduced in {reference['wall']:.0f} s (0 if cached), loads in {reference['load']:.1f} s; "
        f"a novelty job's {reference['batch_buckets']} buckets (batch of {args.batch_size}: "
        f"{reference['batch_references']} reference structures) load in {reference['batch_load']:.2f} s",
        flush=True,
    )
    ours = in_fresh_process(run_ours, args, None)
    formulas = [
        s.composition.reduced_formula for s in (r["structure"] for r in io.read_records(cache_paths(args)[1]))
    ]
    sizes = Counter(Counter(formulas).values())
    print(f"generated buckets: {len(set(formulas))}; largest: {Counter(formulas).most_common(5)}")
    print(f"bucket-size histogram (size: count): {dict(sorted(sizes.items()))}")
    positions, strata = stratified_sample(formulas, args.sample_per_stratum, args.max_sample, args.seed)
    ours_sample = in_fresh_process(run_ours, args, positions)
    theirs = in_fresh_process(run_baseline, args, positions)
    same_classes = ours_sample["leaders"] == theirs["leaders"]
    same_matches = ours_sample["matches"] == theirs["matches"]
    print(
        f"\nsample: {len(positions)} generated structures; classes identical: {same_classes}; "
        f"novelty matches identical: {same_matches}"
    )

    def total(result: dict) -> float:
        return result["reduce_wall"] + result["dedup_wall"] + result["novelty_wall"]

    def row(name: str, result: dict) -> str:
        return (
            f"{name:<22} {result['reduce_wall']:>9.1f}s {result['dedup_wall']:>9.1f}s "
            f"{result['novelty_wall']:>9.1f}s {total(result):>9.1f}s "
            f"{result['dedup_calls']:>10} {result['novelty_calls']:>10} {result['rss']:>8.0f}M"
        )

    print(
        f"\n{'run':<22} {'reduce':>10} {'dedup':>10} {'novelty':>10} {'total':>10} {'fits dedup':>10} "
        f"{'fits nov':>10} {'peak RSS':>9}"
    )
    print(row("ours, sample", ours_sample))
    print(row("baseline, sample", theirs))
    print(row(f"ours, all {args.generated}", ours))
    print(
        f"\nnovelty with every snapshot match (for recall), all {args.generated}: "
        f"{ours['novelty_wall']:.1f} s, "
        f"{ours['novelty_calls']} fits; first match only: {ours['first_match_wall']:.1f} s, "
        f"{ours['first_match_calls']} fits ({ours['novelty_wall'] / ours['first_match_wall']:.2f}x)"
    )
    print(
        f"\nspeed-up on the sample (side by side): {total(theirs) / total(ours_sample):.1f}x; ours spends "
        f"{ours_sample['reduce_wall']:.1f} s reducing each structure once (group_structures reduces each "
        "once too, pairwise novelty in every fit)"
    )
    # baseline for all: per stratum, its time per sampled structure times the stratum's structures
    # (linear, so an underestimate for big buckets, where group_structures grows quadratically)
    # and a second estimate that scales each sampled bucket's group_structures time with the square
    # of (bucket size / sampled size), as its fit calls grow for buckets of distinct polymorphs
    estimate = quadratic = 0.0
    bucket_sizes = Counter(formulas)
    for name, (n_stratum, n_sample, n_buckets, sample_formulas) in strata.items():
        sampled = sum(theirs["seconds"].get(f, 0.0) for f in sample_formulas)
        estimate += sampled * n_stratum / n_sample if n_sample else 0.0
        for f in sample_formulas:
            growth = bucket_sizes[f] / min(bucket_sizes[f], args.max_sample)
            dedup = theirs["dedup_seconds"].get(f, 0.0)
            bucket = dedup * growth**2 + (theirs["seconds"].get(f, 0.0) - dedup) * growth
            quadratic += bucket * n_buckets / len(sample_formulas)
        print(
            f"  stratum {name:>6}: {n_buckets} buckets, {n_stratum} structures, {n_sample} sampled, "
            f"baseline {sampled:.1f} s on the sample"
        )
    print(
        f"baseline for all {args.generated}, extrapolated: {estimate:.0f} s; ours {total(ours):.0f} s: "
        f"{estimate / total(ours):.1f}x"
    )
    print(
        f"baseline for all {args.generated}, dedup extrapolated quadratically per bucket: {quadratic:.0f} s: "
        f"{quadratic / total(ours):.1f}x"
    )
    print(
        f"reference: {args.reference} structures, reduced once in {reference['wall']:.0f} s "
        f"with {args.processes} processes (peak RSS {reference['rss']:.0f}M); cached at {reference['path']}"
    )
    return 0 if same_classes and same_matches else 1


if __name__ == "__main__":
    sys.exit(main())
