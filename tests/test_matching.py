from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from conftest import alloy, rock_salt, rotated, strained_alloy_pair, write_chunk
from crystal_campaign import chunks, io
from crystal_campaign.dedup import dedup_table, group_indices, run_dedup_merge_job, run_dedup_shard_job
from crystal_campaign.matching import (
    AlloyMatcher,
    MatchCounter,
    build_matcher,
    read_reduced,
    reduce_structure,
    run_reduce_job,
)
from crystal_campaign.novelty import ReferenceIndex, cached_reduced_reference, load_reduced
from crystal_campaign.pruning import lattice_may_map, may_fit, successive_minima

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


def test_classes_equal_mattergens_walk_with_fewer_fit_calls():
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
    assert leaders == mattergen_walk_leaders(structures, MATCHER)
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
    table, calls, walk = dedup_table(records, MATCHER)
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
    assert walk == list(rows.index)  # a fresh campaign is walked in campaign order


def mattergen_walk_leaders(structures: list[Structure], matcher) -> list[int]:
    """Leader index per structure by MatterGen's ``get_unique``: a structure joins the first earlier
    unique structure ``u`` with ``matcher.fit(structure, u)``, every pair fitted from scratch (the
    reference answer)."""
    leaders: list[int] = []
    for index, structure in enumerate(structures):
        unique = sorted(set(leaders))
        leaders.append(next((u for u in unique if matcher.fit(structure, structures[u])), index))
    return leaders


def random_crystal(rng: np.random.Generator, species: list[str]) -> Structure:
    """A P1 crystal of about 12 A^3 per atom, no two atoms closer than 1.6 A."""
    while True:
        lattice = Lattice.from_parameters(*rng.uniform(0.8, 1.25, 3), *rng.uniform(75, 105, 3))
        structure = Structure(lattice.scale(12.0 * len(species)), species, rng.random((len(species), 3)))
        distances = structure.distance_matrix[np.triu_indices(len(species), 1)]
        if distances.min() > 1.6:
            return structure


def prototypes(rng: np.random.Generator) -> dict[str, list[Structure]]:
    """Distinct parents per formula bucket: symmetric prototypes with random parameters plus P1 crystals."""
    jitter = lambda: rng.uniform(0.9, 1.1)  # noqa: E731
    rutile_like = Structure.from_spacegroup(
        "P4_2/mnm",
        Lattice.tetragonal(4.6 * jitter(), 2.96 * jitter()),
        ["Ti", "O"],
        [[0, 0, 0], [0.3, 0.3, 0]],
    )
    perovskite = Structure(
        Lattice.cubic(3.9),
        ["Sr", "Ti", "O", "O", "O"],
        [[0, 0, 0], [0.5] * 3, [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )
    buckets = {
        "TiO2": [rutile_like, anatase()]
        + [random_crystal(rng, ["Ti", "O", "O"] * k) for k in (1, 1, 1, 2, 2, 2, 2)],
        "NaCl": [rock_salt(5.6 * jitter()), caesium_chloride_type_nacl()]
        + [random_crystal(rng, ["Na", "Cl"] * k) for k in (1, 1, 2, 2, 2, 2)],
        "SrTiO3": [perovskite, strained(perovskite, 0.04)]
        + [random_crystal(rng, ["Sr", "Ti", "O", "O", "O"]) for _ in range(6)],
        "CaF2": [
            Structure.from_spacegroup(
                "Fm-3m", Lattice.cubic(5.46 * jitter()), ["Ca", "F"], [[0, 0, 0], [0.25] * 3]
            )
        ]
        + [random_crystal(rng, ["Ca", "F", "F"] * k) for k in (1, 1, 1, 2, 2, 2)],
    }
    return buckets


def near_tolerance(structure: Structure, rng: np.random.Generator, factor: float) -> Structure:
    """Distorted by ``factor`` times a tolerance: one length (after volume normalisation, ltol),
    one angle (angle_tol) or one site (stol, in units of (V/n)^(1/3))."""
    kind = rng.integers(3)
    copy = structure.copy()
    if kind == 0:
        axis = rng.integers(3)
        strain = np.zeros(3)
        strain[axis] = (1 + factor * MATCHER.ltol) ** 1.5 - 1  # normalised length ratio 1 + factor*ltol
        copy.apply_strain(strain)
    elif kind == 1:
        a, b, c, alpha, beta, gamma = copy.lattice.parameters
        angles = np.array([alpha, beta, gamma])
        angles[rng.integers(3)] += rng.choice([-1, 1]) * factor * MATCHER.angle_tol
        sheared = Lattice.from_parameters(a, b, c, *angles)
        copy = Structure(sheared, [site.species for site in copy], copy.frac_coords)
    else:
        step = rng.normal(size=3)
        step *= factor * MATCHER.stol * (copy.volume / len(copy)) ** (1 / 3) / np.linalg.norm(step)
        copy.translate_sites([int(rng.integers(len(copy)))], step, frac_coords=False)
    return copy


def differential_input(n: int, seed: int) -> list[Structure]:
    """``n`` structures: parents, duplicates within tolerance, and distortions at 0.8-1.2x a tolerance."""
    rng = np.random.default_rng(seed)
    parents = [s for bucket in prototypes(rng).values() for s in bucket]
    structures = list(parents)
    while len(structures) < n:
        parent = parents[rng.integers(len(parents))]
        roll = rng.random()
        if roll < 0.3:
            variant = near_tolerance(parent, rng, rng.uniform(0.8, 1.2))
        else:
            variant = near_tolerance(parent, rng, rng.uniform(0.0, 0.5))
        variant = [rotated, permuted, lambda s: s, lambda s: s * (1, 1, 2)][rng.integers(4)](variant)
        structures.append(variant)
    return [structures[i] for i in rng.permutation(len(structures))]


@pytest.mark.parametrize("seed", [0])
def test_differential_2k_structures_equal_mattergens_walk_class_for_class(seed):
    structures = differential_input(2000, seed)
    leaders, calls = group_indices(structures, MATCHER)
    assert leaders == mattergen_walk_leaders(structures, MATCHER)
    n_classes = len(set(leaders))
    assert 60 < n_classes < 1000  # near-tolerance distortions make classes of their own, not all
    assert calls < 0.2 * n_classes * len(structures)  # unpruned: about n_classes * n / n_buckets


def test_pruning_rules_only_rule_out_pairs_that_do_not_fit():
    """Every pair (both orders) of a near-tolerance sample: a pruned pair never fits."""
    structures = differential_input(150, 3)
    reduced = [reduce_structure(MATCHER, s) for s in structures]
    pruned = fitting = 0
    for i, j in itertools.permutations(range(len(reduced)), 2):
        first, second = reduced[i], reduced[j]
        if first.key != second.key:
            continue
        ruled_out = not may_fit(first, second, MATCHER.ltol) or not lattice_may_map(
            first, second, MATCHER.ltol, MATCHER.angle_tol
        )
        fits = MATCHER.fit(first.structure, second.structure, skip_structure_reduction=True)
        assert not (ruled_out and fits), (i, j)
        pruned += ruled_out
        fitting += fits
    assert pruned > 1000 and fitting > 100  # the rules did prune, and the sample has matches


def test_successive_minima_of_a_skewed_basis():
    lattice = Lattice([[1, 0, 0], [7, 1, 0], [3, 5, 1]])  # the cubic lattice in a bad basis
    assert np.allclose(successive_minima(lattice), [1, 1, 1])
    # a + b (length sqrt 13) is shorter than b: the minima need not be basis vectors
    assert np.allclose(successive_minima(Lattice.from_parameters(3, 4, 9, 90, 90, 120)), [3, 13**0.5, 9])


def test_class_ids_stay_put_when_the_campaign_grows():
    """Adding a batch to the first generator and appending a generator keeps every existing class id,
    although the new structures come first in campaign order and match existing leaders."""

    def records(generator: str, batch: int, structures: list[Structure]) -> list[dict]:
        return [
            {"id": f"{generator}/{batch:04d}/{i}", "generator": generator, "structure": s}
            for i, s in enumerate(structures)
        ]

    a0 = records("a", 0, [rutile(), rock_salt()])
    b0 = records("b", 0, [anatase(), rotated(rutile())])
    b1 = records("b", 1, [strained(anatase()), caesium_chloride_type_nacl()])
    before, _, walk = dedup_table(a0 + b0 + b1, MATCHER)
    expected = mattergen_walk_leaders([r["structure"] for r in a0 + b0 + b1], MATCHER)
    assert [before["id"][i] for i in expected] == before["class_all"].tolist()  # fresh: MatterGen's walk
    # grown: a gets batch 1 (its anatase would lead b's anatase class in campaign order), c appended
    a1 = records("a", 1, [rotated(anatase()), permuted(caesium_chloride_type_nacl())])
    c0 = records("c", 0, [rutile(), rock_salt(4.2, ("Mg", "O"))])
    after, _, _ = dedup_table(a0 + a1 + b0 + b1 + c0, MATCHER, walk)
    old = after.set_index("id").loc[before["id"]]
    assert old["class_all"].tolist() == before["class_all"].tolist()
    assert old["class_generator"].tolist() == before["class_generator"].tolist()
    assert after.set_index("id").loc["a/0001/0", "class_all"] == "b/0000/0"  # joins the existing class
    naive, _, _ = dedup_table(a0 + a1 + b0 + b1 + c0, MATCHER)  # campaign order would rename it
    assert naive.set_index("id").loc["b/0000/0", "class_all"] == "a/0001/0"


def test_sharded_dedup_equals_one_job(tmp_path):
    structures = differential_input(120, 5)
    records = [
        io.structure_record(f"g{i % 2}/{i}", i, s, None, generator=f"g{i % 2}")
        for i, s in enumerate(structures)
    ]
    records.insert(7, io.structure_record("g0/failed", 999, None, "relaxation failed", generator="g0"))
    manifest = write_chunk(tmp_path / "relaxed", "g", {0: records})
    reduced = str(tmp_path / "reduced.pkl")
    run_reduce_job(manifest, reduced, {})
    walk_path = str(tmp_path / "walk_order.txt")
    shard_paths = [str(tmp_path / f"{k}.parquet") for k in range(3)]
    for k, path in enumerate(shard_paths):
        run_dedup_shard_job([reduced], path, {"shards": 3}, k, walk_path)
    run_dedup_merge_job(shard_paths, str(tmp_path / "classes.parquet"), walk_path)
    merged, settings = io.read_table(tmp_path / "classes.parquet")
    single, calls, walk = dedup_table(io.read_chunk_records(manifest), MATCHER)
    pd.testing.assert_frame_equal(merged, single)
    assert settings["shards"] == 3 and settings["fit_calls"] == calls
    assert (tmp_path / "walk_order.txt").read_text().split() == walk
    with pytest.raises(ValueError, match="another matcher"):
        run_dedup_shard_job([reduced], shard_paths[0], {"ltol": 0.3}, 0, walk_path)


def reduced_chunks(tmp_path: Path, batches: dict[str, list[Structure]]) -> dict[str, str]:
    """Per ``generator/batch`` name, a relaxed batch in a chunk of its own, reduced as the workflow's
    reduce jobs do; the reduced chunks' paths."""
    paths = {}
    for name, structures in batches.items():
        generator, batch = name.split("/")
        records = [
            io.structure_record(f"{name}/{i}", i, s, None, generator=generator)
            for i, s in enumerate(structures)
        ]
        manifest = write_chunk(tmp_path / "relaxed" / generator, generator, {int(batch): records})
        paths[name] = str(tmp_path / "reduced" / f"{name}.pkl")
        Path(paths[name]).parent.mkdir(parents=True, exist_ok=True)
        run_reduce_job(manifest, paths[name], {})
    return paths


def dedup_run(tmp_path: Path, inputs: list[str], matching: dict) -> tuple[pd.DataFrame, list[dict]]:
    """The workflow's dedup: every shard, then the merge; the classes and each shard's settings."""
    walk_path = str(tmp_path / "dedup" / "walk_order.txt")
    shard_paths = [str(tmp_path / "dedup" / f"{k}.parquet") for k in range(matching["shards"])]
    for k, path in enumerate(shard_paths):
        run_dedup_shard_job(inputs, path, matching, k, walk_path)
    run_dedup_merge_job(shard_paths, str(tmp_path / "dedup" / "classes.parquet"), walk_path)
    return io.read_table(tmp_path / "dedup" / "classes.parquet")[0], [
        io.read_table(p)[1] for p in shard_paths
    ]


def test_growing_a_campaign_walks_only_new_structures_to_the_classes_of_walking_all(tmp_path):
    structures = differential_input(160, 3)
    paths = reduced_chunks(
        tmp_path,
        {
            "a/0000": structures[:40],
            "b/0000": structures[40:80],
            "a/0001": structures[80:120],  # a's new batch comes before b's in campaign order
            "c/0000": structures[120:],  # an appended generator
        },
    )
    matching = {"shards": 3}
    before, _ = dedup_run(tmp_path, [paths["a/0000"], paths["b/0000"]], matching)
    walk = (tmp_path / "dedup" / "walk_order.txt").read_text().split()
    grown_inputs = [paths["a/0000"], paths["a/0001"], paths["b/0000"], paths["c/0000"]]
    grown, settings = dedup_run(tmp_path, grown_inputs, matching)
    assert sum(s["walked"] for s in settings) == 80 and sum(s["kept"] for s in settings) == 80
    records = [r for p in grown_inputs for r in read_reduced(p, MATCHER)]
    walked_all, _, _ = dedup_table(records, MATCHER, walk)
    pd.testing.assert_frame_equal(grown, walked_all)
    kept = ["id", "class_generator", "unique_generator", "class_all", "unique_all"]  # `shared` may turn True
    pd.testing.assert_frame_equal(grown.set_index("id").loc[before["id"]].reset_index()[kept], before[kept])
    assert grown["shared"].any() and not grown["unique_all"].all()
    # another shard count walks everything again, to the same classes
    regrouped, settings = dedup_run(tmp_path, grown_inputs, {"shards": 2})
    assert sum(s["walked"] for s in settings) == 160
    pd.testing.assert_frame_equal(regrouped, walked_all)
    # a relaxed batch walked before that changed (and was reduced again) walks everything again
    relaxed_b = tmp_path / "relaxed" / "b" / "0000.jsonl.gz"
    os.utime(relaxed_b, ns=(0, 0))
    run_reduce_job(str(tmp_path / "relaxed" / "b" / "chunks" / "0000-0000.json"), paths["b/0000"], {})
    _, settings = dedup_run(tmp_path, grown_inputs, {"shards": 2})
    assert sum(s["walked"] for s in settings) == 160


def test_a_renamed_chunk_walks_only_its_new_batches(tmp_path):
    """A grown generator's last chunk (``0000-0000`` becomes ``0000-0001``) holds a batch walked
    before: dedup recognises it by its relaxed file and walks only the new batch."""
    structures = differential_input(80, 5)
    records = {
        batch: [
            io.structure_record(f"a/{batch}/{i}", i, s, None, generator="a")
            for i, s in enumerate(structures[40 * batch : 40 * (batch + 1)])
        ]
        for batch in (0, 1)
    }
    folder = tmp_path / "relaxed" / "a"
    first = write_chunk(folder, "a", {0: records[0]})
    run_reduce_job(first, str(tmp_path / "first.pkl"), {})
    before, _ = dedup_run(tmp_path, [str(tmp_path / "first.pkl")], {"shards": 2})
    walk = (tmp_path / "dedup" / "walk_order.txt").read_text().split()
    write_chunk(folder, "a", {1: records[1]})
    chunks.write_manifest(
        folder / "chunks" / "0000-0001.json", "a", [chunks.batch_path(folder, b) for b in (0, 1)]
    )
    run_reduce_job(str(folder / "chunks" / "0000-0001.json"), str(tmp_path / "grown.pkl"), {})
    grown, settings = dedup_run(tmp_path, [str(tmp_path / "grown.pkl")], {"shards": 2})
    assert sum(s["walked"] for s in settings) == 40 and sum(s["kept"] for s in settings) == len(before)
    walked_all, _, _ = dedup_table(read_reduced(str(tmp_path / "grown.pkl"), MATCHER), MATCHER, walk)
    pd.testing.assert_frame_equal(grown, walked_all)


def test_disordered_matcher_merges_substitutable_orderings():
    disordered = build_matcher({"matcher": "disordered"})
    assert isinstance(disordered, AlloyMatcher)
    l10 = alloy(["Cu", "Cu", "Ni", "Ni"])  # layered CuNi
    other = alloy(["Cu", "Ni", "Cu", "Ni", "Ni", "Ni", "Cu", "Cu"], 3.55)  # another ordering of CuNi
    assert not MATCHER.fit(l10, other)
    assert disordered.fit(l10, other)  # Cu and Ni substitute (Hume-Rothery): both are fcc CuNi
    random_alloy = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(3.58), [{"Cu": 0.5, "Ni": 0.5}], [[0, 0, 0]]
    )
    assert disordered.fit(l10, random_alloy)
    salt = rock_salt()
    assert not disordered.fit(salt, caesium_chloride_type_nacl())  # Na and Cl do not substitute
    assert disordered.fit(salt, rotated(salt * (1, 2, 1)))
    oxidised = salt.copy()
    oxidised.add_oxidation_state_by_element({"Na": 1, "Cl": -1})
    assert disordered.fit(salt, oxidised)


def test_disordered_classes_equal_unpruned_walk():
    """Under ``disordered`` the pruned walk gives the classes of fitting every earlier leader."""
    disordered = build_matcher({"matcher": "disordered"})
    rng = np.random.default_rng(7)
    base = [
        alloy(["Cu", "Cu", "Ni", "Ni"]),
        alloy(["Cu", "Ni", "Cu", "Ni", "Ni", "Ni", "Cu", "Cu"], 3.55),
        alloy(["Cu", "Cu", "Cu", "Ni"]),
        Structure.from_spacegroup("Fm-3m", Lattice.cubic(3.58), [{"Cu": 0.5, "Ni": 0.5}], [[0] * 3]),
        rock_salt(),
        caesium_chloride_type_nacl(),
        rutile(),
        anatase(),
    ]
    structures = [near_tolerance(base[i % len(base)], rng, rng.uniform(0, 1.2)) for i in range(48)]
    leaders, _ = group_indices(structures, disordered)
    counter = MatchCounter(disordered)
    reduced = [reduce_structure(disordered, s) for s in structures]
    expected: list[int] = []
    for j in range(len(structures)):
        first_leaders = sorted(set(expected))  # every leader so far comes before j
        expected.append(next((i for i in first_leaders if counter.fit(reduced[j], reduced[i])), j))
    assert leaders == expected
    assert len(set(leaders)) < len(base) + 20


def test_disordered_dedup_and_novelty_call_fit_with_the_candidate_first(tmp_path):
    """MatterGen's uniqueness keeps ``x`` unless ``fit(x, earlier unique)``; its novelty asks
    ``fit(x, reference)``. On a pair the fit is asymmetric for, only that order gives its counts."""
    disordered = build_matcher({"matcher": "disordered"})
    original, copy = strained_alloy_pair()
    assert disordered.fit(copy, original) and not disordered.fit(original, copy)
    assert group_indices([original, copy], disordered)[0] == [0, 0]  # the copy is a duplicate
    assert group_indices([copy, original], disordered)[0] == [0, 1]  # the original is not
    records = [
        {"id": f"g/{i}", "generator": "g", "structure": s} for i, s in enumerate([copy, original, copy])
    ]
    table, _, _ = dedup_table(records, disordered)
    assert table["class_all"].tolist() == ["g/0", "g/1", "g/0"]
    for known, candidate, novel in ((original, copy, False), (copy, original, True)):
        path = tmp_path / f"reference-{novel}.jsonl.gz"
        io.write_records(path, [io.structure_record("ref:known", 0, known, None)])
        index = ReferenceIndex(str(path), MatchCounter(disordered))
        assert (index.first_match(candidate) is None) == novel


def alloy_reference(path: Path) -> Path:
    """Rock salt, a Cu-Ni solid solution and rutile, in this order."""
    solid_solution = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(3.58), [{"Cu": 0.5, "Ni": 0.5}], [[0] * 3]
    )
    io.write_records(
        path,
        [
            io.structure_record("ref:salt", 0, rock_salt(), None),
            io.structure_record("ref:cuni", 1, solid_solution, None),
            io.structure_record("ref:rutile", 2, rutile(), None),
        ],
    )
    return path


def test_novelty_against_a_reduced_reference_per_matcher(tmp_path):
    """Reduced once per snapshot and matcher: a disordered reference alloy makes an ordering of it known
    under ``disordered`` only, and a reduction made for one matcher is refused by the other."""
    path = alloy_reference(tmp_path / "reference.jsonl.gz")
    ordering = alloy(["Cu", "Ni", "Cu", "Ni", "Ni", "Ni", "Cu", "Cu"], 3.55)
    for settings, expected in (({}, None), ({"matcher": "disordered"}, "ref:cuni")):
        cached = cached_reduced_reference(str(path), settings, str(tmp_path / "cache"))
        assert cached == cached_reduced_reference(str(path), settings, str(tmp_path / "cache"))  # reused
        index = ReferenceIndex(str(path), MatchCounter(build_matcher(settings)), load_reduced(cached))
        assert index.first_match(ordering) == expected
        assert index.first_match(rotated(rutile()) * (1, 1, 2)) == "ref:rutile"
        assert index.first_match(anatase()) is None
    assert len(list((tmp_path / "cache").iterdir())) == 2
    ordered_reduction = load_reduced(cached_reduced_reference(str(path), {}, str(tmp_path / "cache")))
    with pytest.raises(ValueError, match="another reference snapshot or matcher"):
        ReferenceIndex(str(path), MatchCounter(build_matcher({"matcher": "disordered"})), ordered_reduction)


@pytest.mark.parametrize(("settings", "crossing"), [({}, []), ({"matcher": "disordered"}, ["ref:cuni"])])
def test_a_novelty_job_reads_only_the_reference_buckets_of_its_structures(tmp_path, settings, crossing):
    """A bucket holds one formula; structures that may match across formulas (the solid solution
    under ``disordered``) are read with every bucket, and a structure that crosses reads them all."""
    path = alloy_reference(tmp_path / "reference.jsonl.gz")
    matcher = build_matcher(settings)
    cached = cached_reduced_reference(str(path), settings, str(tmp_path / "cache"))
    salt, tio2 = (reduce_structure(matcher, s) for s in (rotated(rock_salt()), anatase()))
    everything = load_reduced(cached)
    assert everything["labels"] == ["ref:salt", "ref:cuni", "ref:rutile"]
    assert load_reduced(cached, {salt.key})["labels"] == ["ref:salt", *crossing]
    assert load_reduced(cached, {tio2.key, salt.key})["labels"] == ["ref:salt", *crossing, "ref:rutile"]
    assert load_reduced(cached, set())["labels"] == crossing
    subset = ReferenceIndex(str(path), MatchCounter(matcher), load_reduced(cached, {salt.key}))
    assert subset.first_match_reduced(salt) == "ref:salt"
    assert subset.first_match_reduced(tio2) is None
