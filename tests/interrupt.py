"""Kill a running campaign at a known point and resume it; shared by the local and the SLURM tests.

A job reaching the rename of a requested output pauses there (``crystal_campaign.testhooks``) and
writes a sentinel, so every kill happens at a known point, never after a timer.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from conftest import SNAKEMAKE, Campaign
from crystal_campaign.testhooks import HOOK_VARIABLE

# Two sampling batches (the kills pause batch 1), relaxed with a few CHGNet steps.
SMALL = {
    "campaign": "small",
    "generators": [
        {
            "name": "rss",
            "backend": "random",
            "n_batches": 2,
            "batch_size": 2,
            "chemical_systems": ["Na-Cl"],
            "min_atoms": 2,
            "max_atoms": 4,
        }
    ],
    "relax": {"backend": "chgnet", "max_steps": 3},
}
# Stages writing a file set per batch, and those writing a table per chunk of batches.
BATCH_STAGES = ("samples", "relaxed")
CHUNK_STAGES = ("samples", "relaxed", "validity", "novelty")
# How Snakemake logs a job it starts and one it has finished.
JOB_BLOCK = re.compile(
    r"^(?:local)?rule \w+:\n(?:    input: .*\n)?"
    r"    output: (?P<output>.*)\n(?:    .*\n)*?    jobid: (?P<jobid>\d+)$",
    re.M,
)
FINISHED_JOB = re.compile(r"^Finished jobid: (\d+) ", re.M)


@dataclass
class Interruption:
    """Kill ``target`` with ``signal_name`` when ``paused_output`` is about to land: "campaign"
    (Snakemake and its jobs; SIGTERM goes to Snakemake alone, as ``kill PID``), "snakemake"
    (Snakemake alone, its jobs go on) or "job" (the paused job alone)."""

    signal_name: str
    paused_output: str  # a path suffix under results/{campaign}/, e.g. samples/rss/0001.jsonl.gz
    target: str = "campaign"

    @property
    def id(self) -> str:
        stage = self.paused_output.split("/")[0]
        return f"{self.signal_name}-{self.target}-{stage}"


# Each kill pauses batch 1, the last, so batch 0 is usually finished by then.
INTERRUPTIONS = [
    Interruption("SIGTERM", "samples/rss/0001.jsonl.gz"),
    Interruption("SIGINT", "samples/rss/0001.jsonl.gz"),
    Interruption("SIGKILL", "samples/rss/0001.jsonl.gz"),
    Interruption("SIGTERM", "relaxed/rss/0001.jsonl.gz"),
    Interruption("SIGINT", "relaxed/rss/0001.jsonl.gz"),
    Interruption("SIGKILL", "relaxed/rss/0001.jsonl.gz"),
    Interruption("SIGKILL", "relaxed/rss/0001.jsonl.gz", target="job"),
]


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(campaign: Campaign, args: list[str], hook_dir: Path) -> subprocess.Popen:
    """Snakemake in its own process group, with SIGINT as in a terminal.

    Started from a background job of a non-interactive shell (as ``make test-slurm`` does), the
    tests inherit SIGINT ignored, and so would Snakemake: the child restores the default.
    """
    command = [str(SNAKEMAKE), "--configfile", "campaign.yaml", "-s", "workflow/Snakefile", *args]
    env = {**os.environ, HOOK_VARIABLE: str(hook_dir)}
    log = open(hook_dir / "snakemake.log", "w")  # noqa: SIM115 - the child owns it until it exits
    return subprocess.Popen(
        command,
        cwd=campaign.root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=default_sigint,
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"snakemake exited ({process.returncode}) before {path.name} appeared")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} did not appear within {timeout} s")
        time.sleep(0.2)


def finished_outputs(campaign: Campaign, snakemake_log: Path) -> dict[str, int]:
    """What a resume must not make again, with mtimes (ns): every sampled or relaxed batch under its
    final name (a chunk job reuses the batches it finds), and the per-chunk outputs of the jobs
    Snakemake has logged as finished.

    Only Snakemake's own "Finished jobid" line says a job is done: it comes after Snakemake has
    checked (and on SLURM touched) the outputs. A SLURM job can end, its files whole and its
    incomplete marker gone, before the next status check registers it; killed then, Snakemake
    counts it as running and deletes its outputs, which a resume rightly remakes.
    """
    log = snakemake_log.read_text()
    finished_ids = set(FINISHED_JOB.findall(log))
    outputs = [
        path
        for job in JOB_BLOCK.finditer(log)
        if job["jobid"] in finished_ids
        for path in job["output"].split(", ")
    ]
    prefix = f"{campaign.results.relative_to(campaign.root)}/"
    finished = {
        path.removeprefix(prefix): (campaign.root / path).stat().st_mtime_ns
        for path in outputs
        if path.removeprefix(prefix).split("/")[0] in CHUNK_STAGES
    }
    for stage in BATCH_STAGES:
        for path in (campaign.results / stage).glob("*/[0-9]*.json*"):
            finished[str(path.relative_to(campaign.results))] = path.stat().st_mtime_ns
    return finished


def assert_whole(results: Path) -> None:
    """Every batch file under its final name is complete: gzip reads to the end, JSON parses."""
    for path in (results / "samples").rglob("*.jsonl.gz"):
        with gzip.open(path, "rt") as handle:
            for line in handle:
                json.loads(line)
        json.loads(path.with_name(path.name.removesuffix(".jsonl.gz") + ".json").read_text())


def interrupt(
    campaign: Campaign, interruption: Interruption, args: list[str], kill_job, timeout: float = 600
) -> dict[str, int]:
    """Run the campaign, kill it (or one job) at the pause, and return the outputs finished by then.

    ``kill_job(sentinel)`` kills the paused job itself (a PID locally, ``scancel`` on SLURM).
    """
    hook_dir = campaign.root / f"hook-{interruption.id}"
    hook_dir.mkdir()
    (hook_dir / "pause").write_text(f"{campaign.results.name}/{interruption.paused_output}\n")
    process = start(campaign, args, hook_dir)
    sentinel = hook_dir / (
        f"{campaign.results.name}/{interruption.paused_output}".replace("/", "_") + ".paused"
    )
    wait_for(sentinel, process, timeout)

    paused = campaign.results / interruption.paused_output
    assert not paused.exists(), "the paused output must not be under its final name yet"
    assert list(paused.parent.glob(f".{paused.name}.*.tmp")), "its data waits in a temporary file"
    assert_whole(campaign.results)
    finished = finished_outputs(campaign, hook_dir / "snakemake.log")
    stage, batch_file = interruption.paused_output.split("/", 1)
    if stage != "samples":  # the paused job's own input was finished before it started
        assert f"samples/{batch_file}" in finished, sorted(finished)

    number = getattr(signal, interruption.signal_name)
    if interruption.target == "job":
        kill_job(json.loads(sentinel.read_text()))
    elif interruption.signal_name == "SIGTERM" or interruption.target == "snakemake":
        os.kill(process.pid, number)  # `kill PID`, or a scheduler ending the login session
    else:
        os.killpg(process.pid, number)  # Ctrl-C in the terminal; KILL: the machine or session dies
    (hook_dir / "release").touch()  # jobs that survive the signal go on
    process.wait(timeout=timeout)
    if interruption.target == "job":
        assert process.returncode == 0, (hook_dir / "snakemake.log").read_text()[-3000:]
    else:
        assert process.returncode != 0
    assert_whole(campaign.results)
    return finished


def resume(campaign: Campaign, args: list[str]) -> None:
    """What README "Resume a campaign" tells users: unlock, then the same command again."""
    campaign.snakemake("--unlock", *args)
    campaign.snakemake(*args)


def assert_resumed(campaign: Campaign, finished: dict[str, int], baseline: pd.DataFrame) -> None:
    results = campaign.results
    recomputed = [
        path
        for path, mtime in finished.items()
        if not (results / path).exists() or (results / path).stat().st_mtime_ns != mtime
    ]
    assert recomputed == [], f"finished batches were recomputed: {recomputed}"
    summary = pd.read_csv(campaign.results / "metrics" / "summary.csv")
    pd.testing.assert_frame_equal(summary, baseline)
