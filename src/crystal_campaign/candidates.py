"""The campaign's discovery candidates: S.U.N. and metastable S.U.N. structures as CIF, ranked by E_hull."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from pymatgen.io.cif import CifWriter

from crystal_campaign import io

INDEX_COLUMNS = [
    "rank",
    "id",
    "generator",
    "formula",
    "space_group",
    "space_group_number",
    "e_above_hull",
    "decomposition",
    "sun",
    "msun",
    "n_sites",
    "energy_per_atom",
    "class_all",
    "cif",
]


def candidates_table(structures: pd.DataFrame) -> pd.DataFrame:
    """Metastable S.U.N. rows (S.U.N. ones included), lowest E_hull first; ties keep campaign order."""
    if "msun" not in structures:  # a campaign without any batch has no stability columns
        return pd.DataFrame(columns=INDEX_COLUMNS)
    chosen = structures[structures["msun"]].copy()
    chosen["order"] = range(len(chosen))
    chosen = chosen.sort_values(["e_above_hull", "order"], kind="stable")
    chosen["rank"] = range(1, len(chosen) + 1)
    chosen["cif"] = [
        f"cif/{rank:04d}_{sid}.cif" for rank, sid in zip(chosen["rank"], chosen["id"], strict=True)
    ]
    return chosen[INDEX_COLUMNS].reset_index(drop=True)


def write_candidates(structures_path: str, relaxed_paths: Sequence[str], output_dir: str) -> None:
    """``output_dir``/index.csv and one CIF per candidate; the folder is replaced as a whole."""
    structures, settings = io.read_table(structures_path)
    index = candidates_table(structures)
    wanted = dict(zip(index["id"], index["cif"], strict=True))
    output = Path(output_dir)
    staging = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "cif").mkdir(parents=True)
    for path in relaxed_paths:
        for record in io.read_records(path):
            if record["id"] in wanted:
                CifWriter(record["structure"]).write_file(staging / wanted[record["id"]])
    index.to_csv(staging / "index.csv", index=False)
    io.write_json(
        staging / "settings.json",
        {
            "stability": settings.get("stability", {}),
            "reference": settings.get("reference", {}),
            "n_sun": int(index["sun"].sum()),
            "n_msun": len(index),
        },
    )
    shutil.rmtree(output, ignore_errors=True)
    staging.rename(output)
