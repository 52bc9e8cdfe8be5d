"""Structural and compositional validity as defined by CDVAE and MatterGen (see config/README.md)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
from pymatgen.core import Composition, Structure
from smact.screening import smact_validity

from crystal_campaign import io

# SMACT's 2014 oxidation-state list is what SMACT 2.x used by default, i.e. the published definition.
DEFAULT_OXIDATION_STATES = "smact14"


def min_interatomic_distance(structure: Structure) -> float:
    """Shortest minimum-image distance between two different sites (inf for one site, as in CDVAE)."""
    distances = structure.distance_matrix + np.diag(np.full(len(structure), np.inf))
    return float(distances.min()) if len(structure) > 1 else math.inf


def structural_validity(
    structure: Structure, min_distance: float, min_volume: float
) -> tuple[bool, str | None]:
    if len(structure) == 0:
        return False, "empty structure"
    if structure.volume < min_volume:
        return False, f"volume {structure.volume:.3g} A^3 < {min_volume}"
    distance = min_interatomic_distance(structure)
    if not distance >= min_distance:
        return False, f"interatomic distance {distance:.3g} A < {min_distance}"
    return True, None


def integer_composition(composition: Composition) -> Composition:
    """Whole-number counts for a composition, also for partially occupied (disordered) structures."""
    formula, _ = composition.get_integer_formula_and_factor(max_denominator=1000)
    return Composition(formula)


@functools.lru_cache(maxsize=4096)
def _smact_valid(formula: str, oxidation_states: str) -> tuple[bool, str | None]:
    composition = integer_composition(Composition(formula))
    try:
        valid = smact_validity(
            composition, use_pauling_test=True, include_alloys=True, oxidation_states_set=oxidation_states
        )
    except (TypeError, KeyError, NameError) as error:
        # SMACT fails on elements it has no data for: that is a reason, not a crash.
        return False, f"composition not checkable by SMACT: {type(error).__name__}: {error}"
    return valid, None if valid else "not charge balanced with Pauling-consistent oxidation states"


def compositional_validity(
    composition: Composition,
    oxidation_states: str = DEFAULT_OXIDATION_STATES,
) -> tuple[bool, str | None]:
    """SMACT charge neutrality + Pauling test on gcd-reduced counts; elements and all-metal pass."""
    return _smact_valid(composition.reduced_formula, oxidation_states)


def validity_row(structure: Structure | None, settings: dict) -> dict:
    if structure is None:
        return {
            "struct_valid": False,
            "comp_valid": False,
            "valid": False,
            "validity_reason": "not evaluated",
        }
    struct_ok, struct_reason = structural_validity(
        structure, settings["min_distance"], settings["min_volume"]
    )
    comp_ok, comp_reason = compositional_validity(structure.composition, settings["oxidation_states"])
    reasons = [r for r in (struct_reason, comp_reason) if r]
    return {
        "struct_valid": struct_ok,
        "comp_valid": comp_ok,
        "valid": struct_ok and comp_ok,
        "validity_reason": "; ".join(reasons) or None,
    }


def run_validity_job(relaxed_manifest: str, output_path: str, settings: dict) -> None:
    """Validity flags of every structure of a relaxed chunk."""
    records = io.read_chunk_records(relaxed_manifest)
    table = pd.DataFrame(
        [{"id": r["id"], **validity_row(r["structure"], settings)} for r in records],
        columns=["id", "struct_valid", "comp_valid", "valid", "validity_reason"],
    )
    io.write_table(output_path, table, {"validity": settings})
