"""DFT hand-off: real pymatgen input sets written and parsed back, real atomate2 flows through jobflow."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from jobflow import Flow
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.io.cif import CifWriter
from pymatgen.io.vasp import Incar, Kpoints, Poscar
from pymatgen.io.vasp.sets import MPRelaxSet

from conftest import rock_salt
from crystal_campaign import dft
from crystal_campaign.schema import section_defaults

CANDIDATES = {"rss-b0000-0001": rock_salt(5.6), "rss-b0000-0004": rock_salt(4.2, ("Mg", "O"))}


@pytest.fixture
def candidates(tmp_path):
    """A candidates folder as the candidates rule writes it (index.csv and cif/)."""
    folder = tmp_path / "candidates"
    (folder / "cif").mkdir(parents=True)
    rows = []
    for rank, (sid, structure) in enumerate(CANDIDATES.items(), start=1):
        cif = f"cif/{rank:04d}_{sid}.cif"
        CifWriter(structure).write_file(folder / cif)
        rows.append(
            {
                "rank": rank,
                "id": sid,
                "formula": structure.composition.reduced_formula,
                "converged": rank == 1,
                "n_steps": 12 * rank,
                "max_force": 0.04 * rank,
                "e_above_hull": -0.01 * rank,
                "cif": cif,
            }
        )
    pd.DataFrame(rows).to_csv(folder / "index.csv", index=False)
    return folder


@pytest.fixture
def no_pseudopotentials(monkeypatch):
    monkeypatch.delitem(dft.SETTINGS, "PMG_VASP_PSP_DIR", raising=False)


def settings(**changes) -> dict:
    return section_defaults("dft") | changes


def test_every_candidate_gets_vasp_inputs_that_parse_back_without_a_potcar(
    candidates, tmp_path, no_pseudopotentials
):
    output = tmp_path / "dft"
    dft.write_dft_inputs(str(candidates), str(output), settings(), "c")
    index = pd.read_csv(output / "index.csv")
    assert index["folder"].tolist() == ["0001_rss-b0000-0001", "0002_rss-b0000-0004"]
    assert index[["converged", "n_steps"]].values.tolist() == [[True, 12], [False, 24]]
    assert not index["potcar"].any()
    matcher = StructureMatcher()
    for folder, structure in zip(index["folder"], CANDIDATES.values(), strict=True):
        written = output / folder
        assert sorted(p.name for p in written.iterdir()) == sorted(dft.VASP_FILES)  # no POTCAR
        assert matcher.fit(Poscar.from_file(written / "POSCAR").structure, structure)
        expected = MPRelaxSet(structure)
        incar = Incar.from_file(written / "INCAR")
        assert incar["ISIF"] == 3 and incar["ENCUT"] == expected.incar["ENCUT"]
        assert Kpoints.from_file(written / "KPOINTS").kpts == expected.kpoints.kpts
        assert (written / "POTCAR.spec").read_text().split() == expected.potcar_symbols
    recorded = json.loads((output / "settings.json").read_text())
    assert recorded["potcar_written"] is False and recorded["dft"]["input_set"] == "MPRelaxSet"


def test_flow_json_deserializes_with_jobflow_and_holds_each_candidate_structure(
    candidates, tmp_path, no_pseudopotentials
):
    output = tmp_path / "dft"
    dft.write_dft_inputs(str(candidates), str(output), settings(), "c")
    flow = Flow.from_dict(json.loads((output / "flow.json").read_text()))
    assert flow.name == "c candidates" and len(flow.jobs) == len(CANDIDATES)
    matcher = StructureMatcher()
    for per_candidate, (sid, structure) in zip(flow.jobs, CANDIDATES.items(), strict=True):
        assert isinstance(per_candidate, Flow) and sid in per_candidate.name
        first_relaxation = per_candidate.jobs[0]
        assert first_relaxation.name == "MP GGA relax 1"
        assert matcher.fit(first_relaxation.function_args[0], structure)
        assert len(per_candidate.jobs) == 2  # the double relaxation


def test_input_set_flow_maker_and_count_follow_the_settings(candidates, tmp_path, no_pseudopotentials):
    output = tmp_path / "dft"
    chosen = settings(
        input_set="MPScanRelaxSet", flow_maker="none", max_candidates=1, user_incar_settings={"NCORE": 4}
    )
    dft.write_dft_inputs(str(candidates), str(output), chosen, "c")
    assert sorted(p.name for p in output.iterdir()) == ["0001_rss-b0000-0001", "index.csv", "settings.json"]
    incar = Incar.from_file(output / "0001_rss-b0000-0001" / "INCAR")
    assert incar["METAGGA"].lower() == "r2scan" and incar["NCORE"] == 4
