"""Ensemble stability (as LeMat-GenBench does with three potentials): the E_hull of every structure
under more potentials than the campaign's own (``stability.ensemble``), each against a hull of
its own energies, with their mean, spread and ``stable_all``.

Each member is a relaxer of the registry (``crystal_campaign.relax``) that either evaluates the
campaign's relaxed structures as they are (``single_point``) or relaxes them again (``relax``).
On the self-consistent basis its hull is the reference structures evaluated the same way with
the same potential; on the ``mp`` basis the Materials Project entries, with the correction its
training data needs. One table per chunk and member (``stability.run_ensemble_job``); the
metrics job joins them here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

MEMBER_DEFAULTS = {"model": None, "model_path": None, "mode": "single_point"}
# The keys a member sets on the campaign's relax section (the optimizer settings stay the campaign's).
MEMBER_KEYS = ("backend", "model", "model_path")
DEFINITIONS = {
    "e_above_hull_<member>": "E_hull (eV/atom) under ensemble member <member> (stability.ensemble), "
    "against the hull of its own energies (per structure, metrics/structures.parquet)",
    "e_above_hull_mean": "mean E_hull over the campaign's potential and every ensemble member (NaN "
    "unless all give one; per structure)",
    "e_above_hull_spread": "largest minus smallest of those E_hull values (per structure)",
    "n_stable_all": "evaluated and stable (e_above_hull <= stability_threshold) under the campaign's "
    "potential and every ensemble member (stable_all; LeMat-GenBench's ensemble)",
    "n_sun_all": "stable_all, unique and novel",
    "frac_stable_all": "n_stable_all / n_requested",
    "mean_e_above_hull_spread": "mean spread over evaluated structures that every potential places on "
    "its hull (eV/atom)",
}


def member(entry: dict) -> dict:
    """One ``stability.ensemble`` entry with its defaults and its name (``name``, else its backend)."""
    return {**MEMBER_DEFAULTS, **entry, "name": entry.get("name", entry["backend"])}


def members(section: dict) -> dict[str, dict]:
    """Ensemble member name -> its settings, defaults filled."""
    return {filled["name"]: filled for filled in map(member, section["ensemble"])}


def member_relax_settings(member: dict, relax_section: dict) -> dict:
    """The relax settings a member computes with: the campaign's optimizer settings, its potential."""
    return {**relax_section, **{key: member[key] for key in MEMBER_KEYS}, "engine": "auto"}


def add_ensemble(
    table: pd.DataFrame, member_tables: dict[str, pd.DataFrame], threshold: float
) -> pd.DataFrame:
    """Each member's ``e_above_hull_<name>`` beside the campaign's ``e_above_hull``, their mean and
    spread (NaN unless every potential gives a number), and ``stable_all``."""
    for name, member in member_tables.items():
        column = member[["id", "e_above_hull"]].rename(columns={"e_above_hull": f"e_above_hull_{name}"})
        table = table.merge(column, on="id", how="left", validate="one_to_one")
    values = table[["e_above_hull", *(f"e_above_hull_{name}" for name in member_tables)]].to_numpy(float)
    every = np.isfinite(values).all(axis=1)
    table["e_above_hull_mean"] = np.where(every, values.mean(axis=1), math.nan)
    table["e_above_hull_spread"] = np.where(every, values.max(axis=1) - values.min(axis=1), math.nan)
    table["stable_all"] = every & (np.nan_to_num(values, nan=math.inf) <= threshold).all(axis=1)
    return table


def ensemble_counts(evaluated: pd.DataFrame, unique_novel: pd.Series, n_requested: int) -> dict:
    n_stable_all = int(evaluated["stable_all"].sum())
    return {
        "n_stable_all": n_stable_all,
        "frac_stable_all": n_stable_all / n_requested if n_requested else math.nan,
        "n_sun_all": int((evaluated["stable_all"] & unique_novel).sum()),
        "mean_e_above_hull_spread": float(evaluated["e_above_hull_spread"].mean()),
    }
