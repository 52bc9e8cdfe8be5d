"""Random structure search baseline: pyxtal random symmetric crystals.

Each requested structure draws a target (a chemical system or a formula), a composition of it
with ``min_atoms``..``max_atoms`` atoms per cell, and a space group compatible with those
counts, then asks pyxtal for a crystal; a failed draw is retried up to ``max_attempts`` times
and counted in the batch stats.
"""

from __future__ import annotations

import functools
import itertools
import warnings
from typing import ClassVar

import numpy as np
from pymatgen.core import Composition

from crystal_campaign.checks import element_problems
from crystal_campaign.generators.base import BatchOutput, GeneratorBackend, Sample
from crystal_campaign.io import Progress
from crystal_campaign.materials_project import chemsys_of, formula_systems

SPACE_GROUPS = range(1, 231)


def system_compositions(system: str, min_atoms: int, max_atoms: int) -> list[Composition]:
    """Every composition of all elements of ``system`` with a total of min..max atoms."""
    elements = system.split("-")
    counts = itertools.product(range(1, max_atoms + 1), repeat=len(elements))
    return [
        Composition(dict(zip(elements, combo, strict=True)))
        for combo in counts
        if min_atoms <= sum(combo) <= max_atoms
    ]


def formula_compositions(formula: str, min_atoms: int, max_atoms: int) -> list[Composition]:
    """Whole multiples of a formula's reduced composition with min..max atoms."""
    reduced = Composition(formula).reduced_composition
    return [reduced * n for n in range(1, max_atoms + 1) if min_atoms <= reduced.num_atoms * n <= max_atoms]


def composition_pools(settings: dict) -> list[list[Composition]]:
    """One pool of candidate compositions per configured system or formula (empty pools dropped)."""
    low, high = settings["min_atoms"], settings["max_atoms"]
    pools = [system_compositions(s, low, high) for s in settings.get("chemical_systems", [])]
    pools += [formula_compositions(f, low, high) for f in settings.get("compositions", [])]
    if settings["charge_balanced"]:
        from crystal_campaign.validity import compositional_validity  # SMACT: only where it is used

        pools = [[c for c in pool if compositional_validity(c)[0]] for pool in pools]
    return [pool for pool in pools if pool]


@functools.lru_cache(maxsize=100_000)
def _compatible(space_group: int, counts: tuple[int, ...]) -> bool:
    from pyxtal.symmetry import Group

    return bool(Group(space_group).check_compatible(list(counts))[0])


def compatible_space_groups(composition: Composition) -> list[int]:
    counts = tuple(int(n) for n in composition.values())
    return [sg for sg in SPACE_GROUPS if _compatible(sg, counts)]


def _draw_structure(pools: list[list[Composition]], settings: dict, rng: np.random.Generator):
    from pyxtal import pyxtal

    pool = pools[rng.integers(len(pools))]
    composition = pool[rng.integers(len(pool))]
    groups = compatible_space_groups(composition)
    if not groups:
        raise ValueError(f"no space group compatible with {composition.formula}")
    space_group = int(groups[rng.integers(len(groups))])
    crystal = pyxtal()
    crystal.from_random(
        3,
        space_group,
        [str(e) for e in composition],
        [int(n) for n in composition.values()],
        factor=settings["volume_factor"],
        random_state=rng,
    )
    if not crystal.valid:
        raise ValueError(f"pyxtal found no valid {composition.formula} in space group {space_group}")
    return crystal.to_pymatgen(), f"{composition.formula} sg{space_group}"


class RandomSearchBackend(GeneratorBackend):
    settings_schema: ClassVar[dict] = {
        "required": ["n_batches", "batch_size"],
        "properties": {
            "n_batches": {"type": "integer", "minimum": 0},
            "chemical_systems": {
                "type": "array",
                "items": {"$ref": "#/$defs/chemical_system"},
                "description": "element symbols joined by '-', e.g. Na-Cl",
            },
            "compositions": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "description": "formulas such as NaCl or TiO2; scaled to whole cells within min/max_atoms",
            },
            "min_atoms": {"type": "integer", "minimum": 1, "default": 4},
            "max_atoms": {"type": "integer", "minimum": 1, "maximum": 200, "default": 12},
            "charge_balanced": {"type": "boolean", "default": True},
            "max_attempts": {"type": "integer", "minimum": 1, "default": 20},
            "volume_factor": {"type": "number", "exclusiveMinimum": 0, "default": 1.1},
        },
    }
    versioned_packages = ("pyxtal", "smact")

    def config_problems(self, where: str, settings: dict) -> list[str]:
        problems = []
        if not settings.get("chemical_systems") and not settings.get("compositions"):
            problems.append(
                f"{where}: needs chemical_systems or compositions; allowed: lists such as [Na-Cl]"
            )
        for system in settings.get("chemical_systems", []):
            problems += element_problems(f"{where}.chemical_systems", system.split("-"))
        if settings["min_atoms"] > settings["max_atoms"]:
            problems.append(
                f"{where}.min_atoms: {settings['min_atoms']} is not allowed; "
                f"allowed: <= max_atoms ({settings['max_atoms']})"
            )
        return problems

    def target_systems(self, settings: dict) -> set[str]:
        systems = {chemsys_of(system.split("-")) for system in settings.get("chemical_systems") or []}
        return systems | formula_systems(settings.get("compositions") or [])

    def sample_batch(self, settings: dict, batch: int, seed: int) -> BatchOutput:
        rng = np.random.default_rng(seed)
        pools = composition_pools(settings)
        samples, failed_draws = [], 0
        progress = Progress("sampled structures", settings["batch_size"])
        for _ in range(settings["batch_size"]):
            sample = Sample(None, "no compositions within min_atoms..max_atoms for the configured targets")
            for attempt in range(settings["max_attempts"] if pools else 0):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        structure, source = _draw_structure(pools, settings, rng)
                    sample = Sample(structure, None, source)
                    break
                except Exception as error:  # pyxtal raises many kinds; each is one failed draw
                    failed_draws += 1
                    sample = Sample(None, f"no structure after {attempt + 1} draws; last: {error}")
            samples.append(sample)
            progress.advance(detail=f"{failed_draws} failed draws")
        return BatchOutput(samples, {"failed_draws": failed_draws, "n_composition_pools": len(pools)})


BACKEND = RandomSearchBackend()
