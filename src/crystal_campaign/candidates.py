"""The campaign's discovery candidates: S.U.N. and metastable S.U.N. structures as CIF, ranked by E_hull."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from pymatgen.io.cif import CifWriter

from crystal_campaign import chunks, io, tables

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
    "status",
    "converged",
    "n_steps",
    "max_force",
    "relaxer",
    "e_above_hull_basis",
    "n_sites",
    "energy_per_atom",
    "class_all",
    "cif",
]
# The report's table of candidates: (column, heading with its unit).
REPORT_COLUMNS = [
    ("rank", "rank"),
    ("id", "id"),
    ("formula", "formula"),
    ("space_group", "space group"),
    ("e_above_hull", "E_hull (eV/atom)"),
    ("generator", "generator"),
    ("status", "relaxation"),
    ("n_steps", "steps"),
    ("max_force", "max force (eV/Å)"),
    ("relaxer", "relaxer"),
]


def energy_basis_label(settings: dict) -> str:
    """The E_hull basis as the index states it: ``self_consistent``, or ``mp`` with its correction."""
    stability = settings.get("stability", {})
    basis = stability.get("energy_basis", "not computed")
    return f"mp ({stability.get('energy_correction', '?')})" if basis == "mp" else basis


def relaxer_label(relaxer: dict) -> str:
    return " ".join(str(relaxer[key]) for key in ("backend", "model") if relaxer.get(key))


def candidates_table(
    structures: pd.DataFrame, settings: dict | None = None, relaxers: dict[str, str] | None = None
) -> pd.DataFrame:
    """Metastable S.U.N. rows (S.U.N. ones included), lowest E_hull first; ties keep campaign order.
    ``relaxers`` maps an id to the potential that relaxed it; ``settings`` are the table's own."""
    if "msun" not in structures:  # a campaign without any batch has no stability columns
        return pd.DataFrame(columns=INDEX_COLUMNS)
    chosen = structures[structures["msun"]].copy()
    chosen["relaxer"] = chosen["id"].map(relaxers or {})
    chosen["e_above_hull_basis"] = energy_basis_label(settings or {})
    chosen["order"] = range(len(chosen))
    chosen = chosen.sort_values(["e_above_hull", "order"], kind="stable")
    chosen["rank"] = range(1, len(chosen) + 1)
    chosen["cif"] = [
        f"cif/{rank:04d}_{sid}.cif" for rank, sid in zip(chosen["rank"], chosen["id"], strict=True)
    ]
    return chosen[INDEX_COLUMNS].reset_index(drop=True)


def candidates_html(index: pd.DataFrame, settings: dict, campaign: str) -> str:
    """The candidates as the report shows them, with the thresholds and energy basis behind them."""
    stability = settings.get("stability", {})
    metastable, stable = stability.get("metastable_threshold", "n/a"), stability.get("threshold", "n/a")
    notes = [
        f"{len(index)} metastable S.U.N. structures (E_hull <= {metastable} eV/atom), "
        f"{int(index['sun'].sum())} of them S.U.N. (<= {stable} eV/atom); "
        f"energy basis: {stability.get('energy_basis', 'not computed')}",
        "relaxation 'unconverged' hit max_steps before fmax: check it before sending it to DFT",
        f"CIFs and index.csv: results/{campaign}/candidates/",
    ]
    rows = [[tables.cell(row[column]) for column, _ in REPORT_COLUMNS] for _, row in index.iterrows()]
    return tables.page(f"Campaign {campaign}: candidates", [h for _, h in REPORT_COLUMNS], rows, notes)


def write_candidates(
    structures_path: str, relaxed_manifests: Sequence[str], output_dir: str, html_path: str, campaign: str
) -> None:
    """``output_dir``/index.csv and one CIF per candidate (the folder is replaced as a whole), and
    the report's candidates table at ``html_path``. Only the candidates' rows of the per-structure
    table and their batches' files are read."""
    settings = io.read_table_settings(structures_path)
    has_flags = "msun" in io.table_columns(structures_path)
    structures = io.read_table(structures_path, filters=[("msun", "==", True)])[0] if has_flags else None
    wanted = set() if structures is None else set(structures["id"])
    batches = (
        set() if structures is None else set(zip(structures["generator"], structures["batch"], strict=True))
    )
    found, relaxers = {}, {}
    for manifest in relaxed_manifests:
        for entry in chunks.read_manifest(manifest):
            sidecar = entry["sidecar"]
            if (sidecar["generator"], sidecar["batch"]) not in batches:
                continue
            relaxer = relaxer_label(sidecar["relaxer"])
            for record in io.read_records(entry["path"]):
                if record["id"] in wanted:
                    found[record["id"]], relaxers[record["id"]] = record["structure"], relaxer
    index = candidates_table(pd.DataFrame() if structures is None else structures, settings, relaxers)
    with io.replaced_folder(output_dir) as staging:
        (staging / "cif").mkdir()
        for sid, cif in zip(index["id"], index["cif"], strict=True):
            CifWriter(found[sid]).write_file(staging / cif)
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
    with io.atomic_path(html_path) as tmp:
        tmp.write_text(candidates_html(index, settings, campaign))
