from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.core.operations import SymmOp

from conftest import rock_salt
from crystal_campaign.matching import build_matcher, dedup_table, group_indices

MATCHER = build_matcher()


def rutile() -> Structure:
    return Structure.from_spacegroup(
        "P4_2/mnm", Lattice.tetragonal(4.594, 2.959), ["Ti", "O"], [[0, 0, 0], [0.3048, 0.3048, 0]]
    )


def anatase() -> Structure:
    return Structure.from_spacegroup(
        "I4_1/amd", Lattice.tetragonal(3.785, 9.514), ["Ti", "O"], [[0, 0.75, 0.125], [0, 0.75, 0.33306]]
    )


def caesium_chloride_type_nacl() -> Structure:
    return Structure(Lattice.cubic(3.3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def rotated(structure: Structure) -> Structure:
    rotation = SymmOp.from_axis_angle_and_translation([1, 2, 3], 37.0).rotation_matrix
    return Structure(Lattice(structure.lattice.matrix @ rotation.T), structure.species, structure.frac_coords)


def permuted(structure: Structure) -> Structure:
    order = np.random.default_rng(0).permutation(len(structure))
    return Structure(structure.lattice, [structure.species[i] for i in order], structure.frac_coords[order])


def strained(structure: Structure, strain: float = 0.02) -> Structure:
    copy = structure.copy()
    copy.apply_strain([strain, -strain / 2, 0])
    return copy


@pytest.mark.parametrize("variant", [rotated, permuted, strained, lambda s: s * (1, 2, 1)])
def test_duplicates_match(variant):
    for structure in (rock_salt(), rutile()):
        assert MATCHER.fit(structure, variant(structure))
        assert group_indices([structure, variant(structure)], MATCHER)[0] == [0, 0]


def test_distinct_polymorphs_do_not_match():
    assert group_indices([rutile(), anatase()], MATCHER)[0] == [0, 1]
    assert group_indices([rock_salt(), caesium_chloride_type_nacl()], MATCHER)[0] == [0, 1]


def test_classes_equal_group_structures_with_fewer_fit_calls():
    base = [
        rock_salt(),
        rutile(),
        anatase(),
        caesium_chloride_type_nacl(),
        rock_salt(a=4.2, species=("Mg", "O")),
    ]
    structures = []
    for index, structure in enumerate(base * 3):
        structures.append(
            [structure, rotated, permuted, strained][index % 4](structure) if index % 4 else structure
        )
    structures += [s * (2, 1, 1) for s in base]
    order = np.random.default_rng(1).permutation(len(structures))
    structures = [structures[i] for i in order]
    leaders, calls = group_indices(structures, MATCHER)
    position = {id(s): i for i, s in enumerate(structures)}
    expected = [0] * len(structures)
    for group in MATCHER.group_structures(structures):
        for member in group:
            expected[position[id(member)]] = position[id(group[0])]
    assert leaders == expected
    assert len(set(leaders)) == len(base)
    assert calls < len(structures) * (len(structures) - 1) // 2


def test_dedup_per_generator_and_across_generators():
    def record(generator: str, index: int, structure: Structure | None) -> dict:
        return {"id": f"{generator}-{index}", "generator": generator, "structure": structure}

    records = [
        record("a", 0, rutile()),
        record("a", 1, rotated(rutile())),
        record("a", 2, anatase()),
        record("b", 0, strained(anatase())),
        record("b", 1, None),  # a failed structure is not evaluated
        record("b", 2, rock_salt()),
        record("b", 3, permuted(rock_salt())),
    ]
    table, calls = dedup_table(records, MATCHER)
    rows = table.set_index("id")
    assert list(rows.index) == ["a-0", "a-1", "a-2", "b-0", "b-2", "b-3"]
    assert rows["class_generator"].to_dict() == {
        "a-0": "a-0",
        "a-1": "a-0",
        "a-2": "a-2",
        "b-0": "b-0",
        "b-2": "b-2",
        "b-3": "b-2",
    }
    assert rows["class_all"].to_dict()["b-0"] == "a-2"
    assert rows.loc[["a-0", "a-2", "b-0", "b-2"], "unique_generator"].all()
    assert rows["unique_all"].sum() == 3
    assert rows["shared"].to_dict() == {
        "a-0": False,
        "a-1": False,
        "a-2": True,
        "b-0": True,
        "b-2": False,
        "b-3": False,
    }
    assert calls > 0
