"""Exact structure matching: the classes of pymatgen's ``group_structures``, with far fewer ``fit`` calls.

Classes. ``group_structures`` pops the first unmatched structure of a bucket as a class leader and
puts every later structure ``x`` with ``fit(leader, x)`` in its class. Walking structures in order
and giving each to the first earlier leader it fits (or making it a leader) yields exactly those
classes: a structure that fits no earlier leader is the first unmatched one once those are done.

Walk order (stable class ids). A fresh campaign is walked in campaign order (generator in config
order, batch index, index in batch). Later runs walk every structure walked before in its earlier
position, then the new ones in campaign order (``walk_order``). A structure's class depends only
on the structures walked before it, so growing a campaign (more batches for any generator, a
generator appended to the config) never changes an existing structure's class or its leader id.

Pruning. ``fit(a, b)`` (``a`` the leader in dedup, the candidate in novelty) is skipped only when
one of these rules proves it False under the matcher's options:

1. Bucket: different comparator hashes (reduced formulas). Proof: ``fit`` returns False on
   unequal hashes before any work when ``allow_subset`` is False; under ``disordered`` the same
   holds for two ordered structures (reduced formulas must be equal), see ``AlloyMatcher.fit_reduced``;
   a partially occupied structure under ``disordered`` (``crosses``) is compared across buckets.
2. Site count: different site counts of the reduced cells, when ``a`` can only be compared
   without supercells (``ordered``; ``disordered`` with an ``a`` that has no substitutable pair).
   Proof: with ``attempt_supercell`` False, ``fu`` is 1 and ``_strict_match`` returns None unless
   the species mask is square.
3. Lattice: ``minima(a)[i] >= (1 + ltol) * lengths(b)[i]`` for some i, under the same condition
   as rule 2. Proof: with ``fu`` 1 a match needs a basis of ``a``'s lattice (``find_all_mappings``
   onto ``b``'s reduced lattice, ``|det| = 1``) whose j-th vector is shorter than ``(1 + ltol)``
   times ``b``'s j-th reduced-cell length; sorting keeps that bound, and the i-th shortest vector
   of any basis is at least the i-th successive minimum ``minima(a)[i]``. With ``scale`` both
   lattices are first scaled to equal volume, which ``lengths``/``minima`` undo by dividing by
   the cube root of the volume; ``LENGTH_SLACK`` only ever lets more pairs through (float rounding).
4. Lattice mapping (``lattice_may_map``), same condition, pair by pair: the lattice search of
   ``fit`` replayed on cached short vectors of ``a``; if it finds no basis, ``fit`` tries no
   lattice and returns False (proof in its docstring).
Volume never prunes under ``scale=True``; under ``disordered`` an ``a`` with a substitutable
element pair (Hume-Rothery) may match through supercells and subsets, so only rule 1 applies,
and a pair with a partially occupied ``b`` is never pruned by rules 2-4.
Reduced structures are computed once per structure (the reference's once per snapshot, on disk).
"""

from __future__ import annotations

import hashlib
import itertools
import pickle
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.analysis.structure_matcher import OrderDisorderElementComparator, StructureMatcher
from pymatgen.core import Composition, Element, Lattice, Structure

from crystal_campaign import io

MATCHER_DEFAULTS = {
    "matcher": "ordered",
    "ltol": 0.2,
    "stol": 0.3,
    "angle_tol": 5.0,
    "primitive_cell": True,
    "scale": True,
}
SHARD_DEFAULT = 4
LENGTH_SLACK = 1e-6  # relative; far above float rounding of lengths, far below any tolerance
ANGLE_SLACK = 1e-4  # degrees; above the rounding of arccos near 0 and 180 degrees
# mattergen's "disordered" defaults: Hume-Rothery thresholds and the loose composition check
RADIUS_THRESHOLD = 0.3
ELECTRONEGATIVITY_THRESHOLD = 1.0
COMPOSITION_ATOL = 1e-2
COMPOSITION_RTOL = 1e-1


def substitution_groups(elements: Sequence[Element]) -> list[list[Element]]:
    """Groups of elements that may replace one another (connected by a Hume-Rothery-like rule).

    Two elements substitute when their atomic radii differ by at most ``RADIUS_THRESHOLD`` of
    their mean and their Pauling electronegativities by at most ``ELECTRONEGATIVITY_THRESHOLD``
    (the thresholds of the revised MatterGen paper). Groups are connected components; only groups
    of two or more are returned, in element order.
    """
    group_of = {element: {element} for element in elements}
    for first, second in itertools.combinations(elements, 2):
        radii = (first.atomic_radius, second.atomic_radius)
        if None in radii or np.isnan(first.X) or np.isnan(second.X):
            continue
        close_radii = abs(radii[0] - radii[1]) / ((radii[0] + radii[1]) / 2) <= RADIUS_THRESHOLD
        if close_radii and abs(first.X - second.X) <= ELECTRONEGATIVITY_THRESHOLD:
            merged = group_of[first] | group_of[second]
            for element in merged:
                group_of[element] = merged
    groups = {id(group): group for group in group_of.values() if len(group) > 1}
    return [sorted(group) for group in sorted(groups.values(), key=lambda g: min(g))]


def as_alloy(structure: Structure) -> Structure | None:
    """The structure with each substitution group spread over its sites as one mixed occupancy
    (fractions from the composition), or None when no two of its elements substitute."""
    composition = structure.composition.element_composition
    groups = substitution_groups(sorted(composition.elements))
    if not groups:
        return None
    mixed = {}
    for group in groups:
        total = sum(composition[element] for element in group)
        occupancy = Composition({element: composition[element] / total for element in group})
        mixed.update({element: occupancy for element in group})
    alloy = structure.copy()
    alloy.replace_species(mixed)
    return alloy


class AlloyMatcher(StructureMatcher):
    """mattergen's default "disordered" matching semantics, implemented on pymatgen's matcher.

    Oxidation states are ignored. Two ordered structures match if they have the same reduced
    formula and either match as ordered structures (pymatgen defaults) or the first, with its
    substitutable elements merged into mixed sites (``as_alloy``), matches the second allowing
    supercells and subsets with an order-disorder element comparator. If either structure has
    partial occupancies, their fractional compositions must agree within ``COMPOSITION_ATOL`` /
    ``COMPOSITION_RTOL`` and the supercell/subset match decides. ``fit`` on reduced structures
    (``skip_structure_reduction``) takes ``Reduced`` objects, whose alloy form is reduced once.
    """

    def __init__(self, ltol: float, stol: float, angle_tol: float, primitive_cell: bool, scale: bool) -> None:
        tolerances = {"ltol": ltol, "stol": stol, "angle_tol": angle_tol}
        tolerances |= {"primitive_cell": primitive_cell, "scale": scale}
        super().__init__(
            **tolerances,
            comparator=OrderDisorderElementComparator(),
            attempt_supercell=True,
            allow_subset=True,
        )
        self.ordered = StructureMatcher(**tolerances, attempt_supercell=False, allow_subset=False)

    def fit_reduced(self, first: Reduced, second: Reduced) -> bool:
        loose = StructureMatcher.fit  # the supercell/subset match with the order-disorder comparator
        if first.ordered and second.ordered:
            if first.key != second.key:
                return False
            if self.ordered.fit(first.structure, second.structure, skip_structure_reduction=True):
                return True
            alloy = first.alloy
            return alloy is not None and loose(self, alloy, second.structure, skip_structure_reduction=True)
        close = first.structure.composition.fractional_composition.almost_equals(
            second.structure.composition.fractional_composition, rtol=COMPOSITION_RTOL, atol=COMPOSITION_ATOL
        )
        return close and loose(self, first.structure, second.structure, skip_structure_reduction=True)

    def fit(
        self,
        struct1: Structure,
        struct2: Structure,
        symmetric: bool = False,
        skip_structure_reduction: bool = False,
    ) -> bool:
        if symmetric or skip_structure_reduction:
            raise ValueError("AlloyMatcher.fit compares raw structures; use fit_reduced for reduced ones")
        return self.fit_reduced(reduce_structure(self, struct1), reduce_structure(self, struct2))


def build_matcher(settings: dict | None = None) -> StructureMatcher:
    """``ordered``: pymatgen's defaults (mattergen's "ordered"); ``disordered``: ``AlloyMatcher``."""
    options = {**MATCHER_DEFAULTS, **(settings or {})}
    options.pop("shards", None)
    kind = options.pop("matcher")
    if kind == "disordered":
        return AlloyMatcher(**options)
    return StructureMatcher(**options, attempt_supercell=False, allow_subset=False)


def matcher_settings(matcher: StructureMatcher) -> dict:
    """The options that define a matcher, for recording beside every result it produced."""
    return {
        "matcher": "disordered" if isinstance(matcher, AlloyMatcher) else "ordered",
        "ltol": matcher.ltol,
        "stol": matcher.stol,
        "angle_tol": matcher.angle_tol,
        "primitive_cell": matcher._primitive_cell,
        "scale": matcher._scale,
        "attempt_supercell": matcher._supercell,
        "allow_subset": matcher._subset,
        "comparator": type(matcher._comparator).__name__,
    }


def matcher_options(matcher: StructureMatcher) -> dict:
    """The ``matching`` config section that builds this matcher again."""
    settings = matcher_settings(matcher)
    return {key: settings[key] for key in MATCHER_DEFAULTS}


def settings_key(matcher: StructureMatcher) -> str:
    """Short digest of ``matcher_settings``, to key caches of reduced structures."""
    text = repr(sorted(matcher_settings(matcher).items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def lattice_coefficients(matrix: np.ndarray, radius: float) -> np.ndarray:
    """Integer coefficients of every nonzero lattice vector (rows of ``matrix``) within ``radius``,
    and possibly a few longer ones: a vector of length r has j-th coefficient at most r times the
    length of the j-th dual basis vector."""
    bounds = np.floor(radius * np.linalg.norm(np.linalg.inv(matrix), axis=0)).astype(int)
    ranges = [np.arange(-b, b + 1) for b in bounds]
    coefficients = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3)
    return coefficients[np.any(coefficients != 0, axis=1)]


def successive_minima(lattice: Lattice) -> np.ndarray:
    """The three successive minima of a lattice (lengths of the shortest independent vectors).

    Exact: every vector no longer than the longest basis vector R is enumerated (its j-th
    coefficient is bounded by R times the length of the j-th dual basis vector), and greedily
    keeping the shortest vectors that raise the rank yields the minima (a matroid).
    """
    radius = max(lattice.abc) * (1 + 1e-9)
    vectors = lattice_coefficients(lattice.matrix, radius) @ lattice.matrix
    lengths = np.linalg.norm(vectors, axis=1)
    minima, chosen = [], np.zeros((0, 3))
    for index in np.argsort(lengths):
        trial = np.vstack([chosen, vectors[index]])
        if np.linalg.matrix_rank(trial, tol=1e-8 * radius) > len(chosen):
            chosen = trial
            minima.append(lengths[index])
            if len(minima) == 3:
                break
    return np.array(minima)


@dataclass
class Reduced:
    """A structure prepared once for many ``fit`` calls: reduced cell, bucket and pruning data.

    Pickles compactly (arrays, not pymatgen sites), so a reference of 10^5 structures caches in
    tens of MB; the pymatgen structures are rebuilt on first use.
    """

    lattice: np.ndarray
    species: list  # per site: a species string, or a {species: occupancy} dict for mixed sites
    frac_coords: np.ndarray
    key: Hashable  # bucket: the comparator's composition hash (``disordered``: the reduced formula)
    chemsys: str  # elements, dash-joined: equal keys imply equal chemical systems (shards)
    lengths: np.ndarray  # sorted reduced-cell lengths, per cube root of volume when scaling
    minima: np.ndarray  # successive minima, same normalisation
    abc: np.ndarray  # reduced-cell lengths in basis order, same normalisation
    angles: np.ndarray  # reduced-cell angles (alpha, beta, gamma) in degrees
    norm: float  # the normalisation: cube root of the reduced volume when scaling, else 1
    ordered: bool
    strict: bool  # as first argument: fit needs equal site counts and the lattice rule, for a bucketed second
    crosses: bool  # may match across formulas (partial occupancies under ``disordered``): not bucketed
    alloy_data: tuple | None = None  # (lattice, species, frac_coords) of the reduced alloy form

    @property
    def n_sites(self) -> int:
        return len(self.species)

    @cached_property
    def structure(self) -> Structure:
        return _build(self.lattice, self.species, self.frac_coords)

    @cached_property
    def alloy(self) -> Structure | None:
        return None if self.alloy_data is None else _build(*self.alloy_data)

    @cached_property
    def _vectors(self) -> dict[str, np.ndarray]:
        return {}

    def vectors_within(self, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """Every lattice vector (normalised like ``abc``) no longer than ``radius``, with its integer
        coefficients; cached for the largest radius asked so far."""
        cache = self._vectors
        if cache.get("radius", -1.0) < radius:
            matrix = self.lattice / self.norm
            coefficients = lattice_coefficients(matrix, radius)
            cache.update(radius=radius, coefficients=coefficients, vectors=coefficients @ matrix)
        vectors = cache["vectors"]
        inside = np.linalg.norm(vectors, axis=1) <= radius
        return vectors[inside], cache["coefficients"][inside]

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("structure", "alloy", "_vectors")}


def _species_of(structure: Structure) -> list:
    return [
        str(site.specie) if site.is_ordered else {str(sp): occ for sp, occ in site.species.items()}
        for site in structure
    ]


def _build(lattice: np.ndarray, species: list, frac_coords: np.ndarray) -> Structure:
    return Structure(Lattice(lattice), species, frac_coords)


def _pack(structure: Structure) -> tuple:
    return structure.lattice.matrix.copy(), _species_of(structure), structure.frac_coords.copy()


def reduce_structure(matcher: StructureMatcher, structure: Structure) -> Reduced:
    """Primitive Niggli cell as ``fit`` would compute it, plus the data the pruning rules read."""
    disordered = isinstance(matcher, AlloyMatcher)
    if disordered:
        structure = structure.copy().remove_oxidation_states()
    processed = matcher._process_species([structure])[0]
    reduced = matcher._get_reduced_structure(processed, matcher._primitive_cell, niggli=True)
    norm = reduced.volume ** (1 / 3) if matcher._scale else 1.0
    alloy_data = None
    if disordered and structure.is_ordered:
        alloy = as_alloy(processed)
        if alloy is not None:
            alloy_data = _pack(matcher._get_reduced_structure(alloy, matcher._primitive_cell, niggli=True))
    if disordered:
        key = processed.composition.reduced_formula
    else:
        key = matcher._comparator.get_hash(processed.composition)
    packed = _pack(reduced)
    result = Reduced(
        *packed,
        key=key,
        chemsys="-".join(sorted(el.symbol for el in processed.composition.element_composition)),
        lengths=np.sort(reduced.lattice.abc) / norm,
        minima=successive_minima(reduced.lattice) / norm,
        abc=np.array(reduced.lattice.abc) / norm,
        angles=np.array(reduced.lattice.angles),
        norm=norm,
        ordered=structure.is_ordered,
        strict=not disordered or (structure.is_ordered and alloy_data is None),
        crosses=disordered and not structure.is_ordered,
        alloy_data=alloy_data,
    )
    result.__dict__["structure"] = _build(*packed)
    return result


def may_fit(first: Reduced, second: Reduced, ltol: float) -> bool:
    """False only when a pruning rule (module docstring) proves ``fit(first, second)`` False."""
    if not (first.crosses or second.crosses) and first.key != second.key:
        return False
    if not first.strict or second.crosses:
        return True
    return first.n_sites == second.n_sites and bool(np.all(first.minima < bound(second.lengths, ltol)))


def lattice_may_map(first: Reduced, second: Reduced, ltol: float, angle_tol: float) -> bool:
    """Rule 4: False only if no basis of ``first``'s lattice maps onto ``second``'s reduced cell.

    Replays ``Lattice.find_all_mappings`` as ``_get_lattices`` uses it with ``fu`` 1 (vectors of
    ``first`` within ``ltol`` of each of ``second``'s lengths, pairwise angles within
    ``angle_tol``, unimodular), on volume-normalised lattices when scaling (the common scale
    factor cancels), with every comparison loosened by a slack: if it finds nothing, ``fit``
    finds no lattice to try and returns False.
    """
    targets = second.abc
    upper = (1 + ltol) * (1 + LENGTH_SLACK)
    vectors, coefficients = first.vectors_within(float(targets.max()) * upper)
    lengths = np.linalg.norm(vectors, axis=1)
    sets = [(lengths < t * upper) & (lengths * upper > t) for t in targets]
    if not all(s.any() for s in sets):
        return False
    directions = vectors / lengths[:, None]

    def angle_ok(u: np.ndarray, v: np.ndarray, target: float) -> np.ndarray:
        cosines = np.clip(directions[u] @ directions[v].T, -1, 1)
        return np.abs(np.degrees(np.arccos(cosines)) - target) <= angle_tol + ANGLE_SLACK

    a, b, c = sets
    alpha, beta, gamma = second.angles
    triples = angle_ok(a, b, gamma)[:, :, None] & angle_ok(a, c, beta)[:, None, :]
    triples &= angle_ok(b, c, alpha)[None]
    i, j, k = np.nonzero(triples)
    if not len(i):
        return False
    bases = np.stack([coefficients[a][i], coefficients[b][j], coefficients[c][k]], axis=1)
    return bool(np.any(np.abs(np.round(np.linalg.det(bases))) == 1))


def bound(lengths: np.ndarray, ltol: float) -> np.ndarray:
    return lengths * (1 + ltol) * (1 + LENGTH_SLACK)


@dataclass
class MatchCounter:
    """Calls ``fit`` on reduced structures and counts the calls, so benchmarks can report them."""

    matcher: StructureMatcher
    calls: int = 0
    screened: int = 0  # pairs that passed rules 1-3 but rule 4 ruled out
    _cache: dict[tuple[int, int], bool] = field(default_factory=dict)

    def fit(self, first: Reduced, second: Reduced) -> bool:
        self.calls += 1
        if isinstance(self.matcher, AlloyMatcher):
            return self.matcher.fit_reduced(first, second)
        return self.matcher.fit(first.structure, second.structure, skip_structure_reduction=True)

    def screened_fit(self, first: Reduced, second: Reduced) -> bool:
        """``fit``, unless rule 4 (``lattice_may_map``) proves it False."""
        tolerances = (self.matcher.ltol, self.matcher.angle_tol)
        if first.strict and not second.crosses and not lattice_may_map(first, second, *tolerances):
            self.screened += 1
            return False
        return self.fit(first, second)

    def cached_fit(self, first_index: int, second_index: int, reduced: Sequence[Reduced]) -> bool:
        pair = (first_index, second_index)
        if pair not in self._cache:
            self._cache[pair] = self.screened_fit(reduced[first_index], reduced[second_index])
        return self._cache[pair]


class LeaderBucket:
    """The leaders of one bucket in walk order, with arrays for vectorised pruning."""

    def __init__(self) -> None:
        self.indices: list[int] = []
        self.n_sites: list[int] = []
        self.strict: list[bool] = []
        self.minima: list[np.ndarray] = []

    def add(self, index: int, reduced: Reduced) -> None:
        self.indices.append(index)
        self.n_sites.append(reduced.n_sites)
        self.strict.append(reduced.strict)
        self.minima.append(reduced.minima)

    def candidates(self, item: Reduced, ltol: float) -> list[int]:
        """Leaders (in walk order) that ``may_fit`` ``item``, i.e. ``fit(leader, item)`` is not ruled out."""
        if not self.indices:
            return []
        if item.crosses:
            return list(self.indices)
        strict = np.array(self.strict)
        lattice_ok = np.all(np.array(self.minima) < bound(item.lengths, ltol), axis=1)
        keep = ~strict | ((np.array(self.n_sites) == item.n_sites) & lattice_ok)
        return [self.indices[i] for i in np.flatnonzero(keep)]


class ReducedPool:
    """Structures (e.g. a reference) bucketed once, to find those ``fit(item, member)`` may accept."""

    def __init__(self, members: Sequence[Reduced], ltol: float) -> None:
        self.members = list(members)
        self.ltol = ltol
        grouped: dict[Hashable, list[int]] = defaultdict(list)
        self.crossing = [i for i, m in enumerate(self.members) if m.crosses]
        for index, member in enumerate(self.members):
            if not member.crosses:
                grouped[member.key].append(index)
        self.buckets = {
            key: (
                np.array(indices),
                np.array([self.members[i].n_sites for i in indices]),
                np.array([self.members[i].lengths for i in indices]).reshape(-1, 3),
            )
            for key, indices in grouped.items()
        }

    def candidates(self, item: Reduced) -> list[int]:
        """Members, in pool order, for which no pruning rule proves ``fit(item, member)`` False."""
        if item.crosses:
            return list(range(len(self.members)))
        kept = list(self.crossing)
        if item.key in self.buckets:
            indices, n_sites, lengths = self.buckets[item.key]
            if item.strict:
                keep = (n_sites == item.n_sites) & np.all(item.minima < bound(lengths, self.ltol), axis=1)
                indices = indices[keep]
            kept += indices.tolist()
        return sorted(kept) if self.crossing else kept

    def first_match(self, item: Reduced, counter: MatchCounter) -> int | None:
        """Index of the first member that ``item`` fits, or None."""
        return next((i for i in self.candidates(item) if counter.screened_fit(item, self.members[i])), None)


def leader_classes(
    reduced: Sequence[Reduced],
    fit: Callable[[int, int], bool],
    order: Sequence[int] | None = None,
    ltol: float = MATCHER_DEFAULTS["ltol"],
) -> dict[int, int]:
    """Map each index in ``order`` (default: all, in order) to the index of its class leader.

    Structures are bucketed by formula, except those that ``crosses`` (partial occupancies under
    ``disordered``), which are compared with every earlier leader, and every later structure with them.
    """
    buckets: dict[Hashable, LeaderBucket] = defaultdict(LeaderBucket)
    cross = LeaderBucket()
    classes: dict[int, int] = {}
    rank: dict[int, int] = {}
    for index in range(len(reduced)) if order is None else order:
        rank[index] = len(rank)
        item = reduced[index]
        pools = [*buckets.values(), cross] if item.crosses else [buckets[item.key], cross]
        candidates = [leader for pool in pools for leader in pool.candidates(item, ltol)]
        if item.crosses or cross.indices:
            candidates.sort(key=rank.__getitem__)  # first leader in walk order wins
        classes[index] = next((leader for leader in candidates if fit(leader, index)), index)
        if classes[index] == index:
            (cross if item.crosses else buckets[item.key]).add(index, item)
    return classes


def group_indices(structures: Sequence[Structure], matcher: StructureMatcher) -> tuple[list[int], int]:
    """Class leader index per structure (the classes of ``group_structures``) and the fit calls made."""
    return group_reduced([reduce_structure(matcher, s) for s in structures], matcher)


def group_reduced(reduced: Sequence[Reduced], matcher: StructureMatcher) -> tuple[list[int], int]:
    """``group_indices`` of structures reduced already."""
    counter = MatchCounter(matcher)
    classes = leader_classes(
        reduced, lambda i, j: counter.screened_fit(reduced[i], reduced[j]), ltol=matcher.ltol
    )
    return [classes[i] for i in range(len(reduced))], counter.calls


def walk_order(ids: Sequence[str], walked_before: Sequence[str] = ()) -> list[int]:
    """Positions of ``ids`` (campaign order) in walk order: ids walked in an earlier run first, in
    their earlier order, then the others in campaign order."""
    position = {identifier: p for p, identifier in enumerate(ids)}
    earlier = [position[i] for i in walked_before if i in position]
    seen = set(earlier)
    return earlier + [p for p in range(len(ids)) if p not in seen]


def shard_of(chemsys: str, shards: int) -> int:
    """Fixed shard of a chemical system: buckets (equal keys) never span two chemical systems."""
    return int.from_bytes(hashlib.sha256(chemsys.encode()).digest()[:8], "big") % shards


def reduced_of(record: dict, matcher: StructureMatcher) -> Reduced | None:
    """A record's ``reduced`` if it has one, else its ``structure`` reduced (None if no structure)."""
    if "reduced" in record:
        return record["reduced"]
    return None if record["structure"] is None else reduce_structure(matcher, record["structure"])


def dedup_table(
    records: Sequence[dict], matcher: StructureMatcher, walked_before: Sequence[str] = ()
) -> tuple[pd.DataFrame, int, list[str]]:
    """Match classes of evaluated structures, per generator and across all; the new walk order.

    ``records`` (``id``, ``generator``, and ``reduced`` from ``run_reduce_job`` or ``structure``;
    None when not evaluated) must be in campaign order (config order, batch index, index in
    batch); the walk follows ``walk_order(ids, walked_before)``. A class is named by its leader's
    id. ``shared`` marks a generator-unique structure whose class across all generators also holds
    a structure of another generator. Rows come in campaign order.
    """
    counter = MatchCounter(matcher)
    pairs = [(r, reduced_of(r, matcher)) for r in records]
    evaluated = [r for r, item in pairs if item is not None]
    reduced = [item for _, item in pairs if item is not None]
    order = walk_order([r["id"] for r in evaluated], walked_before)

    def fit(i: int, j: int) -> bool:
        return counter.cached_fit(i, j, reduced)

    by_generator: dict[str, list[int]] = defaultdict(list)
    for position in order:
        by_generator[evaluated[position]["generator"]].append(position)
    within = {}
    for positions in by_generator.values():
        within.update(leader_classes(reduced, fit, positions, matcher.ltol))
    across = leader_classes(reduced, fit, order, matcher.ltol)
    generators_of_class: dict[int, set[str]] = defaultdict(set)
    for position, leader in across.items():
        generators_of_class[leader].add(evaluated[position]["generator"])
    rows = [
        {
            "id": record["id"],
            "class_generator": evaluated[within[p]]["id"],
            "unique_generator": within[p] == p,
            "class_all": evaluated[across[p]]["id"],
            "unique_all": across[p] == p,
            "shared": within[p] == p and len(generators_of_class[across[p]]) > 1,
        }
        for p, record in enumerate(evaluated)
    ]
    columns = ["id", "class_generator", "unique_generator", "class_all", "unique_all", "shared"]
    return pd.DataFrame(rows, columns=columns), counter.calls, [evaluated[p]["id"] for p in order]


def dedup_shards(matching: dict) -> int:
    """Shard count of dedup: ``matching.shards``, or 1 under ``disordered`` (matches may cross formulas)."""
    options = {**MATCHER_DEFAULTS, "shards": SHARD_DEFAULT, **matching}
    return 1 if options["matcher"] == "disordered" else options["shards"]


def run_reduce_job(relaxed_path: str, output_path: str, matching: dict) -> None:
    """Reduce every structure of a relaxed batch once, for dedup and novelty alike: a pickle of
    records (``id``, ``generator``, ``reduced``: a ``Reduced`` or None) and the matcher settings."""
    matcher = build_matcher(matching)
    records = [
        {
            "id": record["id"],
            "generator": record.get("generator"),
            "reduced": reduced_of(record, matcher),
        }
        for record in io.read_records(relaxed_path)
    ]
    with io.atomic_path(output_path) as tmp, open(tmp, "wb") as handle:
        pickle.dump(
            {"matcher": matcher_settings(matcher), "records": records}, handle, pickle.HIGHEST_PROTOCOL
        )


def read_reduced_batch(path: str | Path, matcher: StructureMatcher) -> list[dict]:
    """Records of a ``run_reduce_job`` file; refuses one made with other matcher settings."""
    with open(path, "rb") as handle:
        payload = pickle.load(handle)
    if payload["matcher"] != matcher_settings(matcher):
        raise ValueError(f"{path} was reduced with another matcher: {payload['matcher']}")
    return payload["records"]


def shard_records(
    reduced_paths: Sequence[str], matcher: StructureMatcher, shard: int, shards: int
) -> list[dict]:
    """Evaluated records of one shard, in campaign order, each with its campaign ``position``."""
    records, position = [], 0
    for path in reduced_paths:
        for record in read_reduced_batch(path, matcher):
            if record["reduced"] is None:
                continue
            if shard_of(record["reduced"].chemsys, shards) == shard:
                records.append({**record, "position": position})
            position += 1
    return records


def read_walk_order(path: str | Path) -> list[str]:
    """Ids in the order an earlier dedup walked them (empty for a fresh campaign)."""
    path = Path(path)
    return path.read_text().split("\n")[:-1] if path.exists() else []


def run_dedup_shard_job(
    reduced_paths: Sequence[str], output_path: str, matching: dict, shard: int, walk_order_path: str
) -> None:
    """Classes of the structures whose chemical system hashes to ``shard``: exact, since buckets
    (equal composition hashes) never span two chemical systems."""
    matcher = build_matcher(matching)
    records = shard_records(reduced_paths, matcher, shard, dedup_shards(matching))
    table, calls, _ = dedup_table(records, matcher, read_walk_order(walk_order_path))
    table.insert(1, "position", [r["position"] for r in records])
    io.write_table(output_path, table, {"matcher": matcher_settings(matcher), "fit_calls": calls})


def run_dedup_merge_job(shard_paths: Sequence[str], output_path: str, walk_order_path: str) -> None:
    """All shards in campaign order; records the walk order so later runs keep every class id."""
    shards = [io.read_table(path) for path in shard_paths]
    frames = [t for t, _ in shards if len(t)] or [shards[0][0]]  # empty shards carry no dtypes
    table = pd.concat(frames, ignore_index=True).sort_values("position")
    ids = table["id"].tolist()
    walk = [ids[p] for p in walk_order(ids, read_walk_order(walk_order_path))]
    settings = {
        "matcher": shards[0][1]["matcher"],
        "fit_calls": sum(s["fit_calls"] for _, s in shards),
        "shards": len(shards),
    }
    io.write_table(output_path, table.drop(columns="position").reset_index(drop=True), settings)
    with io.atomic_path(walk_order_path) as tmp:
        tmp.write_text("".join(f"{i}\n" for i in walk))
