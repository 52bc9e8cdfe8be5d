"""Conditioning adherence in the summary, on real pymatgen structures."""

from __future__ import annotations

import math

import pandas as pd
from pymatgen.core import Lattice, Structure

from conftest import evaluated_as_unique_novel, rock_salt
from crystal_campaign import description, metrics


def cesium_chloride_type(species: tuple[str, str]) -> Structure:
    return Structure(Lattice.cubic(3.4), list(species), [[0, 0, 0], [0.5, 0.5, 0.5]])


def structures_rows(rows: list[tuple[str, str, Structure | None]]) -> pd.DataFrame:
    """The per-structure table's columns that adherence reads, as the describe jobs write them."""
    return pd.DataFrame(
        [
            {
                "id": rid,
                "generator": generator,
                "evaluated": s is not None,
                **description.describe_structure(s, 0.1),
            }
            for rid, generator, s in rows
        ]
    )


GENERATORS = {
    # MatterGen spells its conditioning like this.
    "guided": {
        "backend": "mattergen",
        "properties_to_condition_on": {"chemical_system": "Na-Cl", "space_group": 225},
    },
    "csp": {"backend": "chemeleon", "task": "csp", "formulas": ["NaCl", "MgO"]},
    "rss": {"backend": "random", "chemical_systems": ["Na-Cl"]},
}
ROWS = [
    ("g0", "guided", rock_salt()),  # Na-Cl, Fm-3m (225): both hit
    ("g1", "guided", cesium_chloride_type(("Na", "Cl"))),  # Na-Cl, Pm-3m (221)
    ("g2", "guided", rock_salt(4.2, ("Mg", "O"))),  # Mg-O, 225
    ("g3", "guided", cesium_chloride_type(("Na", "Na"))),  # bcc Na (229): a sub-system is not the target
    ("g4", "guided", None),  # no structure: not evaluated, never counted
    ("c0", "csp", rock_salt()),
    ("c1", "csp", cesium_chloride_type(("Mg", "O"))),
    ("c2", "csp", rock_salt(4.2, ("Mg", "O"))),
    ("r0", "rss", rock_salt()),
]
TARGET_FORMULAS = pd.DataFrame(
    {"id": ["c0", "c1", "c2"], "target_formula": ["Na4Cl4", "MgO", "NaCl"]},
)


def test_adherence_fractions_per_generator_and_overall():
    rows = structures_rows(ROWS).merge(TARGET_FORMULAS, on="id", how="left")  # carried from sampling
    table = metrics.add_conditioning_flags(rows, GENERATORS)
    assert table.set_index("id").loc["g1", "space_group_number"] == 221
    summary = metrics.summary_table(
        evaluated_as_unique_novel(table),
        {"guided": 5, "csp": 3, "rss": 1},
    ).set_index("generator")
    assert summary.loc["guided", "frac_in_target_chemsys"] == 2 / 4
    assert summary.loc["guided", "frac_space_group_hit"] == 2 / 4
    assert summary.loc["csp", "frac_composition_match"] == 2 / 3
    assert math.isnan(summary.loc["guided", "frac_composition_match"])
    assert all(math.isnan(summary.loc["csp", c]) for c in ("frac_in_target_chemsys", "frac_space_group_hit"))
    assert all(math.isnan(summary.loc["rss", c]) for c in metrics.ADHERENCE_FLAGS)
    # `all` counts every structure that has the target, whichever generator made it.
    assert summary.loc["all", "frac_in_target_chemsys"] == 2 / 4
    assert summary.loc["all", "frac_composition_match"] == 2 / 3


def test_unconditioned_campaign_has_nan_adherence_and_null_flags():
    rows = [row for row in ROWS if row[1] == "rss"]
    table = metrics.add_conditioning_flags(structures_rows(rows), GENERATORS)
    assert table[["in_target_chemsys", "space_group_hit", "composition_match"]].isna().all().all()
    assert all(math.isnan(v) for v in metrics.adherence_fractions(table).values())
