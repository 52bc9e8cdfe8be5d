"""Matcher semantics: pymatgen's ``StructureMatcher`` (``ordered``, MatterGen's "ordered") and
MatterGen's ``disordered`` matching (``AlloyMatcher``), structures reduced once for many ``fit``
calls, and the reduce job whose output dedup and novelty both read.

The pruning rules that skip ``fit`` calls are in ``crystal_campaign.pruning``; the class walk of
dedup in ``crystal_campaign.dedup``; novelty against a reference in ``crystal_campaign.novelty``.
"""

from __future__ import annotations

import hashlib
import itertools
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pymatgen.analysis.structure_matcher import OrderDisorderElementComparator, StructureMatcher
from pymatgen.core import Composition, Element, Structure

from crystal_campaign import chunks, io
from crystal_campaign.pruning import Reduced, build_structure, lattice_may_map, successive_minima
from crystal_campaign.schema import section_defaults

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


def matcher_defaults() -> dict:
    """The ``matching`` section's defaults that define a matcher (the shard count does not)."""
    return {key: value for key, value in section_defaults("matching").items() if key != "shards"}


def build_matcher(settings: dict | None = None) -> StructureMatcher:
    """``ordered``: pymatgen's defaults (mattergen's "ordered"); ``disordered``: ``AlloyMatcher``."""
    options = {**matcher_defaults(), **(settings or {})}
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
    return {key: settings[key] for key in matcher_defaults()}


def settings_key(matcher: StructureMatcher) -> str:
    """Short digest of ``matcher_settings``, to key caches of reduced structures."""
    text = repr(sorted(matcher_settings(matcher).items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _species_of(structure: Structure) -> list:
    return [
        str(site.specie) if site.is_ordered else {str(sp): occ for sp, occ in site.species.items()}
        for site in structure
    ]


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
    result.__dict__["structure"] = build_structure(*packed)
    return result


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


def reduced_of(record: dict, matcher: StructureMatcher) -> Reduced | None:
    """A record's ``reduced`` if it has one, else its ``structure`` reduced (None if no structure)."""
    if "reduced" in record:
        return record["reduced"]
    return None if record["structure"] is None else reduce_structure(matcher, record["structure"])


def run_reduce_job(relaxed_manifest: str, output_path: str, matching: dict) -> None:
    """Reduce every structure of a relaxed chunk once, for dedup and novelty alike: a pickle of the
    matcher settings and the chunk's batches, each with its relaxed file's path and mark (so dedup
    knows a batch it walked before) and its records (``id``, ``generator``, ``reduced``: a
    ``Reduced`` or None)."""
    matcher = build_matcher(matching)
    batches = [
        {
            "path": path,
            "mark": chunks.file_mark(path),
            "records": [
                {
                    "id": record["id"],
                    "generator": record.get("generator"),
                    "reduced": reduced_of(record, matcher),
                }
                for record in io.read_records(path)
            ],
        }
        for path in chunks.manifest_paths(relaxed_manifest)
    ]
    with io.atomic_path(output_path) as tmp, open(tmp, "wb") as handle:
        pickle.dump(
            {"matcher": matcher_settings(matcher), "batches": batches}, handle, pickle.HIGHEST_PROTOCOL
        )


def read_reduced_batches(path: str | Path, matcher: StructureMatcher) -> list[dict]:
    """The batches of a ``run_reduce_job`` file (``path``, ``mark``, ``records``); refuses one made
    with other matcher settings."""
    with open(path, "rb") as handle:
        payload = pickle.load(handle)
    if payload["matcher"] != matcher_settings(matcher):
        raise ValueError(f"{path} was reduced with another matcher: {payload['matcher']}")
    return payload["batches"]


def read_reduced(path: str | Path, matcher: StructureMatcher) -> list[dict]:
    """The records of a ``run_reduce_job`` file, every batch's in order."""
    return [record for batch in read_reduced_batches(path, matcher) for record in batch["records"]]
