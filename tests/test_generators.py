from __future__ import annotations

import gzip

import pytest
from ase.io import write as ase_write
from pymatgen.io.ase import AseAtomsAdaptor

from conftest import rock_salt
from crystal_campaign import generators, io
from crystal_campaign.generators import importer, random_search

RSS = {
    "name": "rss",
    "backend": "random",
    "batch_size": 6,
    "chemical_systems": ["Na-Cl", "Ti-O"],
    "compositions": ["MgO"],
    "min_atoms": 4,
    "max_atoms": 8,
    "charge_balanced": True,
    "max_attempts": 20,
    "volume_factor": 1.1,
}


def test_seeds_depend_on_campaign_generator_and_batch_only():
    seed = generators.derive_seed("c", "rss", 3)
    assert seed == generators.derive_seed("c", "rss", 3)
    assert (
        len(
            {
                seed,
                generators.derive_seed("c", "rss", 4),
                generators.derive_seed("c", "other", 3),
                generators.derive_seed("d", "rss", 3),
            }
        )
        == 4
    )


def test_random_search_reproduces_and_respects_targets(tmp_path):
    first = tmp_path / "a.jsonl.gz"
    again = tmp_path / "b.jsonl.gz"
    generators.sample(RSS, "c", 0, str(first))
    generators.sample(RSS, "c", 0, str(again))
    records = io.read_records(first)
    assert [r["structure"] for r in records] == [r["structure"] for r in io.read_records(again)]
    assert len(records) == 6
    for record in records:
        structure = record["structure"]
        assert 4 <= len(structure) <= 8
        assert structure.composition.chemical_system in {"Cl-Na", "O-Ti", "Mg-O"}
        assert record["id"] == f"rss-b0000-{record['index']:04d}"
    sidecar = io.read_json(io.sidecar_path(first))
    assert sidecar["seed"] == generators.derive_seed("c", "rss", 0)
    assert sidecar["n_requested"] == sidecar["n_generated"] == 6
    assert sidecar["versions"]["pyxtal"] != "not installed"


def test_random_search_without_possible_compositions_fails_per_row():
    settings = {**RSS, "chemical_systems": ["Na-Cl"], "compositions": [], "min_atoms": 3, "max_atoms": 3}
    output = random_search.BACKEND.sample_batch(settings, 0, 1)
    assert [s.structure for s in output.samples] == [None] * 6
    assert all("no compositions" in s.reason for s in output.samples)


def test_charge_balanced_pools_hold_only_smact_valid_compositions():
    pools = random_search.composition_pools({**RSS, "compositions": []})
    formulas = {c.reduced_formula for pool in pools for c in pool}
    assert "NaCl" in formulas and "TiO2" in formulas
    assert "Na2Cl" not in formulas and "NaCl2" not in formulas


@pytest.fixture
def import_dir(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    nacl = rock_salt()
    nacl.to(filename=str(folder / "a_nacl.cif"))
    ase_write(
        folder / "b_frames.extxyz",
        [AseAtomsAdaptor.get_atoms(rock_salt(a)) for a in (5.5, 5.7)],
        format="extxyz",
    )
    nacl.to(filename=str(folder / "POSCAR"), fmt="poscar")
    (folder / "c_garbage.cif").write_text("data_x\n_cell_length_a banana\nloop_\n_atom_site_label\n")
    (folder / "d_empty.extxyz").write_text("")
    (folder / "e_truncated.extxyz").write_text(
        '8\nLattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3\nNa 0 0 0\n'
    )
    (folder / "f_notes.txt").write_text("not a structure")
    with gzip.open(folder / "g_binary.cif", "wb") as handle:
        handle.write(b"\x00\x01 binary")
    return folder


def test_import_reads_every_format_and_keeps_bad_files_as_failure_rows(import_dir):
    settings = {"name": "imp", "backend": "import", "paths": [str(import_dir)], "batch_size": 100}
    samples = importer.BACKEND.sample_batch(settings, 0, 0).samples
    by_file = {}
    for sample in samples:
        by_file.setdefault(sample.source.split("#")[0].split("/")[-1], []).append(sample)
    assert [s.structure.composition.reduced_formula for s in by_file["a_nacl.cif"]] == ["NaCl"]
    assert len(by_file["b_frames.extxyz"]) == 2
    assert by_file["POSCAR"][0].structure.composition.reduced_formula == "NaCl"
    for bad in ("c_garbage.cif", "d_empty.extxyz", "e_truncated.extxyz", "f_notes.txt", "g_binary.cif"):
        (row,) = by_file[bad]
        assert row.structure is None, bad
        assert row.reason, bad
    assert by_file["d_empty.extxyz"][0].reason.startswith(("no structure", "unreadable"))


def test_import_batches_split_files_in_sorted_order(import_dir):
    settings = {"name": "imp", "backend": "import", "paths": [str(import_dir / "*")], "batch_size": 3}
    assert importer.BACKEND.n_batches(settings) == 3
    assert [f.rsplit("/", 1)[-1] for f in importer.BACKEND.input_files(settings, 0)] == [
        "POSCAR",
        "a_nacl.cif",
        "b_frames.extxyz",
    ]
    assert len(importer.BACKEND.input_files(settings, 2)) == 2
