"""Exact structure matching: the classes of pymatgen's ``group_structures``, with fewer ``fit`` calls.

``group_structures`` pops the first unmatched structure of a formula bucket as a class leader and
puts every later structure that fits it in its class. Walking structures in order and giving
each to the first earlier leader it fits (or making it a leader) yields exactly those classes:
a structure that fits no earlier leader is the first unmatched one once those leaders are done.

Pruning, each provably never hiding a match under this module's matcher options
(``attempt_supercell=False``, ``allow_subset=False``):
- different comparator hash (reduced formula): ``fit`` returns False before any work;
- different site counts of the reduced (primitive, Niggli) cells: ``fu`` is 1 without
  supercells, and ``_strict_match`` returns None when the two site counts differ.
Reduced structures are computed once per structure, as ``group_structures`` does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import pandas as pd
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from crystal_campaign import io

MATCHER_DEFAULTS = {"ltol": 0.2, "stol": 0.3, "angle_tol": 5.0, "primitive_cell": True, "scale": True}


def build_matcher(settings: dict | None = None) -> StructureMatcher:
    options = {**MATCHER_DEFAULTS, **(settings or {})}
    return StructureMatcher(**options, attempt_supercell=False, allow_subset=False)


def matcher_settings(matcher: StructureMatcher) -> dict:
    """The options that define a matcher, for recording beside every result it produced."""
    return {
        "ltol": matcher.ltol,
        "stol": matcher.stol,
        "angle_tol": matcher.angle_tol,
        "primitive_cell": matcher._primitive_cell,
        "scale": matcher._scale,
        "attempt_supercell": matcher._supercell,
        "allow_subset": matcher._subset,
        "comparator": type(matcher._comparator).__name__,
    }


@dataclass
class Reduced:
    """A structure prepared once for many ``fit`` calls, with the key that buckets it."""

    structure: Structure
    key: Hashable


def reduce_structure(matcher: StructureMatcher, structure: Structure) -> Reduced:
    processed = matcher._process_species([structure])[0]
    reduced = matcher._get_reduced_structure(processed, matcher._primitive_cell, niggli=True)
    return Reduced(reduced, (matcher._comparator.get_hash(processed.composition), len(reduced)))


@dataclass
class MatchCounter:
    """Wraps ``fit`` on reduced structures; counts calls so benchmarks can report them."""

    matcher: StructureMatcher
    calls: int = 0
    _cache: dict[tuple[int, int], bool] = field(default_factory=dict)

    def fit(self, first: Reduced, second: Reduced) -> bool:
        self.calls += 1
        return self.matcher.fit(first.structure, second.structure, skip_structure_reduction=True)

    def cached_fit(self, first_index: int, second_index: int, reduced: Sequence[Reduced]) -> bool:
        pair = (first_index, second_index)
        if pair not in self._cache:
            self._cache[pair] = self.fit(reduced[first_index], reduced[second_index])
        return self._cache[pair]


def leader_classes(
    reduced: Sequence[Reduced], fit: Callable[[int, int], bool], order: Sequence[int] | None = None
) -> dict[int, int]:
    """Map each index in ``order`` (default: all, in order) to the index of its class leader."""
    leaders: dict[Hashable, list[int]] = defaultdict(list)
    classes = {}
    for index in range(len(reduced)) if order is None else order:
        candidates = leaders[reduced[index].key]
        classes[index] = next((leader for leader in candidates if fit(leader, index)), index)
        if classes[index] == index:
            candidates.append(index)
    return classes


def group_indices(structures: Sequence[Structure], matcher: StructureMatcher) -> tuple[list[int], int]:
    """Class leader index per structure (the classes of ``group_structures``) and the fit calls made."""
    counter = MatchCounter(matcher)
    reduced = [reduce_structure(matcher, s) for s in structures]
    classes = leader_classes(reduced, lambda i, j: counter.fit(reduced[i], reduced[j]))
    return [classes[i] for i in range(len(structures))], counter.calls


def matches_any(candidate: Reduced, references: Sequence[Reduced], counter: MatchCounter) -> int | None:
    """Index of the first reference the candidate fits, or None; only same-key references are tried."""
    return next(
        (i for i, ref in enumerate(references) if ref.key == candidate.key and counter.fit(candidate, ref)),
        None,
    )


def dedup_table(records: Sequence[dict], matcher: StructureMatcher) -> tuple[pd.DataFrame, int]:
    """Match classes of evaluated structures, per generator and across all, in the given order.

    ``records`` must be in campaign order (config order, batch index, index in batch). A class
    is named by its leader's id. ``shared`` marks a generator-unique structure whose class across
    all generators also holds a structure of another generator.
    """
    counter = MatchCounter(matcher)
    evaluated = [r for r in records if r["structure"] is not None]
    reduced = [reduce_structure(matcher, r["structure"]) for r in evaluated]

    def fit(i: int, j: int) -> bool:
        return counter.cached_fit(i, j, reduced)

    by_generator: dict[str, list[int]] = defaultdict(list)
    for position, record in enumerate(evaluated):
        by_generator[record["generator"]].append(position)
    within = {}
    for positions in by_generator.values():
        within.update(leader_classes(reduced, fit, positions))
    across = leader_classes(reduced, fit)
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
    return pd.DataFrame(rows, columns=columns), counter.calls


def run_dedup_job(relaxed_paths: Sequence[str], output_path: str, matching: dict) -> None:
    matcher = build_matcher(matching)
    records = [record for path in relaxed_paths for record in io.read_records(path)]
    table, calls = dedup_table(records, matcher)
    io.write_table(output_path, table, {"matcher": matcher_settings(matcher), "fit_calls": calls})
