"""Checks of the embedded known-crystal reference against literature numbers (real pymatgen)."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from crystal_campaign.known_crystals import KnownCrystal, known_crystals

# Literature densities in g/cm3; measured bulk values unless marked as X-ray (cell) densities.
LITERATURE_DENSITY: dict[str, float] = {
    "Na bcc": 0.968,  # measured, 20 C
    "Cl2 solid": 2.04,  # X-ray density of Collin's 113 K cell, Z = 4 Cl2
    "Mg hcp": 1.738,  # measured, 20 C
    "alpha-O2": 1.530,  # X-ray density reported by Barrett, Meyer & Wasserman (1967)
    "alpha-Ti hcp": 4.506,  # measured, 20 C
    "NaCl rock salt": 2.165,  # halite, measured
    "MgO rock salt (periclase)": 3.58,  # periclase, measured
    "TiO2 rutile": 4.25,  # measured
    "TiO2 anatase": 3.89,  # measured
    "TiO2 brookite": 4.12,  # measured
    "Ti2O3 corundum-type": 4.486,  # measured (CRC Handbook)
}

# Gas-phase bond lengths (A) of the molecules in the molecular solids.
GAS_PHASE_BOND: dict[str, float] = {"alpha-O2": 1.21, "Cl2 solid": 1.99}

REQUIRED_SYSTEMS = {"Na", "Cl", "Mg", "O", "Ti", "Cl-Na", "Mg-O", "O-Ti"}

CRYSTALS = known_crystals()
BY_LABEL = {crystal.label: crystal for crystal in CRYSTALS}


def _min_distance(structure: Structure) -> float:
    distances = structure.distance_matrix.copy()
    np.fill_diagonal(distances, np.inf)
    shortest_lattice_vector = min(structure.lattice.abc)  # self-image distance
    return float(min(distances.min(), shortest_lattice_vector))


@pytest.mark.parametrize("crystal", CRYSTALS, ids=lambda c: c.label)
def test_space_group_is_recovered(crystal: KnownCrystal) -> None:
    found = SpacegroupAnalyzer(crystal.structure, symprec=0.1).get_space_group_symbol()
    assert found == crystal.space_group


@pytest.mark.parametrize("crystal", CRYSTALS, ids=lambda c: c.label)
def test_minimum_distance_is_physical(crystal: KnownCrystal) -> None:
    assert _min_distance(crystal.structure) > 0.9


@pytest.mark.parametrize(("label", "bond"), sorted(GAS_PHASE_BOND.items()))
def test_molecular_bond_length(label: str, bond: float) -> None:
    assert abs(_min_distance(BY_LABEL[label].structure) - bond) <= 0.1


@pytest.mark.parametrize("crystal", CRYSTALS, ids=lambda c: c.label)
def test_density_matches_literature(crystal: KnownCrystal) -> None:
    expected = LITERATURE_DENSITY[crystal.label]
    assert crystal.structure.density == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("crystal", CRYSTALS, ids=lambda c: c.label)
def test_structure_is_ordered(crystal: KnownCrystal) -> None:
    assert crystal.structure.is_ordered


def test_every_entry_has_a_stated_literature_density() -> None:
    assert set(BY_LABEL) == set(LITERATURE_DENSITY)
    assert len(BY_LABEL) == len(CRYSTALS)  # labels are unique


def test_covers_campaign_elements_and_binaries() -> None:
    systems = {crystal.structure.composition.chemical_system for crystal in CRYSTALS}
    assert systems >= REQUIRED_SYSTEMS


def test_built_fresh_in_fixed_order() -> None:
    first, second = known_crystals(), known_crystals()
    assert [c.label for c in first] == [c.label for c in second]
    assert all(a.structure is not b.structure for a, b in zip(first, second, strict=True))
    assert all(a.structure == b.structure for a, b in zip(first, second, strict=True))


def test_imported_rock_salt_nacl_is_in_the_reference() -> None:
    # A primitive rock-salt cell with a DFT-like (PBE, ~1 % too large) lattice constant.
    a = 5.69
    primitive = Structure(
        Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]]),
        ["Na", "Cl"],
        [[0, 0, 0], [0.5, 0.5, 0.5]],
    )
    matcher = StructureMatcher()
    matches = [c.label for c in CRYSTALS if matcher.fit(primitive, c.structure)]
    assert matches == ["NaCl rock salt"]
