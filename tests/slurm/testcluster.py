"""The test cluster (cluster.sh) and how the tests and benchmarks submit to it."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = Path(__file__).with_name("cluster.sh")
# Set by `make test-slurm`, which starts the cluster once for several pytest processes.
CLUSTER_UP = "CRYSTAL_CAMPAIGN_TEST_CLUSTER_UP"
JOB_COMPLETIONS = Path("/tmp/crystal-campaign-slurm/log/jobcomp.log")
# The project's profile with the test cluster's partition filled in and a quicker first status
# check; this cluster has no accounting database, so job states come from squeue.
SLURM_ARGS = [
    "--profile",
    str(REPO / "profiles" / "slurm"),
    "--default-resources",
    "slurm_partition=debug",
    "mem_mb=1000",
    "runtime=30",
    "--slurm-no-account",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--latency-wait",
    "5",
    "--jobs",
    "4",
]
