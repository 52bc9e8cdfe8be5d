"""Many small sampling batches on SLURM: one job each, chunks, array jobs, or Snakemake groups.

Needs a running cluster (``tests/slurm/cluster.sh start``). Runs the same campaign of ``--batches``
tiny sampling batches (``--until sample``) four ways in fresh directories, side by side, and prints
wall time, SLURM jobs submitted (the controller's job counter) and whether every batch was written.
Chunks are the campaign's ``jobs.batches_per_job`` (one job samples that many batches in turn); the
other ways run one batch per Snakemake job and pack on the SLURM side:

    PYTHONPATH=src python benchmarks/bench_slurm_packing.py --batches 8
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
sys.path.insert(0, str(REPO / "tests" / "slurm"))
from testcluster import SLURM_ARGS  # noqa: E402

# name: (jobs.batches_per_job, extra Snakemake arguments)
WAYS = {
    "one job per batch": (1, []),
    "chunks of 4 batches": (4, []),
    "array jobs": (1, ["--slurm-array-jobs", "sample"]),
    "groups of 4": (1, ["--groups", "sample=pack", "--group-components", "pack=4"]),
}


def last_job_id() -> int:
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
    # The next id the controller hands out; jobs submitted = difference.
    return int(re.search(r"^NEXT_JOB_ID\s*=\s*(\d+)", out, re.M).group(1))


def run(batches_per_job: int, way: list[str], batches: int, timeout: float) -> tuple[float, int, int, int]:
    root = Path(tempfile.mkdtemp(prefix="packing-"))
    for name in ("workflow", "rules", "scripts", "envs"):
        shutil.copytree(REPO / name, root / name)
    config = {
        "campaign": "packing",
        "generators": [
            {
                "name": "rss",
                "backend": "random",
                "n_batches": batches,
                "batch_size": 1,
                "chemical_systems": ["Na-Cl"],
                "min_atoms": 2,
                "max_atoms": 4,
            }
        ],
        "relax": {"backend": "none"},
        "jobs": {"batches_per_job": batches_per_job},
    }
    (root / "campaign.yaml").write_text(yaml.safe_dump(config))
    first = last_job_id()
    start = time.monotonic()
    command = [str(SNAKEMAKE), "--configfile", "campaign.yaml", "-s", "workflow/Snakefile", *SLURM_ARGS, *way]
    try:
        result = subprocess.run(
            [*command, "--until", "sample"], cwd=root, capture_output=True, text=True, timeout=timeout
        )
        code = result.returncode
    except subprocess.TimeoutExpired:
        code = -1
    took = time.monotonic() - start
    written = len(list((root / "results" / "packing" / "samples" / "rss").glob("*.jsonl.gz")))
    subprocess.run(["scancel", "--user=root"], check=False)
    return took, last_job_id() - first, written, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    print(f"{args.batches} sampling batches of 1 structure; wall time, SLURM jobs, batches written, exit")
    for name, (batches_per_job, way) in WAYS.items():
        took, jobs, written, code = run(batches_per_job, way, args.batches, args.timeout)
        print(f"{name:20s} {took:7.1f} s  {jobs:3d} jobs  {written:3d}/{args.batches} written  exit {code}")


if __name__ == "__main__":
    main()
