"""Kill a local campaign (TERM, INT, KILL; mid-sampling and mid-relaxation; one job) and resume it.

Resuming as README "Resume a campaign" says finishes with the summary of an uninterrupted run,
recomputes no batch finished before the kill, and no batch file is ever truncated under its name.
"""

from __future__ import annotations

import os
import signal

import pandas as pd
import pytest
from interrupt import INTERRUPTIONS, SMALL, Interruption, assert_resumed, interrupt, resume

from conftest import Campaign
from crystal_campaign import io
from crystal_campaign.testhooks import HOOK_VARIABLE

pytestmark = pytest.mark.resume

LOCAL = ["--cores", "2"]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> pd.DataFrame:
    campaign = Campaign(tmp_path_factory.mktemp("baseline"), SMALL)
    campaign.snakemake()
    return pd.read_csv(campaign.results / "metrics" / "summary.csv")


def kill_local_job(sentinel: dict) -> None:
    os.kill(sentinel["pid"], signal.SIGKILL)


@pytest.mark.parametrize("interruption", INTERRUPTIONS, ids=lambda i: i.id)
def test_killed_campaign_resumes_to_the_uninterrupted_summary(tmp_path, baseline, interruption):
    campaign = Campaign(tmp_path, SMALL)
    finished = interrupt(campaign, interruption, LOCAL, kill_local_job)
    if interruption.target == "job":  # retried within the same run: nothing left to do
        assert campaign.planned_jobs() == {}
    else:
        resume(campaign, [])
    assert_resumed(campaign, finished, baseline)


def test_a_batch_its_job_finished_after_the_interrupt_is_not_done_again(tmp_path, baseline):
    """``kill -INT`` of Snakemake alone: it waits for the running relax job, which writes its batch
    in full and exits 0; the resumed run keeps that batch (it used to redo it, "Forced execution")."""
    campaign = Campaign(tmp_path, SMALL)
    interruption = Interruption("SIGINT", "relaxed/rss/0001.jsonl.gz", target="snakemake")
    finished = interrupt(campaign, interruption, LOCAL, kill_local_job)
    paused = [campaign.results / "relaxed" / "rss" / name for name in ("0001.jsonl.gz", "0001.json")]
    assert all(path.exists() for path in paused), "the job went on after Snakemake was interrupted"
    finished |= {str(path.relative_to(campaign.results)): path.stat().st_mtime_ns for path in paused}
    resume(campaign, LOCAL)
    assert_resumed(campaign, finished, baseline)


def test_a_batch_that_keeps_failing_is_retried_then_counted_with_its_log(tmp_path, monkeypatch):
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "fail").write_text("sample/rss/0001\nrelax/rss/0000\n")
    monkeypatch.setenv(HOOK_VARIABLE, str(hook_dir))
    campaign = Campaign(tmp_path / "campaign", {**SMALL, "jobs": {"retries": 1}})
    result = campaign.snakemake("--keep-going")
    assert "Trying to restart job" in result.stderr  # every failing job was retried once
    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv").set_index("generator")
    assert summary.loc["rss", "n_batches_failed"] == 2 and summary.loc["all", "n_batches_failed"] == 2
    assert summary.loc["rss", "n_requested"] == 4 and summary.loc["rss", "n_generated"] == 2
    table, settings = io.read_table(campaign.results / "metrics" / "structures.parquet")
    failed = table[table["reason"].str.startswith("batch failed", na=False)].set_index("id")["reason"]
    # Batch 1 never sampled; batch 0 sampled but never relaxed.
    assert sorted(failed.index) == ["rss-b0000-0000", "rss-b0000-0001", "rss-b0001-0000", "rss-b0001-0001"]
    sample_log = "results/small/logs/sample/rss/0000-0001.log"
    assert failed["rss-b0001-0000"] == (
        f"batch failed after 2 attempts: RuntimeError: test hook: failure requested at sample/rss/0001 "
        f"(log: {sample_log})"
    )
    assert "(log: results/small/logs/relax/rss/0000-0001.log)" in failed["rss-b0000-0000"]
    assert [(f["generator"], f["batch"], f["stage"]) for f in settings["failed_batches"]] == [
        ("rss", 1, "sample"),
        ("rss", 0, "relax"),
    ]
    markdown = (campaign.results / "metrics" / "summary.md").read_text()
    assert "- failed batch rss/0001: batch failed after 2 attempts" in markdown
    assert "Traceback" in (campaign.root / sample_log).read_text()
    assert campaign.planned_jobs() == {}  # a recorded failure is a finished batch until deleted
