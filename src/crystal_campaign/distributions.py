"""How far a set of structures is from the reference, as distributions (LeMat-GenBench's
distribution metrics): Jensen-Shannon distances of space-group, element and atoms-per-cell
frequencies, against the local reference snapshot described once (``reference/descriptions``),
and the Frechet distance of their embeddings by a potential (``embeddings``).

Frequencies are over the structures of each side: space-group numbers 1-230 (0, a failed symmetry
analysis, is left out), element presence (each structure counts each of its elements once, as
LeMat-GenBench's ``Composition``), sites per cell. The distance is scipy's ``jensenshannon``
with the natural logarithm, as LeMat-GenBench computes it: 0 for equal distributions,
sqrt(ln 2) = 0.833 for disjoint ones; NaN where either side has no value.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
from scipy import linalg
from scipy.spatial.distance import jensenshannon

DEFINITIONS = {
    "js_space_group": "Jensen-Shannon distance (natural log; LeMat-GenBench) between the space-group "
    "frequencies of evaluated structures and of the local reference snapshot (0 = same, 0.833 = disjoint)",
    "js_elements": "Jensen-Shannon distance between element frequencies (each structure counts each of its "
    "elements once: LeMat-GenBench's Composition) of evaluated structures and of the reference snapshot",
    "js_atoms_per_cell": "Jensen-Shannon distance between the sites-per-cell frequencies of evaluated "
    "structures and of the reference snapshot",
}


# What ``profile`` reads of described structures (``description.describe_structure``).
PROFILE_COLUMNS = ["chemsys", "space_group_number", "n_sites"]


def js_distance(first: Counter, second: Counter) -> float:
    """Jensen-Shannon distance (natural log) of two frequency tables; NaN if either is empty."""
    if not first or not second:
        return float("nan")
    support = sorted(first.keys() | second.keys())
    p = np.array([first[key] for key in support], dtype=float)
    q = np.array([second[key] for key in support], dtype=float)
    return float(jensenshannon(p / p.sum(), q / q.sum()))


def profile(described: pd.DataFrame) -> dict[str, Counter]:
    """The three frequency tables of described structures (``space_group_number``, ``chemsys``,
    ``n_sites``; rows without a structure left out; a table without them, e.g. of no structure at
    all, has empty tables)."""
    described = described.reindex(columns=PROFILE_COLUMNS)
    present = described[described["chemsys"].notna()]
    return {
        "js_space_group": Counter(n for n in present["space_group_number"] if n > 0),
        "js_elements": Counter(e for chemsys in present["chemsys"] for e in chemsys.split("-")),
        "js_atoms_per_cell": Counter(present["n_sites"]),
    }


def distances(evaluated: pd.DataFrame, reference: dict[str, Counter]) -> dict[str, float]:
    """Each Jensen-Shannon distance of the evaluated structures to the reference's ``profile``."""
    own = profile(evaluated)
    return {name: js_distance(own[name], reference[name]) for name in DEFINITIONS}


FRECHET_DEFINITION = {
    "frechet_distance": "Frechet distance between Gaussians fitted to the embeddings of evaluated "
    "structures and of the reference snapshot: |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2), the squared "
    "form FID and LeMat-GenBench report; embedding model: settings.embedding (NaN below 2 structures a side)",
}


def frechet_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Frechet distance of Gaussians fitted to two (n, d) embedding sets; NaN below 2 rows a side."""
    if len(first) < 2 or len(second) < 2:
        return float("nan")
    mean_gap = first.mean(axis=0) - second.mean(axis=0)
    cov_first = np.atleast_2d(np.cov(first, rowvar=False))
    cov_second = np.atleast_2d(np.cov(second, rowvar=False))
    # sqrtm of a product of covariances: tiny imaginary parts are numerical noise
    cross = linalg.sqrtm(cov_first @ cov_second).real
    value = mean_gap @ mean_gap + np.trace(cov_first + cov_second - 2 * cross)
    return float(max(value, 0.0))


def embedding_matrix(embeddings: pd.Series) -> np.ndarray:
    """The non-missing embeddings of a column as an (n, d) array."""
    vectors = [np.asarray(v, dtype=float) for v in embeddings.dropna()]
    return np.vstack(vectors) if vectors else np.empty((0, 0))
