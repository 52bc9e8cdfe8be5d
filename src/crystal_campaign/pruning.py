"""What matching computes once per structure (``Reduced``), and the rules that skip ``fit`` calls.

``fit(a, b)`` (``a`` the candidate, ``b`` an earlier class leader in dedup or a reference structure
in novelty: MatterGen's argument order) is skipped only when one of
these rules proves it False under the matcher's options (``crystal_campaign.matching``):

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

from collections import defaultdict
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
from pymatgen.core import Lattice, Structure

LENGTH_SLACK = 1e-6  # relative; far above float rounding of lengths, far below any tolerance
ANGLE_SLACK = 1e-4  # degrees; above the rounding of arccos near 0 and 180 degrees


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
        return build_structure(self.lattice, self.species, self.frac_coords)

    @cached_property
    def alloy(self) -> Structure | None:
        return None if self.alloy_data is None else build_structure(*self.alloy_data)

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


def build_structure(lattice: np.ndarray, species: list, frac_coords: np.ndarray) -> Structure:
    return Structure(Lattice(lattice), species, frac_coords)


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


def strict_survivors(item: Reduced, n_sites: np.ndarray, lengths: np.ndarray, ltol: float) -> np.ndarray:
    """Rules 2 and 3 for a strict ``item`` against second structures of its bucket (their site
    counts and reduced lengths, one row each): a mask of those ``fit(item, second)`` may accept."""
    return (n_sites == item.n_sites) & np.all(item.minima < bound(lengths, ltol), axis=1)


class LeaderBucket:
    """The leaders of one bucket in walk order, with arrays for vectorised pruning. A bucket of
    leaders that may match across formulas (``prunes`` False) is never pruned (rules 2-4 need an
    ordered second structure)."""

    def __init__(self, prunes: bool = True) -> None:
        self.prunes = prunes
        self.indices: list[int] = []
        self.n_sites: list[int] = []
        self.lengths: list[np.ndarray] = []

    def add(self, index: int, reduced: Reduced) -> None:
        self.indices.append(index)
        self.n_sites.append(reduced.n_sites)
        self.lengths.append(reduced.lengths)

    def candidates(self, item: Reduced, ltol: float) -> list[int]:
        """Leaders (in walk order) that ``item`` ``may_fit``, i.e. ``fit(item, leader)`` is not ruled out."""
        if not (self.prunes and item.strict):
            return list(self.indices)
        keep = strict_survivors(item, np.array(self.n_sites), np.array(self.lengths).reshape(-1, 3), ltol)
        return [self.indices[i] for i in np.flatnonzero(keep)]


class PairFit(Protocol):
    def screened_fit(self, first: Reduced, second: Reduced) -> bool:
        """``fit(first, second)`` unless a rule proves it False (``matching.MatchCounter``)."""


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
                indices = indices[strict_survivors(item, n_sites, lengths, self.ltol)]
            kept += indices.tolist()
        return sorted(kept) if self.crossing else kept

    def first_match(self, item: Reduced, counter: PairFit) -> int | None:
        """Index of the first member that ``item`` fits, or None."""
        return next(self.matches(item, counter), None)

    def matches(self, item: Reduced, counter: PairFit) -> Iterator[int]:
        """Indices of the members that ``item`` fits, in pool order, found as they are asked for."""
        return (i for i in self.candidates(item) if counter.screened_fit(item, self.members[i]))
