from __future__ import annotations

import csv

import pytest
from ase.io import write as ase_write
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from conftest import rock_salt, write_chunk
from crystal_campaign import io
from crystal_campaign.matching import MatchCounter, build_matcher
from crystal_campaign.novelty import ReferenceIndex, run_novelty_job
from crystal_campaign.reference import build_reference, load_source


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "reference.jsonl.gz"
    build_reference(["embedded"], str(path))
    return path


def test_embedded_reference_knows_rock_salt_but_not_caesium_chloride_type(embedded):
    index = ReferenceIndex(str(embedded), MatchCounter(build_matcher()))
    assert index.first_match(rock_salt(5.60)) == "embedded:NaCl rock salt"
    assert index.first_match(rock_salt(4.25, ("Mg", "O")) * (1, 1, 2)).startswith("embedded:MgO")
    cscl_type = Structure(Lattice.cubic(3.3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert index.first_match(cscl_type) is None
    sidecar = io.read_json(io.sidecar_path(embedded))
    assert sidecar["sha256"] == io.file_sha256(embedded)
    assert sidecar["n_structures"]["embedded"] >= 8


def test_reference_sources_in_every_file_format(tmp_path):
    structures = [rock_salt(5.64), rock_salt(4.21, ("Mg", "O"))]
    ase_write(tmp_path / "ref.extxyz", [AseAtomsAdaptor.get_atoms(s) for s in structures], format="extxyz")
    (tmp_path / "cifs").mkdir()
    for i, structure in enumerate(structures):
        structure.to(filename=str(tmp_path / "cifs" / f"{i}.cif"))
    with (tmp_path / "mp20.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["material_id", "cif"])
        writer.writeheader()
        for i, structure in enumerate(structures):
            writer.writerow({"material_id": f"mp-{i}", "cif": structure.to(fmt="cif")})
    for source, labels in [
        ({"path": str(tmp_path / "ref.extxyz")}, ["ref.extxyz#0", "ref.extxyz#1"]),
        ({"path": str(tmp_path / "cifs")}, ["0.cif#0", "1.cif#0"]),
        ({"path": str(tmp_path / "mp20.csv")}, ["mp20.csv:mp-0", "mp20.csv:mp-1"]),
    ]:
        loaded = list(load_source(source))
        assert [label for label, _ in loaded] == labels
        assert [s.composition.reduced_formula for _, s in loaded] == ["NaCl", "MgO"]


def test_novelty_job_records_matches_and_settings(tmp_path, embedded):
    records = [
        io.structure_record("x-0", 0, rock_salt(5.7), None),
        io.structure_record("x-1", 1, rock_salt(3.0, ("Ti", "O")) * (2, 2, 2), None),
        io.structure_record("x-2", 2, None, "failed"),
    ]
    output = tmp_path / "novelty.parquet"
    run_novelty_job(write_chunk(tmp_path, "x", {0: records}), str(embedded), str(output), {"ltol": 0.2})
    table, settings = io.read_table(output)
    assert table["novel"].tolist() == [False, True, False]
    assert table["reference_match"].tolist()[0] == "embedded:NaCl rock salt"
    assert settings["matcher"]["ltol"] == 0.2 and settings["reference"]["sha256"] == io.file_sha256(embedded)
