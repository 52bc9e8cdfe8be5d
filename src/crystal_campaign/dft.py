"""DFT hand-off of the ranked candidates: VASP inputs and an atomate2 flow.

Per candidate (``candidates/index.csv`` order, at most ``dft.max_candidates``), one folder with
the INCAR, KPOINTS and POSCAR of a pymatgen input set (``dft.input_set``, ``MPRelaxSet`` by
default) and ``POTCAR.spec`` (the POTCAR symbols). The POTCAR itself is written only where a
pseudopotential directory is configured (``dft.pseudopotential_dir`` or pymatgen's own
``PMG_VASP_PSP_DIR``): POTCARs are licensed, never shipped and never required. Beside them,
``flow.json``: one jobflow ``Flow`` holding an atomate2 double-relaxation flow per candidate
(``dft.flow_maker``), serialized as is, for jobflow-remote (``submit_flow``) or FireWorks
(``flow_to_workflow``) users.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from pymatgen.core import SETTINGS, Structure

from crystal_campaign import io

INPUT_SETS = (
    "MPRelaxSet",
    "MPScanRelaxSet",
    "MPMetalRelaxSet",
    "MP24RelaxSet",
    "MPStaticSet",
    "MatPESStaticSet",
)
# atomate2 makers: module -> names (the MP-compatible double relaxations and the generic one).
FLOW_MAKERS = {
    "atomate2.vasp.flows.mp": ("MPGGADoubleRelaxMaker", "MPMetaGGADoubleRelaxMaker", "MP24DoubleRelaxMaker"),
    "atomate2.vasp.flows.core": ("DoubleRelaxMaker",),
}
VASP_FILES = ("INCAR", "KPOINTS", "POSCAR", "POTCAR.spec")
INDEX_COLUMNS = [
    "rank",
    "id",
    "formula",
    "folder",
    "converged",
    "n_steps",
    "max_force",
    "e_above_hull",
    "potcar",
]


def input_set(structure: Structure, settings: dict):
    """The configured pymatgen VASP input set for ``structure``."""
    from pymatgen.io.vasp import sets

    make = getattr(sets, settings["input_set"])
    return make(structure, user_incar_settings=settings["user_incar_settings"] or None)


def pseudopotential_dir(settings: dict) -> str | None:
    """Where POTCARs come from: the config, else pymatgen's setting, else nowhere."""
    return settings["pseudopotential_dir"] or SETTINGS.get("PMG_VASP_PSP_DIR")


def write_vasp_inputs(structure: Structure, folder: Path, settings: dict, potcars: str | None) -> None:
    """INCAR, KPOINTS, POSCAR and POTCAR.spec; the POTCAR too when ``potcars`` is a directory."""
    inputs = input_set(structure, settings)
    inputs.write_input(folder, potcar_spec=True)
    if potcars:
        SETTINGS["PMG_VASP_PSP_DIR"] = potcars  # pymatgen reads its POTCARs from this setting
        inputs.potcar.write_file(folder / "POTCAR")


def flow_maker(name: str):
    import importlib

    module = next(module for module, names in FLOW_MAKERS.items() if name in names)
    return getattr(importlib.import_module(module), name)()


def candidate_flow(named: Sequence[tuple[str, Structure]], maker_name: str, campaign: str):
    """One jobflow Flow: the maker's flow per candidate, named by its folder."""
    from jobflow import Flow

    maker = flow_maker(maker_name)
    flows = []
    for name, structure in named:
        flow = maker.make(structure)
        flow.name = f"{name} {flow.name}"
        flows.append(flow)
    return Flow(flows, name=f"{campaign} candidates")


def write_dft_inputs(candidates_dir: str, output_dir: str, settings: dict, campaign: str) -> None:
    """``output_dir``: a folder per candidate, ``flow.json``, ``index.csv`` and ``settings.json``
    (the folder is replaced as a whole)."""
    from monty.json import MontyEncoder

    index = pd.read_csv(Path(candidates_dir) / "index.csv")
    if settings["max_candidates"] is not None:
        index = index.head(settings["max_candidates"])
    potcars = pseudopotential_dir(settings)
    named = [(Path(cif).stem, Structure.from_file(Path(candidates_dir) / cif)) for cif in index["cif"]]
    with io.replaced_folder(output_dir) as staging:
        for name, structure in named:
            write_vasp_inputs(structure, staging / name, settings, potcars)
        table = index.assign(folder=[name for name, _ in named], potcar=bool(potcars))
        table[INDEX_COLUMNS].to_csv(staging / "index.csv", index=False)
        if settings["flow_maker"] != "none":
            flow = candidate_flow(named, settings["flow_maker"], campaign)
            (staging / "flow.json").write_text(json.dumps(flow.as_dict(), cls=MontyEncoder))
        io.write_json(
            staging / "settings.json",
            {"dft": settings, "potcar_written": bool(potcars), "n_candidates": len(named)},
        )
