"""MatterGen backend: one sampling batch per job, run by ``mattergen_runner.py`` in MatterGen's environment.

MatterGen pins libraries the main environment cannot share (``../shared/notes/mattergen.md``),
so this adapter only prepares the job: it picks the interpreter, gives the job its own
temporary directory, hides GPUs the configured device must not use, and runs the runner as a
subprocess; the runner loads the model once, samples, screens the raw output and writes the
batch files itself. Failures the user can fix come back as one line naming the generator.

Which interpreter runs the runner (first match wins):
1. ``python:`` in the generator's settings, an interpreter of an existing MatterGen environment;
2. the interpreter running this job, when it can import mattergen (``snakemake --sdm conda``
   runs MatterGen's sample jobs in ``envs/mattergen.yaml``);
3. ``.venv-mattergen/bin/python``, built by ``envs/build-mattergen-env.sh``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import ClassVar

from crystal_campaign import io
from crystal_campaign.checks import element_problems
from crystal_campaign.generators.base import GeneratorBackend, derive_seed, structure_id
from crystal_campaign.materials_project import chemsys_of

# Where the runner finds this package (batch_files, screening): the directory holding it.
PACKAGE_PARENT = Path(__file__).resolve().parents[2]
REPO_ROOT = PACKAGE_PARENT.parent  # of a checkout, where build-mattergen-env.sh puts .venv-mattergen
RUNNER = Path(__file__).with_name("mattergen_runner.py")
BUILT_ENV_PYTHON = REPO_ROOT / ".venv-mattergen" / "bin" / "python"
HF_REPOSITORY = "microsoft/mattergen"
# Pretrained checkpoints on Hugging Face and the properties each was trained to condition on.
PRETRAINED_CONDITIONING = {
    "mattergen_base": (),
    "chemical_system": ("chemical_system",),
    "space_group": ("space_group",),
    "dft_mag_density": ("dft_mag_density",),
    "dft_band_gap": ("dft_band_gap",),
    "ml_bulk_modulus": ("ml_bulk_modulus",),
    "dft_mag_density_hhi_score": ("dft_mag_density", "hhi_score"),
    "chemical_system_energy_above_hull": ("chemical_system", "energy_above_hull"),
    "mp_20_base": (),
}
# MatterGen's published sampler: 1000 predictor steps, each followed by one Langevin corrector step.
PUBLISHED_STEPS = 1000
PUBLISHED_CORRECTOR_STEPS = 1
# Exit statuses of the runner, each with one line in its error file: an error the user can fix, and
# MatterGen's sampler failing on the batch's own draw.
USER_ERROR_EXIT = 3
SAMPLER_ERROR_EXIT = 4


class MatterGenError(io.JobError):
    """A MatterGen job problem with one line saying what to do."""


class MatterGenSamplerError(io.BatchError):
    """MatterGen's sampler failed on this batch's draw: the batch becomes failure rows (``jobs``)."""


def sampler_description(settings: dict) -> dict:
    """The sampler a job uses, and whether it is MatterGen's published one (non-default is flagged)."""
    steps, corrector_steps = settings["steps"], settings["corrector_steps"]
    overrides = list(settings["sampling_config_overrides"])
    published = steps == PUBLISHED_STEPS and corrector_steps == PUBLISHED_CORRECTOR_STEPS and not overrides
    label = f"mattergen {steps} steps x {1 + corrector_steps}" + "".join(f" {o}" for o in overrides)
    return {
        "steps": steps,
        "corrector_steps": corrector_steps,
        "overrides": overrides,
        "published": published,
        "label": ("" if published else "NON-DEFAULT ") + label,
    }


def model_label(settings: dict) -> str:
    if settings.get("model_path"):
        return f"model_path {settings['model_path']}"
    return f"{settings['hf_repository']}/{settings['model']}"


def interpreter(settings: dict) -> str:
    """The MatterGen environment's interpreter (see the module docstring for the order)."""
    name = settings["name"]
    if settings.get("python"):
        python = Path(settings["python"]).expanduser()
        if not (python.is_file() and os.access(python, os.X_OK)):
            raise MatterGenError(
                f"generator {name}: python {str(python)!r} is not an executable interpreter; "
                "point it at the bin/python of a MatterGen environment"
            )
        return str(python)
    if importlib.util.find_spec("mattergen") is not None:
        return sys.executable
    if BUILT_ENV_PYTHON.is_file():
        return str(BUILT_ENV_PYTHON)
    raise MatterGenError(
        f"generator {name}: no MatterGen environment: set python: /path/to/env/bin/python, run with "
        "`snakemake --sdm conda` (envs/mattergen.yaml), or build one with `bash envs/build-mattergen-env.sh`"
    )


def visible_gpu(name: str, index: int) -> str:
    """``cuda:N`` is the Nth GPU the job sees: SLURM may already have narrowed CUDA_VISIBLE_DEVICES."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return str(index)
    gpus = [gpu for gpu in visible.split(",") if gpu]
    if index >= len(gpus):
        raise MatterGenError(
            f"generator {name}: device cuda:{index}, but the job sees {len(gpus)} GPU(s) "
            f"(CUDA_VISIBLE_DEVICES={visible!r}); use device: cuda or auto"
        )
    return gpus[index]


def job_environment(settings: dict, job_dir: Path, mode: str) -> dict[str, str]:
    """Environment of the runner: its own TMPDIR, threads capped; sampling sees only the configured
    GPU and reads the Hugging Face cache offline (prefetch downloads, on a node without GPUs)."""
    env = dict(os.environ)
    env["TMPDIR"] = str(job_dir)
    env.setdefault("OMP_NUM_THREADS", "1")
    # MatterGen checkpoints pickle OmegaConf objects, which torch>=2.6 refuses to load by default.
    env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    if mode != "sample":
        return env
    # MatterGen picks CUDA whenever it is visible: the device setting decides what it sees.
    device = settings["device"]
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif device.startswith("cuda:"):
        env["CUDA_VISIBLE_DEVICES"] = visible_gpu(settings["name"], int(device.removeprefix("cuda:")))
    # Compute nodes often have no internet: sampling reads the cache that prefetch filled.
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def output_stream():
    """Where the runner's output goes: the job's log when io.log_to redirected sys.stdout there."""
    try:
        sys.stdout.flush()
        sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a stream without a file (pytest capture)
        return None
    return sys.stdout


def run_runner(settings: dict, mode: str, spec: dict, log_name: str) -> dict:
    """Run the runner on ``spec`` in a fresh temporary directory; return what it reported."""
    python = interpreter(settings)
    with tempfile.TemporaryDirectory(prefix=f"crystal-campaign-mattergen-{settings['name']}-") as tmp:
        job_dir = Path(tmp)
        spec_path, result_path, error_path = (job_dir / f for f in ("spec.json", "result.json", "error.txt"))
        spec_path.write_text(json.dumps({**spec, "job_dir": str(job_dir), "src": str(PACKAGE_PARENT)}))
        command = [python, str(RUNNER), mode, str(spec_path), str(result_path), str(error_path)]
        completed = subprocess.run(
            command,
            env=job_environment(settings, job_dir, mode),
            stdout=output_stream(),
            stderr=subprocess.STDOUT,
            cwd=job_dir,
            check=False,
        )
        if completed.returncode == 0 and result_path.exists():
            return json.loads(result_path.read_text())
        problem = error_path.read_text().strip() if error_path.exists() else ""
        if completed.returncode == USER_ERROR_EXIT and problem:
            raise MatterGenError(f"generator {settings['name']}: {problem}")
        if completed.returncode == SAMPLER_ERROR_EXIT and problem:
            raise MatterGenSamplerError(f"generator {settings['name']}: {problem}")
        raise MatterGenError(
            f"generator {settings['name']}: the MatterGen runner ({python}) failed with exit status "
            f"{completed.returncode}{': ' + problem if problem else ''}; its output is in the {log_name}"
        )


def _atoms_distribution_problems(where: str, distribution) -> list[str]:
    if isinstance(distribution, str):
        return []
    allowed = "allowed: ALEX_MP_20 or a mapping of atom counts (>= 1) to weights (>= 0, not all 0)"
    try:
        counts = [int(n) for n in distribution]
        weights = [float(w) for w in distribution.values()]
    except (TypeError, ValueError):
        return [f"{where}.num_atoms_distribution: {distribution!r} is not allowed; {allowed}"]
    if not counts or min(counts) < 1 or min(weights) < 0 or sum(weights) <= 0:
        return [f"{where}.num_atoms_distribution: {distribution!r} is not allowed; {allowed}"]
    return []


class MatterGenBackend(GeneratorBackend):
    """Runs in MatterGen's own environment: ``write_batch`` starts the runner, which writes the files."""

    conda_env = "mattergen"

    settings_schema: ClassVar[dict] = {
        "required": ["n_batches", "batch_size"],
        "properties": {
            "n_batches": {"type": "integer", "minimum": 0},
            "model": {
                "enum": list(PRETRAINED_CONDITIONING),
                "default": "mattergen_base",
                "description": "pretrained MatterGen checkpoint on Hugging Face",
            },
            "model_path": {
                "type": "string",
                "minLength": 1,
                "description": "local MatterGen model directory (config.yaml, checkpoints/last.ckpt); "
                "used instead of model",
            },
            "hf_repository": {"type": "string", "minLength": 1, "default": HF_REPOSITORY},
            "properties_to_condition_on": {
                "type": "object",
                "default": {},
                "additionalProperties": False,
                "properties": {
                    "chemical_system": {"$ref": "#/$defs/chemical_system"},
                    "space_group": {"type": "integer", "minimum": 1, "maximum": 230},
                    **{
                        name: {"type": "number"}
                        for name in (
                            "dft_mag_density",
                            "dft_band_gap",
                            "ml_bulk_modulus",
                            "hhi_score",
                            "energy_above_hull",
                            "dft_bulk_modulus",
                            "dft_shear_modulus",
                            "formation_energy_per_atom",
                        )
                    },
                },
            },
            "diffusion_guidance_factor": {"type": "number", "minimum": 0, "default": 0.0},
            "num_atoms_distribution": {
                "type": ["string", "object"],
                "default": "ALEX_MP_20",
                "description": "a MatterGen distribution name (ALEX_MP_20) or a mapping {atoms: weight}",
            },
            "steps": {
                "type": "integer",
                "minimum": 1,
                "default": PUBLISHED_STEPS,
                "description": "predictor steps; MatterGen's published sampler uses 1000 "
                "(others are flagged)",
            },
            "corrector_steps": {
                "type": "integer",
                "minimum": 0,
                "default": PUBLISHED_CORRECTOR_STEPS,
                "description": "Langevin corrector steps after each predictor step; published 1 "
                "(others are flagged)",
            },
            "sampling_config_overrides": {
                "type": "array",
                "default": [],
                "items": {"type": "string", "minLength": 1},
                "description": "Hydra overrides of MatterGen's sampling config "
                "(any is flagged as non-default)",
            },
            "device": {"$ref": "#/$defs/device", "default": "auto"},
            "python": {
                "type": "string",
                "minLength": 1,
                "description": "interpreter of an existing MatterGen environment "
                "(wins over every other choice)",
            },
        },
    }

    def target_systems(self, settings: dict) -> set[str]:
        conditioned = (settings.get("properties_to_condition_on") or {}).get("chemical_system")
        return {chemsys_of(conditioned.split("-"))} if conditioned else set()

    def conditioning_targets(self, settings: dict) -> dict:
        properties = settings.get("properties_to_condition_on") or {}
        space_group = properties.get("space_group")
        return {
            "target_chemsys": properties.get("chemical_system"),
            "target_space_group": int(space_group) if space_group is not None else None,
        }

    def write_batch(self, settings: dict, campaign: str, batch: int, path: str, versions: dict) -> None:
        name = settings["name"]
        spec = {
            "settings": settings,
            "campaign": campaign,
            "batch": batch,
            "seed": derive_seed(campaign, name, batch),
            "ids": [structure_id(name, batch, index) for index in range(settings["batch_size"])],
            "path": str(Path(path).resolve()),
            "sampler": sampler_description(settings),
            "model_label": model_label(settings),
            "versions": versions,
        }
        run_runner(settings, "sample", spec, "sample job's log")

    def prefetch(self, settings: dict) -> list[str]:
        """Download the pretrained checkpoint into the Hugging Face cache, as MatterGen itself loads it."""
        if settings.get("model_path"):
            return []
        result = run_runner(settings, "prefetch", {"settings": settings}, "prefetch output above")
        return [f"{model_label(settings)}: {result['model_dir']} (sha256 {result['checkpoint_sha256'][:12]})"]

    def config_problems(self, where: str, settings: dict) -> list[str]:
        """One line per problem in a mattergen generator's settings (after schema validation)."""
        problems = _atoms_distribution_problems(where, settings["num_atoms_distribution"])
        properties = settings["properties_to_condition_on"]
        system = properties.get("chemical_system")
        if system:
            key = f"{where}.properties_to_condition_on.chemical_system"
            problems += element_problems(key, system.split("-"))
        if properties and settings["diffusion_guidance_factor"] <= 0:
            problems.append(
                f"{where}.diffusion_guidance_factor: 0 is not allowed with properties_to_condition_on "
                "(guidance 0 samples unconditionally); allowed: > 0, e.g. 2.0"
            )
        if settings.get("model_path"):
            if not (Path(settings["model_path"]).expanduser() / "config.yaml").is_file():
                problems.append(
                    f"{where}.model_path: {settings['model_path']!r} has no config.yaml; "
                    "allowed: a MatterGen model directory (config.yaml, checkpoints/last.ckpt)"
                )
            return problems
        trained_on = PRETRAINED_CONDITIONING[settings["model"]]
        for key in sorted(set(properties) - set(trained_on)):
            problems.append(
                f"{where}.properties_to_condition_on.{key}: not allowed with model {settings['model']}; "
                f"allowed: {', '.join(trained_on) or 'none (an unconditional model)'}"
            )
        return problems


BACKEND = MatterGenBackend()
