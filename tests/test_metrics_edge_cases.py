"""Summaries of campaigns with empty generators: a row for each, zeros and NaN, never a crash."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import Campaign
from crystal_campaign import io

pytestmark = pytest.mark.workflow


def random_generator(name: str, n_batches: int, system: str) -> dict:
    return {
        "name": name,
        "backend": "random",
        "n_batches": n_batches,
        "batch_size": 2,
        "chemical_systems": [system],
        "min_atoms": 2,
        "max_atoms": 4,
    }


def test_generator_without_batches_gets_a_summary_row_in_config_order(tmp_path):
    config = {
        "campaign": "partly-empty",
        "generators": [random_generator("empty", 0, "Mg-O"), random_generator("rss", 1, "Na-Cl")],
        "relax": {"backend": "none"},
    }
    campaign = Campaign(tmp_path, config)
    campaign.snakemake()
    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv")
    assert summary["generator"].tolist() == ["empty", "rss", "all"]
    rows = summary.set_index("generator")
    assert rows.loc["empty", ["n_requested", "n_evaluated", "n_valid", "n_unique"]].tolist() == [0, 0, 0, 0]
    assert rows.loc["empty", ["frac_valid", "frac_unique", "frac_novel"]].isna().all()
    assert rows.loc["rss", "n_requested"] == rows.loc["all", "n_requested"] == 2
    assert rows.loc["all", "n_evaluated"] == rows.loc["rss", "n_evaluated"] > 0


def test_campaign_with_no_batches_at_all_writes_an_empty_summary(tmp_path):
    config = {
        "campaign": "empty",
        "generators": [random_generator("a", 0, "Na-Cl"), random_generator("b", 0, "Mg-O")],
    }
    campaign = Campaign(tmp_path, config)
    campaign.snakemake()
    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv")
    assert summary["generator"].tolist() == ["a", "b", "all"]
    assert (summary[["n_requested", "n_generated", "n_evaluated", "n_novel"]] == 0).all().all()
    assert summary["frac_valid"].isna().all()
    table, settings = io.read_table(campaign.results / "metrics" / "structures.parquet")
    assert table.empty and {"id", "generator", "evaluated", "valid", "novel", "class_all"} <= set(table)
    assert settings["matcher"]["ltol"] == 0.2
    assert campaign.planned_jobs() == {}
