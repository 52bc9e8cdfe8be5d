"""A real single-node SLURM cluster (tests/slurm/cluster.sh): a campaign fanned out through the
SLURM executor with the project's profile, proven job by job against the scheduler's own records,
then killed (TERM, INT, KILL; mid-sampling and mid-relaxation; one job cancelled) and resumed."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from interrupt import INTERRUPTIONS, SMALL, assert_resumed, interrupt, resume
from testcluster import CLUSTER_SCRIPT, CLUSTER_UP, JOB_COMPLETIONS, SLURM_ARGS

from conftest import Campaign

pytestmark = pytest.mark.slurm

# Sampling asks for a GPU through the config while running the CPU baseline.
ON_GPU = {
    **SMALL,
    "campaign": "cluster",
    "generators": [{**SMALL["generators"][0], "resources": {"gpus": 1, "mem_mb": 1500, "runtime": 10}}],
    "relax": {**SMALL["relax"], "resources": {"mem_mb": 2500}},
}
# SLURM jobs of the campaign, per rule (2 batches in one chunk, 4 dedup shards); validity,
# reference, metrics, candidates, plots and hulls stay local.
CLUSTER_JOBS = {
    "sample": 1,
    "relax": 1,
    "describe": 1,
    "reduce": 1,
    "novelty": 1,
    "stability": 1,
    "reference_reduced": 1,
    "reference_energies": 1,
    "dedup_shard": 4,
    "dedup": 1,
}
CLUSTER_RULES = set(CLUSTER_JOBS)


@pytest.fixture(scope="module")
def cluster():
    """`make test-slurm` starts one cluster for its pytest processes; a lone run starts its own."""
    if os.environ.get(CLUSTER_UP):
        yield
        return
    subprocess.run([str(CLUSTER_SCRIPT), "start"], check=True, timeout=300)
    yield
    subprocess.run([str(CLUSTER_SCRIPT), "stop"], check=True, timeout=60)


@pytest.fixture(scope="module")
def finished(cluster, tmp_path_factory) -> Campaign:
    campaign = Campaign(tmp_path_factory.mktemp("cluster"), ON_GPU)
    campaign.snakemake(*SLURM_ARGS)
    return campaign


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> pd.DataFrame:
    """The summary of an uninterrupted local run, which the cluster run must equal."""
    campaign = Campaign(tmp_path_factory.mktemp("local"), ON_GPU)
    campaign.snakemake()
    return pd.read_csv(campaign.results / "metrics" / "summary.csv")


def scheduler_record(job_id: str) -> dict[str, str]:
    """``scontrol show job``: the controller keeps finished jobs for MinJobAge (an hour here)."""
    line = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", job_id], capture_output=True, text=True, check=True
    ).stdout
    return dict(re.findall(r"(\w+)=(\S*)", line))


def job_logs(results: Path) -> dict[str, dict[str, str]]:
    """The environment line each job log starts with (``crystal_campaign.jobs``), by log path."""
    logs = {}
    for path in (results / "logs").rglob("*.log"):
        first = path.read_text().splitlines()[0]
        logs[str(path.relative_to(results / "logs"))] = dict(re.findall(r"(\w+)=(\S+)", first))
    return logs


def test_every_cluster_job_ran_through_slurm_and_gpu_jobs_got_a_gpu(finished):
    logs = job_logs(finished.results)
    assert {path.split("/")[0].removesuffix(".log") for path in logs} >= CLUSTER_RULES | {
        "validity",
        "metrics",
    }
    completed = JOB_COMPLETIONS.read_text()
    job_ids = []
    for path, environment in logs.items():
        rule = path.split("/")[0].removesuffix(".log")
        if rule not in CLUSTER_RULES:
            assert "SLURM_JOB_ID" not in environment, f"{path}: a local rule ran as a SLURM job"
            continue
        job_id = environment["SLURM_JOB_ID"]
        job_ids.append(job_id)
        record = scheduler_record(job_id)
        wildcards = "_".join(Path(path).with_suffix("").parts[1:])
        assert record["Comment"] == f"rule_{rule}" + (f"_wildcards_{wildcards}" if wildcards else "")
        assert record["JobState"] == "COMPLETED" and record["WorkDir"] == str(finished.root)
        assert re.search(rf"^JobId={job_id} .*JobState=COMPLETED", completed, re.M)
        if rule == "sample":
            assert record["TresPerJob"] == "gres:gpu:1"
            assert environment["CUDA_VISIBLE_DEVICES"] in {"0", "1"}
        else:
            assert "gpu" not in record.get("TresPerJob", "") and "CUDA_VISIBLE_DEVICES" not in environment
    assert len(job_ids) == len(set(job_ids)) == sum(CLUSTER_JOBS.values())


def test_cluster_campaign_matches_a_local_run(finished, baseline):
    pd.testing.assert_frame_equal(pd.read_csv(finished.results / "metrics" / "summary.csv"), baseline)


def cancel_slurm_job(sentinel: dict) -> None:
    """A preempted or killed job: the scheduler ends it, Snakemake resubmits it (retries)."""
    subprocess.run(["scancel", "--signal=KILL", "--full", sentinel["slurm_job_id"]], check=True)


def wait_for_no_jobs_of(campaign: Campaign, timeout: float = 300) -> None:
    """After the campaign process died, its jobs run on (README: check squeue before resuming).
    Other pytest processes share the cluster: only jobs working in this campaign count."""
    deadline = time.monotonic() + timeout

    def workdirs() -> list[str]:
        command = ["squeue", "-h", "-o", "%Z"]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()

    while str(campaign.root) in workdirs():
        assert time.monotonic() < deadline, "SLURM jobs still queued"
        time.sleep(1)


@pytest.mark.usefixtures("cluster")
@pytest.mark.parametrize("interruption", INTERRUPTIONS, ids=lambda i: i.id)
def test_killed_cluster_campaign_resumes_to_the_uninterrupted_summary(baseline, tmp_path, interruption):
    campaign = Campaign(tmp_path, ON_GPU)
    done = interrupt(campaign, interruption, SLURM_ARGS, cancel_slurm_job)
    wait_for_no_jobs_of(campaign)
    if interruption.target != "job":
        resume(campaign, SLURM_ARGS)
    assert campaign.planned_jobs() == {}
    assert_resumed(campaign, done, baseline)
