"""A campaign without any batch gets a summary of zeros and NaN, never a crash. (A generator with
``n_batches: 0`` beside others: tests/test_plots.py.)"""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import Campaign
from crystal_campaign import io

pytestmark = pytest.mark.workflow


def test_campaign_with_no_batches_at_all_writes_an_empty_summary(tmp_path):
    empty = {"backend": "random", "n_batches": 0, "batch_size": 2, "chemical_systems": ["Na-Cl"]}
    config = {"campaign": "empty", "generators": [{"name": "a", **empty}, {"name": "b", **empty}]}
    campaign = Campaign(tmp_path, config)
    campaign.snakemake()
    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv")
    assert summary["generator"].tolist() == ["a", "b", "all"]
    assert (summary[["n_requested", "n_generated", "n_evaluated", "n_novel"]] == 0).all().all()
    assert summary["frac_valid"].isna().all()
    table, settings = io.read_table(campaign.results / "metrics" / "structures.parquet")
    assert table.empty and {"id", "generator", "evaluated", "valid", "novel", "class_all"} <= set(table)
    assert settings["matcher"]["ltol"] == 0.2
    assert (campaign.results / "plots" / "rates.png").exists()
    assert campaign.planned_jobs() == {}
