"""Adaptive rounds: the policies on synthetic yields, and a real two-arm Snakemake campaign."""

from __future__ import annotations

import os
import shutil
import signal

import numpy as np
import pandas as pd
import pytest
from interrupt import Interruption, assert_resumed, interrupt, resume

from conftest import Campaign, run_with_imported_examples
from crystal_campaign import rounds, status
from crystal_campaign.rounds import ArmYield
from crystal_campaign.schema import base_schema

ARMS = ["best", "poor", "middling"]
RATES = {"best": 0.3, "poor": 0.02, "middling": 0.1}


def settings(**changes) -> dict:
    properties = base_schema()["properties"]["rounds"]["properties"]
    defaults = {key: value["default"] for key, value in properties.items() if "default" in value}
    return {**defaults, "n_rounds": 20, "batches_per_round": 10, **changes}


def simulate(policy_settings: dict, n_rounds: int, seed: int = 7, hours: dict | None = None) -> pd.DataFrame:
    """Rounds on synthetic arms: each batch of an arm requests 10 structures, each S.U.N. with the
    arm's rate; the allocation sees the cumulative yields, as the workflow's does."""
    rng = np.random.default_rng(seed)
    totals = {arm: ArmYield(arm, 0, 0, 0, 0, 0.0) for arm in ARMS}
    allocations = []
    for round_index in range(n_rounds):
        allocation = rounds.allocate(round_index, ARMS, totals, policy_settings)
        allocations.append(allocation)
        for row in allocation.itertuples():
            trials = 10 * row.batches
            sun = int(rng.binomial(trials, RATES[row.arm]))
            old = totals[row.arm]
            spent = row.batches * (hours or {}).get(row.arm, 1.0)
            totals[row.arm] = ArmYield(
                row.arm,
                old.batches + row.batches,
                old.trials + trials,
                old.sun + sun,
                old.msun + sun,
                old.hours + spent,
            )
    return pd.concat(allocations, ignore_index=True)


def share(table: pd.DataFrame, arm: str, first_round: int) -> float:
    later = table[table["round"] >= first_round]
    return later.loc[later["arm"] == arm, "batches"].sum() / later["batches"].sum()


def test_round_zero_splits_evenly_or_as_configured():
    even = rounds.allocate(0, ARMS, {}, settings(batches_per_round=8))
    assert even["batches"].tolist() == [3, 3, 2]
    configured = rounds.allocate(0, ARMS, {}, settings(first_round={"poor": 5, "best": 1}))
    assert configured["batches"].tolist() == [1, 5, 0]


def test_thompson_converges_to_the_best_arm_and_explores_the_others_at_the_configured_rate():
    table = simulate(settings(explore=0.2), 20)
    assert (table.groupby("round")["batches"].sum() == 10).all()
    assert share(table, "best", 10) > 0.75
    for arm in ("poor", "middling"):
        # 2 of 10 batches go round-robin: each arm gets 2/3 of a batch per round at least, on average
        explored = table[(table["round"] >= 1) & (table["arm"] == arm)]["batches"]
        assert explored.mean() >= 0.2 * 10 / 3 - 1e-9
    never = simulate(settings(explore=0.0), 20)
    assert share(never, "best", 10) > share(table, "best", 10)


def test_an_allocation_is_a_pure_function_of_the_yields_and_the_seed():
    yields = {arm: ArmYield(arm, 3, 30, s, s, 1.0) for arm, s in zip(ARMS, (9, 1, 3), strict=True)}
    first = rounds.allocate(4, ARMS, yields, settings())
    pd.testing.assert_frame_equal(first, rounds.allocate(4, ARMS, yields, settings()))
    assert first.loc[0, "alpha"] == 10 and first.loc[0, "beta"] == 22  # Beta(1 + S, 1 + T - S)
    other_seeds = [rounds.allocate(4, ARMS, yields, settings(seed=s))["draws_won"].tolist() for s in range(5)]
    assert len({tuple(d) for d in other_seeds}) > 1


def test_ucb_tries_every_arm_then_exploits_and_fixed_keeps_round_zero():
    untried = {"best": ArmYield("best", 1, 10, 3, 3, 1.0), "poor": ArmYield("poor", 1, 10, 0, 0, 1.0)}
    first = rounds.allocate(1, ARMS, untried, settings(policy="ucb", explore=0.0))
    assert first.set_index("arm")["batches"].to_dict() == {"best": 0, "poor": 0, "middling": 10}
    table = simulate(settings(policy="ucb", explore=0.0), 20)
    assert share(table, "best", 10) > 0.75
    fixed = simulate(settings(policy="fixed"), 5)
    assert (fixed.groupby("arm")["batches"].unique().map(len) == 1).all()


def test_per_gpu_hour_objective_prefers_the_cheaper_arm_at_equal_rates():
    cheap = {"best": 10.0, "poor": 10.0, "middling": 1.0}  # hours per batch: middling is 10x cheaper
    per_structure = simulate(settings(objective="sun"), 15, hours=cheap)
    per_hour = simulate(settings(objective="sun_per_gpu_hour"), 15, hours=cheap)
    assert share(per_hour, "middling", 8) > 0.6 > share(per_structure, "middling", 8)


# Two arms: known crystals (never novel, never unique once seen) and random search. Metastable
# S.U.N. within 5 eV/atom: a unique, novel random structure counts, so the arms differ clearly.
ROUNDS_CONFIG = {
    "campaign": "rounds",
    "generators": [
        {"name": "known", "backend": "import", "paths": ["imported/NaCl_rocksalt.cif"], "batch_size": 2},
        {
            "name": "rss",
            "backend": "random",
            "n_batches": 1,
            "batch_size": 2,
            "chemical_systems": ["Na-Cl", "Mg-O"],
            "min_atoms": 2,
            "max_atoms": 4,
        },
    ],
    "relax": {"backend": "chgnet", "fmax": 0.1, "max_steps": 3},
    "stability": {"threshold": 0.1, "metastable_threshold": 5.0},
    "rounds": {"n_rounds": 3, "batches_per_round": 2, "objective": "msun", "explore": 0.0, "seed": 3},
}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    return run_with_imported_examples(tmp_path_factory.mktemp("rounds"), ROUNDS_CONFIG)


@pytest.mark.workflow
def test_rounds_send_batches_where_sun_comes_from(campaign):
    table = pd.read_csv(campaign.results / "rounds" / "allocation.csv")
    batches = table.pivot(index="round", columns="arm", values="batches")
    assert batches.loc[0].tolist() == [1, 1]  # known, rss: the even split
    assert (batches.loc[1:, "rss"] > batches.loc[1:, "known"]).all()  # from round 1 on, as yields say
    assert (table.groupby("arm")["round_msun"].sum()["known"], table["round_msun"].sum() > 0) == (0, True)
    # The allocation's inputs are the earlier rounds' yields, and its batches are the jobs that ran.
    for row in table[table["round"] > 0].itertuples():
        earlier = table[(table["arm"] == row.arm) & (table["round"] < row.round)]
        assert (row.trials, row.successes) == (earlier["round_trials"].sum(), earlier["round_msun"].sum())
    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv").set_index("generator")
    for arm in ("known", "rss"):
        mine = table[table["arm"] == arm]
        assert summary.loc[arm, "n_requested"] == mine["round_trials"].sum()
        assert summary.loc[arm, "n_msun"] == mine["round_msun"].sum()
    assert summary.loc["rss", "n_requested"] == 2 * batches["rss"].sum()  # 2 structures a batch
    assert summary.loc["known", "n_requested"] == batches["known"].sum()  # its one file, again and again
    assert (campaign.results / "plots" / "rounds.png").read_bytes()[:4] == b"\x89PNG"
    lines = status.status_lines(campaign.config, campaign.root / "results")
    assert lines[-1] == "rounds: 3 of 3 allocated (batches so far)"
    assert lines[2].split()[:3] == [
        "known",
        str(batches["known"].sum()),
        f"{batches['known'].sum()}/{batches['known'].sum()}",
    ]


@pytest.mark.workflow
def test_a_campaign_killed_mid_round_resumes_to_the_same_allocations_and_summary(campaign, tmp_path):
    """Killed while round 1's batches relax: the resumed run allocates every round as the
    uninterrupted one did (allocations are pure functions of earlier yields and the seed)."""
    shutil.copytree(campaign.root / "imported", tmp_path / "imported")
    killed = Campaign(tmp_path, ROUNDS_CONFIG)
    interruption = Interruption("SIGKILL", "relaxed/rss/0001.jsonl.gz")  # rss's batch 0 is round 0's
    finished = interrupt(
        killed, interruption, ["--cores", "2"], lambda sentinel: os.kill(sentinel["pid"], signal.SIGKILL)
    )
    allocations = killed.results / "rounds"
    assert (allocations / "allocation_1.json").exists() and not (allocations / "allocation_2.json").exists()
    resume(killed, ["--cores", "2"])
    assert_resumed(killed, finished, pd.read_csv(campaign.results / "metrics" / "summary.csv"))
    timed = ["hours", "round_hours"]  # wall times differ from run to run; no allocation here reads them
    pd.testing.assert_frame_equal(
        pd.read_csv(allocations / "allocation.csv").drop(columns=timed),
        pd.read_csv(campaign.results / "rounds" / "allocation.csv").drop(columns=timed),
    )


@pytest.mark.workflow
def test_growing_the_rounds_runs_only_the_new_round_and_keeps_earlier_allocations(campaign):
    folder = campaign.results / "rounds"
    before = {p.name: p.read_bytes() for p in folder.glob("allocation_*.json")}
    batch_times = {p: p.stat().st_mtime_ns for p in (campaign.results / "relaxed").rglob("*.jsonl.gz")}
    assert (
        campaign.planned_jobs_for({**campaign.config, "metrics": {"symprec": 0.01}}).get("allocation") is None
    )
    campaign.config = {**campaign.config, "rounds": {**campaign.config["rounds"], "n_rounds": 4}}
    campaign.write()
    campaign.snakemake()
    assert {p.name: p.read_bytes() for p in folder.glob("allocation_*.json") if p.name in before} == before
    assert all(p.stat().st_mtime_ns == t for p, t in batch_times.items())
    table = pd.read_csv(folder / "allocation.csv")
    assert sorted(table["round"].unique()) == [0, 1, 2, 3]
    assert table.loc[table["round"] == 3, "batches"].sum() == 2
