"""Distribution metrics against the reference (LeMat-GenBench's Jensen-Shannon distances)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from conftest import evaluated_as_unique_novel
from crystal_campaign import distributions, metrics


def entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def js_by_entropies(p: list[float], q: list[float]) -> float:
    """sqrt(H(M) - (H(P) + H(Q)) / 2) with M the mixture: the textbook definition, natural log."""
    p, q = np.array(p), np.array(q)
    return math.sqrt(entropy((p + q) / 2) - (entropy(p) + entropy(q)) / 2)


def described(rows: list[tuple[str | None, int, int]]) -> pd.DataFrame:
    """(chemsys, space-group number, sites) per structure; a None chemsys has no structure."""
    return pd.DataFrame(rows, columns=["chemsys", "space_group_number", "n_sites"])


GENERATED = described([("Cl-Na", 225, 8), ("Cl-Na", 225, 8), ("Cl-Na", 221, 2), ("O-Ti", 0, 6), (None, 0, 0)])
REFERENCE = described([("Cl-Na", 225, 8), ("Mg-O", 225, 8), ("O-Ti", 136, 6), ("O-Ti", 62, 24)])


def test_distances_follow_the_definition():
    found = distributions.distances(GENERATED, distributions.profile(REFERENCE))
    # space groups: a failed analysis (0) and a failed structure are left out
    assert found["js_space_group"] == pytest.approx(
        js_by_entropies([0, 0, 1 / 3, 2 / 3], [1 / 4, 1 / 4, 0, 2 / 4])
    )
    # elements, each counted once per structure: Cl, Na, O, Ti (generated) against Cl, Mg, Na, O, Ti
    assert found["js_elements"] == pytest.approx(
        js_by_entropies([3 / 8, 0, 3 / 8, 1 / 8, 1 / 8], [1 / 8, 1 / 8, 1 / 8, 3 / 8, 2 / 8])
    )
    # sites per cell 2, 6, 8, 24
    assert found["js_atoms_per_cell"] == pytest.approx(
        js_by_entropies([1 / 4, 1 / 4, 2 / 4, 0], [0, 1 / 4, 2 / 4, 1 / 4])
    )


def test_equal_disjoint_and_empty_sets():
    same = distributions.distances(REFERENCE, distributions.profile(REFERENCE))
    assert same == pytest.approx(dict.fromkeys(distributions.DEFINITIONS, 0.0), abs=1e-7)
    other = described([("K", 229, 1)])
    disjoint = distributions.distances(other, distributions.profile(REFERENCE))
    assert disjoint == pytest.approx(dict.fromkeys(distributions.DEFINITIONS, math.sqrt(math.log(2))))
    empty = distributions.distances(described([(None, 0, 0)]), distributions.profile(REFERENCE))
    assert all(math.isnan(value) for value in empty.values())


def test_summary_rows_carry_the_distances():
    table = evaluated_as_unique_novel(
        GENERATED.assign(
            id=[f"s{i}" for i in range(len(GENERATED))],
            generator=["a", "a", "b", "b", "b"],
            evaluated=GENERATED["chemsys"].notna(),
        )
    )
    reference = metrics.ReferenceView(len(REFERENCE), distributions.profile(REFERENCE))
    summary = metrics.summary_table(table, {"a": 2, "b": 3}, reference=reference).set_index("generator")
    evaluated = table[table["evaluated"]]
    for name, part in (("a", evaluated[evaluated["generator"] == "a"]), ("all", evaluated)):
        expected = distributions.distances(part, distributions.profile(REFERENCE))
        assert summary.loc[name, list(expected)].to_dict() == pytest.approx(expected)
    without = metrics.summary_table(table, {"a": 2, "b": 3})
    assert without[list(distributions.DEFINITIONS)].isna().all().all()


def frechet_by_eigendecomposition(first: np.ndarray, second: np.ndarray) -> float:
    """The same distance another way: Tr (S1 S2)^1/2 = Tr (S1^1/2 S2 S1^1/2)^1/2, each square
    root of a symmetric matrix from its eigendecomposition."""

    def symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
        values, vectors = np.linalg.eigh(matrix)
        return vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T

    s1, s2 = np.cov(first, rowvar=False), np.cov(second, rowvar=False)
    root = symmetric_sqrt(s1)
    gap = first.mean(axis=0) - second.mean(axis=0)
    return float(gap @ gap + np.trace(s1) + np.trace(s2) - 2 * np.trace(symmetric_sqrt(root @ s2 @ root)))


def test_frechet_distance_follows_the_definition():
    rng = np.random.default_rng(7)
    first = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5))
    second = rng.normal(loc=0.5, size=(150, 5)) * [1, 2, 0.5, 1, 3]
    assert distributions.frechet_distance(first, second) == pytest.approx(
        frechet_by_eigendecomposition(first, second), rel=1e-8
    )
    assert distributions.frechet_distance(first, first) == pytest.approx(0, abs=1e-8)
    # a shift moves only the means: the distance grows by the shift's squared length
    shift = np.array([1.0, -2.0, 0.0, 0.5, 0.0])
    assert distributions.frechet_distance(first + shift, first) == pytest.approx(shift @ shift, rel=1e-8)
    assert math.isnan(distributions.frechet_distance(first[:1], second))


def test_embedding_matrix_keeps_what_has_an_embedding():
    column = pd.Series([[1.0, 2.0], None, [3.0, 4.0]])
    assert distributions.embedding_matrix(column).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert distributions.embedding_matrix(pd.Series([None], dtype=object)).shape == (0, 0)
