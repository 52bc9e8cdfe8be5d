"""What each structure is: formula, chemical system, sites, space group and density, beside its
record's fields (relaxation result included). One table per relaxed chunk, read by the metrics job
as the base of the per-structure table, so that job never parses a structure."""

from __future__ import annotations

import warnings

import pandas as pd
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from crystal_campaign import io


def describe_structure(structure: Structure | None, symprec: float) -> dict:
    if structure is None:
        return {
            "formula": None,
            "chemsys": None,
            "n_sites": 0,
            "space_group": None,
            "space_group_number": 0,
            "density": float("nan"),
        }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analyzer = SpacegroupAnalyzer(structure, symprec=symprec)
            symbol, number = analyzer.get_space_group_symbol(), analyzer.get_space_group_number()
    except Exception:  # spglib gives up on some broken cells; that is not worth a crash
        symbol, number = None, 0
    return {
        "formula": structure.composition.reduced_formula,
        "chemsys": structure.composition.chemical_system,
        "n_sites": len(structure),
        "space_group": symbol,
        "space_group_number": number,
        "density": float(structure.density),
    }


def description_rows(records: list[dict], symprec: float) -> pd.DataFrame:
    """One row per record: its fields but the structure, ``evaluated``, and what the structure is."""
    rows = []
    for record in records:
        structure = record.pop("structure")
        rows.append({**record, "evaluated": structure is not None, **describe_structure(structure, symprec)})
    return pd.DataFrame(rows, columns=None if rows else ["id"])


def write_descriptions(records: list[dict], output_path: str, symprec: float) -> None:
    io.write_table(output_path, description_rows(records, symprec), {"symprec": symprec})


def run_describe_job(relaxed_manifest: str, output_path: str, symprec: float) -> None:
    write_descriptions(io.read_chunk_records(relaxed_manifest), output_path, symprec)


def run_describe_reference_job(reference_path: str, output_path: str, symprec: float) -> None:
    """The reference snapshot's structures described as ``run_describe_job`` describes a chunk's."""
    write_descriptions(io.read_records(reference_path), output_path, symprec)
