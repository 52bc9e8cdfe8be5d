"""Per-batch overhead of a generator backend against the model's own generate function.

Run on demand, never part of the test suite (from the repository root)::

    PYTHONPATH=src:tests python benchmarks/bench_generator_overhead.py [--backends chemeleon]
        [--batch-size 16] [--repeats 5] [--hidden-dim 32 --num-layers 2 --steps 5] [--device cpu]

For each backend, one batch is made twice per repeat, each time in a fresh process and with the
same model, steps and batch: by the project's sampling entry point (``generators.sample``, what
the Snakemake sample rule runs: process start, imports, model load, sampling, junk screen,
batch file and sidecar) and by the model's own generate function. Both take the median wall time
over the repeats, run alternately so that load on the machine affects both alike; the ratio
ours / theirs is the overhead. The backend's sidecar splits its own time into model load and
sampling. Models have random weights (timing only): tiny by default, the released Chemeleon
architecture with ``--hidden-dim 512 --num-layers 6``.

A backend is one function returning a ``Case``: its generator settings and the command line of
the model's own generate call (which may run in another environment's interpreter).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from crystal_campaign import io
from crystal_campaign.config import validate_config

# The sample rule's work without Snakemake: argv[1] settings (JSON), argv[2] batch file.
ENTRY_POINT = (
    "import json, sys; from crystal_campaign import generators; "
    "generators.sample(json.loads(sys.argv[1]), 'bench', 0, sys.argv[2])"
)


@dataclass
class Case:
    settings: dict  # the generator as a campaign config would set it (schema defaults filled in)
    reference: list[str]  # the model's own generate call: same model, steps, batch and device


def generator_settings(generator: dict) -> dict:
    config = {"campaign": "bench", "generators": [{"name": "bench", "n_batches": 1, **generator}]}
    return validate_config(config)["generators"][0]


def chemeleon_case(workdir: Path, args: argparse.Namespace) -> Case:
    from chemeleon_model import write_random_checkpoint  # tests/: run with PYTHONPATH=tests

    checkpoint = write_random_checkpoint(
        workdir / "chemeleon_dng.ckpt",
        "dng",
        hidden_dim=args.hidden_dim,
        num_layers=args.num_layers,
        num_timesteps=args.steps,
        beta_schedule="linear",  # random weights then give some real cells, so conversion is exercised
        seed=0,
    )
    counts = [4 + i % 9 for i in range(args.batch_size)]  # 4..12 atoms, fixed so both do the same work
    reference = (
        "import sys; from chemeleon_dng.sample import sample; "
        f"sample(task='dng', num_samples={args.batch_size}, batch_size={args.batch_size}, "
        f"num_atom_distribution={counts}, model_path=sys.argv[1], output_dir=sys.argv[2], "
        f"device={args.device!r})"
    )
    return Case(
        generator_settings(
            {
                "backend": "chemeleon",
                "batch_size": args.batch_size,
                "num_atoms": counts,
                "model_path": str(checkpoint),
                "device": args.device,
            }
        ),
        [sys.executable, "-c", reference, str(checkpoint), str(workdir / "chemeleon-out")],
    )


CASES: dict[str, Callable[[Path, argparse.Namespace], Case]] = {"chemeleon": chemeleon_case}


def wall_time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - start


def measure(name: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as folder:
        workdir = Path(folder)
        case = CASES[name](workdir, args)
        ours, theirs, sidecars = [], [], []
        for repeat in range(args.repeats):
            batch = workdir / f"ours-{repeat}.jsonl.gz"
            ours.append(wall_time([sys.executable, "-c", ENTRY_POINT, json.dumps(case.settings), str(batch)]))
            theirs.append(wall_time(case.reference))
            sidecars.append(io.read_json(io.sidecar_path(batch)))
    stats = [s["stats"] for s in sidecars]
    return {
        "backend": name,
        "ours": statistics.median(ours),
        "theirs": statistics.median(theirs),
        "load": statistics.median(s.get("model_load_s", float("nan")) for s in stats),
        "sample": statistics.median(s.get("sample_s", float("nan")) for s in stats),
        "generated": sidecars[0]["n_generated"],
        "device": stats[0].get("device", "?"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hidden-dim", type=int, default=32)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(
        f"batch {args.batch_size}, {args.steps} steps, hidden {args.hidden_dim} x {args.num_layers} layers, "
        f"median of {args.repeats} fresh processes each"
    )
    header = ("backend", "device", "ours", "theirs", "ratio", "load", "sample", "ok")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (10, 7, 8, 8, 6, 7, 7, 4), strict=True)))
    for name in args.backends:
        r = measure(name, args)
        print(
            f"{r['backend']:>10} {r['device']:>7} {r['ours']:7.2f}s {r['theirs']:7.2f}s "
            f"{r['ours'] / r['theirs']:5.2f}x {r['load']:6.2f}s {r['sample']:6.2f}s {r['generated']:>4}"
        )


if __name__ == "__main__":
    main()
