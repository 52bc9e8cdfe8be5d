"""How often ``kill PID`` (SIGTERM) hangs a busy Snakemake, with and without the deferred handler.

Runs a workflow of many short local jobs, sends the Snakemake process SIGTERM at a random moment
after jobs have started, and counts runs still alive ``--grace`` seconds later, first with
Snakemake's own handler, then with ``crystal_campaign.snakemake_signals.defer_sigterm_handler``
installed in ``onstart`` (as ``workflow/Snakefile`` does), trials interleaved:

    PYTHONPATH=src python benchmarks/bench_sigterm_hang.py --trials 15
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SNAKEMAKE = Path(sys.executable).with_name("snakemake")
SNAKEFILE = """
import os

if os.environ["DEFER_SIGTERM"] == "1":
    onstart:
        from crystal_campaign.snakemake_signals import defer_sigterm_handler

        defer_sigterm_handler()


rule all:
    input: expand("out/{{i}}.txt", i=range({jobs}))


rule make:
    output: "out/{{i}}.txt"
    shell: "sleep 0.05; echo {{wildcards.i}} > {{output}}"
"""


def hangs(workdir: Path, defer: bool, grace: float, rng: random.Random) -> bool:
    """Start the workflow afresh, SIGTERM it once jobs run; True when it is still alive after ``grace``."""
    subprocess.run(["rm", "-rf", "out", ".snakemake"], cwd=workdir, check=True)
    env = {**os.environ, "DEFER_SIGTERM": "1" if defer else "0", "OMP_NUM_THREADS": "1"}
    command = [str(SNAKEMAKE), "--cores", "2", "--quiet"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    process = subprocess.Popen(command, cwd=workdir, env=env, start_new_session=True, **quiet)
    outputs = workdir / "out"
    while not (outputs.is_dir() and len(list(outputs.iterdir())) > 5):
        time.sleep(0.05)
    time.sleep(rng.uniform(0, 2))
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=15, help="kills per handler")
    parser.add_argument("--jobs", type=int, default=400, help="short jobs in the workflow")
    parser.add_argument("--grace", type=float, default=40, help="seconds a killed run may take to exit")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    hung = {"Snakemake's handler": 0, "deferred handler": 0}
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        (workdir / "Snakefile").write_text(SNAKEFILE.format(jobs=args.jobs))
        for _ in range(args.trials):
            for name, defer in (("Snakemake's handler", False), ("deferred handler", True)):
                hung[name] += hangs(workdir, defer, args.grace, rng)
    for name, count in hung.items():
        print(f"{name:20s} hung {count}/{args.trials} (still alive {args.grace:.0f} s after SIGTERM)")


if __name__ == "__main__":
    main()
