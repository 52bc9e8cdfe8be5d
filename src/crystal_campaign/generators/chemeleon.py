"""Chemeleon-DNG (``chemeleon-dng`` on PyPI): de novo generation (``dng``) and crystal structure
prediction from formulas (``csp``).

The released checkpoints are not in the wheel. Chemeleon downloads a figshare tarball into
``./ckpts`` of the current directory; here the same download code is pointed at an absolute
cache directory (``cache_dir``, default ``$XDG_CACHE_HOME/crystal-campaign/chemeleon``), or a
local ``model_path`` is used. ``crystal-campaign prefetch`` fills the cache ahead of offline jobs.

A job loads the model once and samples its batch in one call of Chemeleon's reverse process.
The raw tensors of the last step (atom types, lattices, fractional coordinates) go through the
shared junk screen, so NaN, mask-token species and huge cells become failure rows. Nothing is
written to disk by Chemeleon on this path, so batches never share Chemeleon's restarting file
names.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from pymatgen.core import Composition, Element

from crystal_campaign.generators.base import BatchOutput, GeneratorBackend, GeneratorUnavailable, Sample
from crystal_campaign.io import file_sha256
from crystal_campaign.materials_project import formula_systems
from crystal_campaign.screening import to_structure

WHAT_TO_DO = (
    "run `crystal-campaign prefetch --configfile <your config>` on a machine with internet, "
    "or set model_path to a Chemeleon checkpoint"
)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/crystal-campaign/chemeleon``, or ``~/.cache/...`` when it is unset."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return Path(base if os.path.isabs(base) else Path.home() / ".cache") / "crystal-campaign" / "chemeleon"


def cache_dir(settings: dict) -> Path:
    return Path(settings["cache_dir"]) if settings.get("cache_dir") else default_cache_dir()


def released_checkpoint(settings: dict) -> Path:
    """Where the released checkpoint of the task lives in the cache (Chemeleon's own file name)."""
    from chemeleon_dng.sample import DEFAULT_MODEL_PATH

    return cache_dir(settings) / DEFAULT_MODEL_PATH[settings["task"]]


def unavailable(settings: dict, problem: str) -> GeneratorUnavailable:
    line = " ".join(problem.split())  # library errors may span lines; the message is one
    return GeneratorUnavailable(f"generator {settings['name']!r} (chemeleon {settings['task']}): {line}")


def download_checkpoints(settings: dict) -> None:
    """Chemeleon's own download and extraction, into a staging folder inside the cache.

    Finished checkpoint files are renamed into ``{cache}/ckpts/``, so an interrupted download or
    two jobs downloading at once never leave a partial file under a checkpoint's name.
    """
    from chemeleon_dng.download_util import ensure_checkpoints_downloaded

    target = released_checkpoint(settings).parent
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".download-"))
    try:
        with contextlib.redirect_stdout(None):
            ensure_checkpoints_downloaded(str(staging / "ckpts"))
        for checkpoint in staging.rglob("*.ckpt"):
            if not (target / checkpoint.name).exists():
                os.replace(checkpoint, target / checkpoint.name)
    except Exception as error:  # network, HTTP or archive errors all mean: no checkpoint here
        raise unavailable(
            settings,
            f"could not download the checkpoints into {target} ({type(error).__name__}: {error}); "
            + WHAT_TO_DO,
        ) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def checkpoint_path(settings: dict) -> Path:
    """The checkpoint a job loads: ``model_path``, else the cached release (downloaded if allowed)."""
    if settings.get("model_path"):
        path = Path(settings["model_path"])
        if not path.is_file():
            raise unavailable(settings, f"model_path {str(path)!r} is not a file; {WHAT_TO_DO}")
        return path
    path = released_checkpoint(settings)
    if not path.is_file():
        if not settings["download"]:
            raise unavailable(
                settings, f"no checkpoint {path.name} in {path.parent} (download: false); {WHAT_TO_DO}"
            )
        download_checkpoints(settings)
    if not path.is_file():
        raise unavailable(
            settings, f"the downloaded archive has no {path.name}; empty {path.parent} and retry"
        )
    return path


def resolve_device(settings: dict) -> str:
    import torch

    device = settings["device"]
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise unavailable(
            settings, f"device {device!r} but no CUDA device is visible; set device: auto or cpu"
        )
    return device


@dataclass(frozen=True)
class LoadedModel:
    module: object  # chemeleon_dng DiffusionModule
    path: str
    sha256: str
    load_s: float


@functools.lru_cache(maxsize=2)
def _load(path: str, device: str) -> LoadedModel:
    from chemeleon_dng.diffusion.diffusion_module import DiffusionModule

    start = time.perf_counter()
    module = DiffusionModule.load_from_checkpoint(path, map_location=device, weights_only=False)
    module.eval()
    return LoadedModel(module, path, file_sha256(path), time.perf_counter() - start)


def load_model(settings: dict, device: str) -> LoadedModel:
    """The task's model, loaded once per process and device (a job samples one batch)."""
    path = checkpoint_path(settings)
    try:
        model = _load(str(path.resolve()), device)
    except Exception as error:  # unpickling, missing keys, wrong architecture: unusable checkpoint
        raise unavailable(
            settings, f"cannot load {str(path)!r} ({type(error).__name__}: {error}); {WHAT_TO_DO}"
        ) from error
    task = model.module.model.task.name.lower()
    if task != settings["task"]:
        raise unavailable(
            settings, f"{str(path)!r} is a {task} checkpoint; set task: {task} or another model"
        )
    return model


def formula_atom_types(formula: str) -> list[int]:
    """Atomic numbers of the cell a formula spells out (NaCl: 2 atoms, Na4Cl4: 8), as Chemeleon does."""
    return [element.Z for element, amount in Composition(formula).items() for _ in range(int(amount))]


def batch_targets(settings: dict, batch: int, rng: np.random.Generator) -> list[int | str]:
    """Per requested structure: its formula (csp) or its atom count (dng).

    Lists are used in turn across the whole campaign (structure k of the generator gets entry
    k mod length), so every formula or count gets its share whatever the batch size.
    """
    size = settings["batch_size"]
    first = batch * size
    if settings["task"] == "csp":
        choices = settings["formulas"]
    elif isinstance(settings["num_atoms"], list):
        choices = settings["num_atoms"]
    else:
        from chemeleon_dng.dataset.num_atom_distributions import NUM_ATOM_DISTRIBUTIONS

        distribution = NUM_ATOM_DISTRIBUTIONS[settings["num_atoms"]]
        counts = rng.choice(list(distribution), p=list(distribution.values()), size=size)
        return [int(n) for n in counts]
    return [choices[(first + i) % len(choices)] for i in range(size)]


def raw_crystals(crystals) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(atomic numbers, lattice matrix, fractional coordinates) per crystal of a Chemeleon batch."""
    counts = crystals.num_atoms.tolist()
    numbers = np.split(crystals.atom_types.detach().cpu().numpy(), np.cumsum(counts)[:-1])
    coords = np.split(crystals.frac_coords.detach().cpu().numpy(), np.cumsum(counts)[:-1])
    lattices = crystals.lattices.detach().cpu().numpy()
    return list(zip(numbers, lattices, coords, strict=True))


def to_samples(crystals, targets: list[int | str], task: str) -> list[Sample]:
    samples = []
    for (numbers, lattice, coords), target in zip(raw_crystals(crystals), targets, strict=True):
        structure, reason = to_structure(numbers, lattice, coords)
        extras = {"target_formula": target} if task == "csp" else {"target_num_atoms": target}
        samples.append(Sample(structure, reason, extras=extras))
    return samples


def formula_problem(formula: str) -> str | None:
    """Why a formula cannot be a CSP cell (whole numbers of atoms of known elements), or None."""
    try:
        composition = Composition(formula)
    except Exception as error:  # pymatgen raises several kinds for unparseable formulas
        return f"cannot parse ({error})"
    if not all(isinstance(element, Element) for element in composition):
        return "has unknown elements"
    if composition.num_atoms == 0 or any(amount != int(amount) for amount in composition.values()):
        return "needs whole numbers of atoms"
    return None


class ChemeleonBackend(GeneratorBackend):
    settings_schema: ClassVar[dict] = {
        "required": ["n_batches", "batch_size"],
        "properties": {
            "n_batches": {"type": "integer", "minimum": 0},
            "task": {"enum": ["dng", "csp"], "default": "dng"},
            "num_atoms": {
                "default": "mp-20",
                "anyOf": [
                    {"const": "mp-20"},
                    {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}},
                ],
                "description": "dng atom counts, the mp-20 distribution or a list used in turn",
            },
            "formulas": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "minLength": 1},
                "description": "csp cells such as NaCl or Ti2O4, used in turn",
            },
            "model_path": {"type": "string", "minLength": 1, "description": "a Chemeleon checkpoint file"},
            "cache_dir": {
                "type": "string",
                "minLength": 1,
                "description": "an absolute directory for the released checkpoints",
            },
            "download": {"type": "boolean", "default": True},
            "device": {"$ref": "#/$defs/device", "default": "auto"},
        },
    }
    versioned_packages = ("chemeleon-dng", "torch", "pytorch-lightning")

    def config_problems(self, where: str, settings: dict) -> list[str]:
        problems = []
        if settings["task"] == "csp" and not settings.get("formulas"):
            problems.append(
                f"{where}.formulas: needed for task csp; allowed: a list of formulas such as [NaCl, Ti2O4]"
            )
        if settings["task"] == "dng" and settings.get("formulas"):
            problems.append(f"{where}.formulas: only used by task csp; allowed: remove it, or set task: csp")
        for formula in settings.get("formulas", []):
            problem = formula_problem(formula)
            if problem:
                problems.append(
                    f"{where}.formulas: {formula!r} {problem}; allowed: formulas such as NaCl, Ti2O4"
                )
        if settings.get("cache_dir") and not Path(settings["cache_dir"]).is_absolute():
            problems.append(
                f"{where}.cache_dir: {settings['cache_dir']!r} is relative; allowed: an absolute directory"
            )
        if settings.get("model_path") and settings.get("cache_dir"):
            problems.append(
                f"{where}.cache_dir: not used with model_path; allowed: one of model_path, cache_dir"
            )
        if settings.get("model_path") and not Path(settings["model_path"]).is_file():
            problems.append(
                f"{where}.model_path: {settings['model_path']!r} is not a file; allowed: a Chemeleon "
                "checkpoint, or leave it out for the released one (crystal-campaign prefetch)"
            )
        return problems

    def target_systems(self, settings: dict) -> set[str]:
        return formula_systems(settings.get("formulas") or [])

    def prefetch(self, settings: dict) -> list[str]:
        """Download the task's released checkpoint into the cache; a local model_path needs nothing."""
        if settings.get("model_path"):
            return []
        path = released_checkpoint(settings)
        if path.is_file():
            return [f"{path} (already cached)"]
        download_checkpoints(settings)
        return [str(checkpoint_path(settings))]

    def sample_batch(self, settings: dict, batch: int, seed: int) -> BatchOutput:
        import torch

        torch.set_num_threads(1)  # the sample rule runs one thread per job
        device = resolve_device(settings)
        model = load_model(settings, device)
        rng = np.random.default_rng(seed)
        targets = batch_targets(settings, batch, rng)
        torch.manual_seed(seed)
        if settings["task"] == "csp":
            atom_types = [formula_atom_types(formula) for formula in targets]
            request = {
                "num_atoms": [len(t) for t in atom_types],
                "atom_types": [z for types in atom_types for z in types],
            }
        else:
            request = {"num_atoms": targets}
        start = time.perf_counter()
        steps = int(model.module.num_timesteps)
        logging.info("sampling %d structures: %d reverse steps on %s", len(targets), steps, device)
        trajectory = model.module.sample(settings["task"], return_trajectory=True, verbose=False, **request)
        sample_s = time.perf_counter() - start
        logging.info("sampled %d structures in %.1f s", len(targets), sample_s)
        samples = to_samples(trajectory.container[0], targets, settings["task"])
        return BatchOutput(samples, self.stats(settings, model, device, len(samples), sample_s))

    @staticmethod
    def stats(settings: dict, model: LoadedModel, device: str, n_samples: int, sample_s: float) -> dict:
        import torch

        return {
            "model": Path(model.path).stem,
            "checkpoint": model.path,
            "checkpoint_sha256": model.sha256,
            "task": settings["task"],
            "steps": int(model.module.num_timesteps),
            "device": device,
            "gpu": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "model_load_s": round(model.load_s, 3),
            "sample_s": round(sample_s, 3),
            "structures_per_s": round(n_samples / sample_s, 3) if sample_s > 0 else None,
        }


BACKEND = ChemeleonBackend()
