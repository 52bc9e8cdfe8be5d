"""Per-batch overhead of the MatterGen backend vs MatterGen's own ``CrystalGenerator.generate``.

Run on demand, never part of the test suite (from the repository root, after
``bash envs/build-mattergen-env.sh``)::

    PYTHONPATH=src python benchmarks/bench_mattergen_overhead.py [--batches 3] [--batch-size 4] [--steps 4]

Both sides use the same tiny random-weight checkpoint (tests/mattergen_model.py), sampler
(``--steps`` predictor steps, one corrector step, no cell updates: random weights blow the
lattice up otherwise), atom counts and batch size. The backend side is what a sample job does per
batch: ``generators.sample`` (subprocess start, imports, model load, sampling, screening, batch
files). The MatterGen side is a warm MatterGen process calling ``CrystalGenerator(...).generate``
once per batch (model load and its own extxyz/CIF writing included, imports excluded). The ratio
is backend seconds / generate seconds per batch; with real models and 1000 steps sampling
dominates both and the ratio tends to 1. ``bench_generator_overhead`` compares backends the same
way: ``mattergen_overhead`` below is the function to fold in.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "src" / "crystal_campaign" / "generators" / "mattergen_runner.py"
NO_CELL_UPDATES = ["~sampler_partial.predictor_partials.cell", "~sampler_partial.corrector_partials.cell"]
ATOMS = {4: 1, 8: 1}


def generate_seconds(model_dir: str, batch_size: int, steps: int, batches: int) -> list[float]:
    """Inside the MatterGen environment: seconds per CrystalGenerator.generate call."""
    spec = importlib.util.spec_from_file_location("mattergen_runner", RUNNER)
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    from mattergen.common.utils.data_classes import MatterGenCheckpointInfo
    from mattergen.generator import CrystalGenerator

    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        runner.supply_gemnet_scale_file(Path(tmp))
        for batch in range(batches):
            out = Path(tmp) / f"batch{batch}"
            out.mkdir()
            start = time.perf_counter()
            CrystalGenerator(
                checkpoint_info=MatterGenCheckpointInfo(model_path=model_dir),
                batch_size=batch_size,
                num_batches=1,
                num_atoms_distribution=runner.atoms_distribution(ATOMS),
                sampling_config_overrides=[f"sampler_partial.N={steps}", *NO_CELL_UPDATES],
                sampling_config_path=runner.sampling_config_dir(Path(tmp)),
                record_trajectories=False,
            ).generate(output_dir=str(out))
            seconds.append(time.perf_counter() - start)
    return seconds


def backend_seconds(python: str, model_dir: str, batch_size: int, steps: int, batches: int) -> list[float]:
    """In the main environment: seconds per batch of ``generators.sample`` (a whole sample job's work)."""
    from crystal_campaign import generators
    from crystal_campaign.config import validate_config

    settings = {
        "name": "mg",
        "backend": "mattergen",
        "n_batches": batches,
        "batch_size": batch_size,
        "model_path": model_dir,
        "steps": steps,
        "sampling_config_overrides": NO_CELL_UPDATES,
        "num_atoms_distribution": ATOMS,
        "device": "cpu",
        "python": python,
    }
    settings = validate_config({"campaign": "bench", "generators": [settings]})["generators"][0]
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in range(batches):
            start = time.perf_counter()
            generators.sample(settings, "bench", batch, f"{tmp}/{batch:04d}.jsonl.gz")
            seconds.append(time.perf_counter() - start)
    return seconds


def mattergen_overhead(python: str, batch_size: int, steps: int, batches: int) -> dict:
    """Median seconds per batch of both sides and their ratio, on one freshly built tiny model."""
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = f"{tmp}/model"
        builder = [python, str(REPO / "tests" / "mattergen_model.py"), model_dir, "--steps", str(steps)]
        subprocess.run(builder, check=True, capture_output=True)
        direct = subprocess.run(
            [python, __file__, "--direct", model_dir, str(batch_size), str(steps), str(batches)],
            check=True,
            capture_output=True,
            text=True,
        )
        generate = json.loads(direct.stdout.strip().splitlines()[-1])
        backend = backend_seconds(python, model_dir, batch_size, steps, batches)
    result = {"backend_s": statistics.median(backend), "generate_s": statistics.median(generate)}
    return {**result, "ratio": result["backend_s"] / result["generate_s"]}


def main() -> None:
    if sys.argv[1:2] == ["--direct"]:
        model_dir, batch_size, steps, batches = sys.argv[2], *map(int, sys.argv[3:6])
        print(json.dumps(generate_seconds(model_dir, batch_size, steps, batches)))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", default=str(REPO / ".venv-mattergen" / "bin" / "python"))
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    result = mattergen_overhead(args.python, args.batch_size, args.steps, args.batches)
    print(
        f"MatterGen, {args.batches} batches of {args.batch_size}, {args.steps} steps (median s/batch): "
        f"backend {result['backend_s']:.2f} s, CrystalGenerator.generate {result['generate_s']:.2f} s, "
        f"ratio {result['ratio']:.2f}, overhead {result['backend_s'] - result['generate_s']:.2f} s/batch"
    )


if __name__ == "__main__":
    main()
